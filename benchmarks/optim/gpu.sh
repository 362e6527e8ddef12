#!/usr/bin/env bash
# Run the optimizer benchmarks on a CUDA machine. Usage: bash benchmarks/optim/gpu.sh OUT_DIR [part]
# part: "fast" (memory, speed, peak memory), "convergence", or "all" (default).
# Offline machines: put wheels of transformers, tokenizers, peft and galore-torch in .bench/wheels,
# the SmolLM2 tokenizer cache in .bench/cache and the Wikipedia text in .bench/wiki.txt first.
set -euo pipefail
out=${1:?OUT_DIR}; part=${2:-all}
mkdir -p "$out"
if [ -d .bench/wheels ]; then
  python3 -m pip install -q --no-deps --no-index --target .bench/site .bench/wheels/*.whl
  export PYTHONPATH="$PWD/.bench/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export TINYAGENT_FT_CACHE="$PWD/.bench/cache"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ "$part" != convergence ]; then
  python3 benchmarks/optim/memory.py --out "$out/memory.json" 2>&1 | tee "$out/memory.txt"
  python3 benchmarks/optim/memory.py --dtype bfloat16 --out "$out/memory_bf16.json" 2>&1 | tee "$out/memory_bf16.txt"
  python3 benchmarks/optim/speed.py --out "$out/speed.json" 2>&1 | tee "$out/speed.txt"
  python3 benchmarks/optim/peak_memory.py --out "$out/peak_memory.json" 2>&1 | tee "$out/peak_memory.txt"
fi
if [ "$part" != fast ]; then
  wiki=(); [ -f .bench/wiki.txt ] && wiki=(--wiki .bench/wiki.txt)
  python3 benchmarks/optim/convergence.py "${wiki[@]}" --out-dir "$out" 2>&1 | tee "$out/convergence.txt"
fi
