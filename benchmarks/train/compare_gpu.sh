#!/usr/bin/env bash
# Fine-tune SmolLM2-135M with each optimizer on the same synthetic data, then score each on the test split
# with oracle tool selection (gold + 3 negatives, as in training). Usage:
#   bash benchmarks/train/compare_gpu.sh OUT_DIR [max_train] [test_limit]
# OPTS="natural_galore galore" runs a subset (default all four); the table covers the runs found in OUT_DIR.
# Prints one table row per optimizer: test success, peak GPU memory, train time. Weights are deleted
# after scoring unless KEEP_MODELS=1.
set -euo pipefail
out=${1:?OUT_DIR}; max_train=${2:-3000}; limit=${3:-300}
mkdir -p "$out"
[ -f data/synth/train.json ] || python3 -m tinyagent_ft data synth --out data/synth --n 40000 --seed 0
declare -A LR=([natural_galore]=2e-4 [galore]=2e-4 [adamw]=5e-5 [lora]=3e-4)
for opt in ${OPTS:-natural_galore galore adamw lora}; do
  python3 -m tinyagent_ft train -c configs/smollm2-compare.yaml optimizer.name=$opt optimizer.lr=${LR[$opt]} \
    data.max_train=$max_train training.output_dir="$out/$opt" > "$out/$opt.train.log" 2>&1
  python3 -m tinyagent_ft eval --model "$out/$opt/model" --data data/synth --split test --limit "$limit" \
    --oracle-negatives 3 --batch-size 64 --out "$out/$opt/eval" > "$out/$opt.eval.log" 2>&1
  [ "${KEEP_MODELS:-0}" = 1 ] || rm -rf "$out/$opt"/checkpoint-* "$out/$opt"/model/*.safetensors
  echo "done $opt"
done
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("| optimizer | lr | test success | strict | parse | peak GPU memory (GiB) | train time (s) | tokens/s |")
print("|---|---|---|---|---|---|---|---|")
for opt in ("natural_galore", "galore", "adamw", "lora"):
    if not (out / opt / "eval" / "report.json").is_file():
        continue
    s = json.loads((out / opt / "summary.json").read_text())
    r = json.loads((out / opt / "eval" / "report.json").read_text())["metrics"]
    cfg = (out / opt / "config.yaml").read_text()
    lr = next(l.split(":")[1].strip() for l in cfg.splitlines() if l.strip().startswith("lr:"))
    rows = [json.loads(l) for l in (out / opt / "metrics.jsonl").read_text().splitlines()]
    tps = [r_["tokens_per_second"] for r_ in rows if "tokens_per_second" in r_][1:]
    print(f"| {opt} | {lr} | {r['success_rate']:.3f} | {r['success_rate_strict']:.3f} | {r['parse_rate']:.3f} | "
          f"{s['peak_memory_gb']:.2f} | {s['train_seconds']:.0f} | {sum(tps) / max(len(tps), 1):,.0f} |")
PY
