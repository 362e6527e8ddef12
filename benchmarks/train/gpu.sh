#!/usr/bin/env bash
# Issue 12's measurements on one CUDA machine (offline). Usage: bash benchmarks/train/gpu.sh OUT PART
#   check       the CUDA-only tests (varlen packing against padding, fused kernels)
#   speed       optimizer step: this checkout against BEFORE_ROOT's optimizer (default: the parent folder, when
#               this checkout is carried inside the main one): TinyLlama shapes (plain and refresh steps), and
#               SmolLM2 shapes as training runs them (staggered refreshes every 50 steps) with a GPU profile
#   throughput  benchmarks/train/throughput.py: padded / packed / packed+fused x the four optimizers
#   train       `tinyagent-ft train` end to end on a random SmolLM2-shaped model (padded vs packed+fused),
#               and the convergence check of the warm-started refresh against the exact SVD
#   compare     `tinyagent-ft train` end to end, random SmolLM2-shaped model, configs/smollm2-compare.yaml on
#               MAX_TRAIN (2880) examples: one run per entry of RUNS ("name:override,override ..."; default the
#               three optimizers), tokens/s of each against the first in the same call
# Needs .bench/tokenizer (the SmolLM2 tokenizer folder; a copy as .bench/cache/smollm2-135m-tokenizer for the tests),
# .bench/samples.json (throughput.py --make-samples) and the wheels the device lacks in .whl/ (pydantic and its
# dependencies, networkx, llguidance, and liger-kernel for fused kernels).
set -euo pipefail
out=${1:?OUT}; part=${2:?PART}; before=${BEFORE_ROOT:-$PWD/..}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
site=${PYTHONPATH:-}
export PYTHONPATH="$PWD${site:+:$site}"
python3 -c 'import torch, transformers; print(torch.cuda.get_device_name(), "torch", torch.__version__, "transformers", transformers.__version__)'
case $part in
check)
  TINYAGENT_FT_CACHE=$PWD/.bench/cache python3 -m pytest -q -p no:cacheprovider tests/test_packing.py -k "varlen or fused" 2>&1 | tail -5
  ;;
speed)
  (cd benchmarks/optim && PYTHONPATH="$before${site:+:$site}" python3 speed.py --out "$out/speed_before.json" \
     --only adamw "one-sided) [randomized]" "(default) [randomized]" 2>&1 | tee "$out/speed_before.txt")
  (cd benchmarks/optim && python3 speed.py --out "$out/speed_after.json" --only adamw "[power]" 2>&1 | tee "$out/speed_after.txt")
  for side in before after; do
    root=$([ $side = before ] && echo "$before" || echo "$PWD")
    (cd benchmarks/optim && PYTHONPATH="$root${site:+:$site}" python3 speed.py --shape smollm2 --training --gap 50 \
       --profile --only adamw "one-sided) [power]" "(default) [power]" --out "$out/speed_smollm2_$side.json" 2>&1 \
       | tee "$out/speed_smollm2_$side.txt")
  done
  ;;
throughput)
  python3 benchmarks/train/throughput.py --samples .bench/samples.json --tokenizer .bench/tokenizer \
    --steps 4 --repeat-baseline --out "$out/throughput.json" 2>&1 | tee "$out/throughput.txt"
  ;;
train)
  python3 benchmarks/train/throughput.py --random-model /tmp/smollm2-random --tokenizer .bench/tokenizer
  python3 -m tinyagent_ft data synth --out data/synth --n 6000 --seed 0 > /dev/null
  for run in "padded adamw false false" "packed adamw true auto" "packed natural_galore true auto"; do
    set -- $run
    python3 -m tinyagent_ft train -c configs/smollm2-compare.yaml model.name=/tmp/smollm2-random \
      optimizer.name=$2 training.packing=$3 model.fused_kernels=$4 data.max_train=${MAX_TRAIN:-1280} \
      eval.subset=16 eval.max_new_tokens=64 training.output_dir=/tmp/train-$1-$2 > /tmp/train-$1-$2.log 2>&1 \
      || { tail -40 /tmp/train-$1-$2.log; exit 1; }
    cp /tmp/train-$1-$2/summary.json "$out/train-$1-$2.json"
    python3 -c "import json,sys; s=json.load(open('$out/train-$1-$2.json')); print('$1 $2', {k: s[k] for k in ('steps','train_seconds','tokens','tokens_per_second','validation','packing','fused_kernels','peak_memory_gb')})"
  done
  (cd benchmarks/optim && python3 convergence.py --corpora plans --tokenizer "$PWD/../../.bench/tokenizer" \
     --optimizers natural-galore "natural-galore power" --seeds 0 1 2 --out-dir "$out" 2>&1 | tail -8 | tee "$out/convergence.txt")
  ;;
compare)
  python3 benchmarks/train/throughput.py --random-model /tmp/smollm2-random --tokenizer .bench/tokenizer
  [ -f /tmp/synth/train.json ] || python3 -m tinyagent_ft data synth --out /tmp/synth --n 6000 --seed 0 > /dev/null
  # a throwaway run first: liger-kernel's Triton kernels compile on first use (cached on disk), which would
  # otherwise slow whichever run comes first
  python3 -m tinyagent_ft train -c configs/smollm2-compare.yaml model.name=/tmp/smollm2-random data.path=/tmp/synth \
    data.max_train=64 eval.subset=2 eval.max_new_tokens=24 training.output_dir=/tmp/cmp-warmup > /tmp/cmp-warmup.log 2>&1 \
    || { echo "warm-up run failed (the first run may include kernel compilation):"; tail -5 /tmp/cmp-warmup.log; }
  for run in ${RUNS:-adamw:optimizer.name=adamw galore:optimizer.name=galore natural_galore:optimizer.name=natural_galore}; do
    name=${run%%:*}; overrides=${run#*:}
    python3 -m tinyagent_ft train -c configs/smollm2-compare.yaml model.name=/tmp/smollm2-random data.path=/tmp/synth \
      data.max_train=${MAX_TRAIN:-2880} eval.subset=16 eval.max_new_tokens=64 training.output_dir=/tmp/cmp-$name \
      ${overrides//,/ } > /tmp/cmp-$name.log 2>&1 || { cp /tmp/cmp-$name.log "$out/"; tail -40 /tmp/cmp-$name.log; continue; }
    cp /tmp/cmp-$name/summary.json "$out/compare-$name.json"
  done
  python3 - "$out" <<'PY'
import json, pathlib, sys
rows = [(p.stem[8:], json.loads(p.read_text())) for p in sorted(pathlib.Path(sys.argv[1]).glob("compare-*.json"),
                                                                  key=lambda p: p.stat().st_mtime)]
print(f"{'run':<28} {'tokens/s':>9} {'x first':>8} {'train s':>8} {'steps':>6} {'peak GiB':>9} {'validation s':>13}")
for name, s in rows:
    print(f"{name:<28} {s['tokens_per_second']:>9,} {s['tokens_per_second'] / rows[0][1]['tokens_per_second']:>8.2f} "
          f"{s['train_seconds']:>8.1f} {s['steps']:>6} {s['peak_memory_gb']:>9.2f} {s['validation']['seconds']:>13.1f}")
PY
  ;;
esac
