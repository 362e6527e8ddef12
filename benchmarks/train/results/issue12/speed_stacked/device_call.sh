#!/usr/bin/env bash
# Session 28: optimizer step on the SmolLM2-135M shape, before (.gpu/before = the optimizer of the parent commit) and
# after (this checkout) the stacked state, in one call on one GPU.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
cd benchmarks/optim
for which in after before; do
  root=$PWD/../..; [ $which = before ] && root=$PWD/../../.gpu/before
  PYTHONPATH=$root:/tmp/site timeout 140 python3 speed.py --shape smollm2 --training --gap 50 --profile \
    --only adamw "one-sided) [power]" "(default) [power]" --out $OUT/speed_smollm2_$which.json 2>&1 | grep -v Warn | tee $OUT/speed_smollm2_$which.txt | head -8
done
