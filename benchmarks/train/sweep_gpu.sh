#!/usr/bin/env bash
# Learning-rate sweep on one GPU: fine-tune SmolLM2-135M with each given optimizer:lr pair, several runs at
# once on the same card (a 135M model leaves an H100 mostly idle), and score each model on the test split
# as soon as its training ends, with oracle tool selection (gold + 3 negatives, as in training). Usage:
#   bash benchmarks/train/sweep_gpu.sh OUT_DIR OPT:LR[:KEY=VALUE,...] [...]
#   e.g. EXTEND=1 bash benchmarks/train/sweep_gpu.sh OUT galore:1e-4 galore:3e-4 galore:1e-3 galore:3e-3
#        bash benchmarks/train/sweep_gpu.sh OUT galore:3e-3:optimizer.unprojected_lr=3e-4,training.seed=1
#   bash benchmarks/train/sweep_gpu.sh OUT_DIR          (no runs: only collect OUT_DIR's records and print the table)
# A run's overrides (after the second colon) go to `train` and name its folder (OPT-LR-unprojected_lr3e-4-seed1).
# Runs are spread round-robin over the visible GPUs, PARALLEL at once on each (default: one per 12 GiB of
# free GPU memory, at most 8; 1 on CPU), each with its share of the CPU threads. Seeds of one setting are
# summarised as mean +- std. CONFIG
# (configs/smollm2-compare.yaml), MAX_TRAIN training examples (default: the config's, 3000 in smollm2-compare.yaml;
# null: all), LIMIT (300; all: the whole split) test queries, ORACLE (3: gold tools + 3 negatives at test time;
# none: the planner as users run it, the model folder's classifier picks the tools), MODEL (smollm2-135m), EXTRA
# (more train overrides). A prompt.classifier or prompt.index folder that the config names and that does not
# exist yet is built first with the README's commands (`retriever train --max-examples 6000 --target-recall
# 0.998`, `retriever index`), from ENCODER (a sentence-transformers folder; default the packaged MiniLM) as the
# classifier's backbone and the index's encoder. PREP_ONLY=1: only generate the data and build those folders.
# The full-data comparison of issue 13 (benchmarks/train/results/issue13/full.md):
#   CONFIG=configs/smollm2-full.yaml LIMIT=all ORACLE=none bash benchmarks/train/sweep_gpu.sh OUT natural_galore:3e-3 galore:3e-3
# RESUME=1: a run continues from the last checkpoint in its folder (a run longer than one GPU call), instead of
# starting afresh. EXTEND=1:
# afterwards, an optimizer whose best lr (test success, then strict success, then final loss) sits at an end of the lrs run for
# it gets one more run a step beyond that end (1-3-10 steps: 1e-4 -> 3e-5, 3e-3 -> 1e-2).
# A CPU check: MODEL=tiny-random MAX_TRAIN=16 LIMIT=8 EXTRA="eval.subset=8" bash benchmarks/train/sweep_gpu.sh OUT adamw:1e-4
# Per run: OUT_DIR/OPT-LR/ (launch.json, summary.json, metrics.jsonl, eval/report.json) and OUT_DIR/OPT-LR.*.log;
# weights and checkpoints are deleted after scoring unless KEEP_MODELS=1. OUT_DIR/sweep.json holds one record
# per run found in OUT_DIR (earlier calls too). Times and tokens/s are measured while the runs share the GPU.
set -euo pipefail
out=${1:?OUT_DIR}; shift
config=${CONFIG:-configs/smollm2-compare.yaml}; limit=${LIMIT:-300}; oracle=${ORACLE:-3}; model=${MODEL:-smollm2-135m}
extra=${EXTRA:-}${MAX_TRAIN:+ data.max_train=$MAX_TRAIN}
limit_arg=$([ "$limit" = all ] || echo "--limit $limit"); oracle_arg=$([ "$oracle" = none ] || echo "--oracle-negatives $oracle")
mkdir -p "$out"

if [ $# -ge 1 ] || [ "${PREP_ONLY:-0}" = 1 ]; then
[ -f data/synth/train.json ] || python3 -m tinyagent_ft data synth --out data/synth --n 40000 --seed 0
# the tool classifier and example index the config names, built once before the runs that copy them
read -r clf idx < <(python3 -c 'import sys; from tinyagent_ft.config import load_config
p = load_config(sys.argv[1], sys.argv[2].split()).prompt; print(p.classifier or "-", p.index or "-")' "$config" "$extra")
prep=()
if [ "$clf" != - ] && [ ! -d "$clf" ]; then
  python3 -m tinyagent_ft retriever train --data data/synth --out "$clf" --max-examples 6000 --target-recall 0.998 \
    ${ENCODER:+--backbone "$ENCODER"} > "$out/tool-classifier.log" 2>&1 & prep+=($!)
fi
if [ "$idx" != - ] && [ ! -d "$idx" ]; then
  python3 -m tinyagent_ft retriever index --data data/synth --out "$idx" ${ENCODER:+--encoder "$ENCODER"} \
    > "$out/example-index.log" 2>&1 & prep+=($!)
fi
for p in "${prep[@]}"; do
  wait "$p" || { echo "FAILED building the retrievers:"; tail -25 "$out"/tool-classifier.log "$out"/example-index.log; exit 1; }
done
[ ${#prep[@]} = 0 ] || { tail -n 3 "$out"/tool-classifier.log "$out"/example-index.log 2>/dev/null || true; }
if [ "${PREP_ONLY:-0}" = 1 ]; then echo "PREP_ONLY: data and retrievers ready"; exit 0; fi
# convert the preset (GGUF -> safetensors) once, before the concurrent runs would race on it
python3 -c 'import sys; from tinyagent_ft.models import resolve_model; print("model:", resolve_model(sys.argv[1]))' "$model"
# constrained decoding refuses a tokenizer whose vocabulary llguidance misreads (the GGUF tokenizer written by
# transformers 5.17 is one): fail here, before any GPU minute is spent
python3 -c 'import sys; from tinyagent_ft.constrain import PlanConstraint; from tinyagent_ft.models import load_tokenizer
PlanConstraint(load_tokenizer(sys.argv[1])); print("tokenizer check passed")' "$model"
read -r device free_gib gpus < <(python3 -c 'import torch
if torch.cuda.is_available():
    print(torch.cuda.get_device_name().replace(" ", "_"), torch.cuda.mem_get_info()[0] // 2**30, torch.cuda.device_count())
else: print("cpu", 0, 0)')
device=${device//_/ }
parallel=${PARALLEL:-$(( free_gib >= 24 ? (free_gib / 12 > 8 ? 8 : free_gib / 12) : 1 ))}
slots=$(( parallel * (gpus > 0 ? gpus : 1) ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / slots > 1 ? $(nproc) / slots : 1 ))}
logger=0
if command -v nvidia-smi > /dev/null; then  # GPU load while the runs share it, every 5 s
  logger=1
  ( while [ ! -f "$out/.stop-$$" ]; do
      nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader >> "$out/gpu_load.csv"; sleep 5
    done; rm -f "$out/.stop-$$" ) &
fi

one() {  # train, then score, one OPT:LR[:OVERRIDES] on GPU $2; a failure leaves OUT_DIR/NAME.FAILED
  local opt lr overrides tag
  IFS=: read -r opt lr overrides <<< "$1"
  tag=""
  for kv in ${overrides//,/ }; do k=${kv%%=*}; tag+=${tag:+-}${k##*.}${kv#*=}; done
  tag=${tag//[^A-Za-z0-9._-]/_}
  local dir="$out/$opt-$lr${tag:+-$tag}"
  local train="python3 -m tinyagent_ft train -c $config model.name=$model optimizer.name=$opt \
optimizer.lr=$lr training.output_dir=$dir $extra ${overrides//,/ }${RESUME:+ --resume auto}"
  local eval="python3 -m tinyagent_ft eval --model $dir/model --data data/synth --split test \
$limit_arg $oracle_arg --batch-size 64 --out $dir/eval"
  [ -n "${RESUME:-}" ] || rm -rf "$dir"; rm -f "$dir.FAILED"; mkdir -p "$dir"
  python3 - "$dir/launch.json" "$opt" "$lr" "$overrides" "$slots" "$device" "$2" "$train" "$eval" <<'PY'
import json, sys
path, opt, lr, overrides, n, device, gpu, train, ev = sys.argv[1:]
json.dump({"optimizer": opt, "lr": float(lr), "lr_text": lr, "overrides": overrides, "parallel": int(n),
           "device": device, "gpu": gpu, "train_command": " ".join(train.split()),
           "eval_command": " ".join(ev.split())}, open(path, "w"), indent=1)
PY
  export CUDA_VISIBLE_DEVICES=$2
  local t0=$SECONDS t1
  if ! $train > "$dir.train.log" 2>&1; then
    echo "FAILED train $1 (tail of $dir.train.log):"; tail -25 "$dir.train.log"; touch "$dir.FAILED"; return 0
  fi
  t1=$SECONDS
  if ! $eval > "$dir.eval.log" 2>&1; then
    echo "FAILED eval $1 (tail of $dir.eval.log):"; tail -25 "$dir.eval.log"; touch "$dir.FAILED"; return 0
  fi
  echo "{\"train_wall_seconds\": $((t1 - t0)), \"eval_wall_seconds\": $((SECONDS - t1))}" > "$dir/walls.json"
  [ "${KEEP_MODELS:-0}" = 1 ] || rm -rf "$dir"/checkpoint-* "$dir"/model/*.safetensors
  echo "$(date +%T) done $1: train $((t1 - t0)) s, eval $((SECONDS - t1)) s"
}

start=$SECONDS; pids=(); i=0
echo "$(date +%T) $# runs, up to $slots at once ($parallel per GPU, $gpus GPUs), on $device"
for run in "$@"; do
  while [ "$(jobs -rp | wc -l)" -ge $((slots + logger)) ]; do wait -n || true; done
  one "$run" $(( gpus > 0 ? i % gpus : 0 )) & pids+=($!); i=$((i + 1))
done
for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
touch "$out/.stop-$$"
echo "$(date +%T) $# runs, up to $slots at once, on $device: $((SECONDS - start)) s wall"
fi

python3 - "$out" <<'PY'
import json, statistics, sys, pathlib
from collections import defaultdict
out, records = pathlib.Path(sys.argv[1]), []
for launch in sorted(out.glob("*/launch.json")):
    d = launch.parent
    rec = json.loads(launch.read_text())
    if not (d / "eval" / "report.json").is_file() or not (d / "summary.json").is_file():
        rec["status"] = "failed" if d.with_name(d.name + ".FAILED").exists() else "unfinished"
        records.append(rec)
        continue
    s = json.loads((d / "summary.json").read_text())
    r = json.loads((d / "eval" / "report.json").read_text())
    m, thr = r["metrics"], r.get("throughput", {})
    losses = [row for row in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    rec.update(status="ok", success=m["success_rate"], success_strict=m["success_rate_strict"], parse_rate=m["parse_rate"],
               tool_f1_micro=m.get("tool_f1_micro"), edge_f1=m.get("edge_f1"), test_queries=m.get("count"),
               train_seconds=s["train_seconds"], tokens_per_second=s["tokens_per_second"], tokens=s["tokens"],
               steps=s["steps"], peak_gpu_memory_gib=round(s["peak_memory_gb"], 2) if s["peak_memory_gb"] else None,
               final_train_loss=losses[-1]["loss"] if losses else None,
               final_train_loss_step=losses[-1]["step"] if losses else None, mean_train_loss=s["train_loss"],
               validation_success=s["best_success_rate"], fused_kernels=s.get("fused_kernels"), packing=s.get("packing"),
               forced_endings=thr.get("forced_endings"), plans_per_second=thr.get("plans_per_second"),
               **(json.loads((d / "walls.json").read_text()) if (d / "walls.json").is_file() else {}))
    records.append(rec)
records.sort(key=lambda x: (x["optimizer"], x.get("overrides", ""), x["lr"]))
(out / "sweep.json").write_text(json.dumps(records, indent=1))
print("| optimizer | lr | overrides | success | strict | parse | train s | tokens/s | peak GPU GiB | final loss | runs at once |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for x in records:
    head = f"| {x['optimizer']} | {x['lr_text']} | {x.get('overrides', '')} |"
    if x["status"] != "ok":
        print(f"{head} {x['status']} | | | | | | | {x['parallel']} |")
        continue
    print(f"{head} {x['success']:.3f} | {x['success_strict']:.3f} | {x['parse_rate']:.3f} | "
          f"{x['train_seconds']:.0f} | {x['tokens_per_second']:,} | {x['peak_gpu_memory_gib']} | "
          f"{x['final_train_loss']:.4f} | up to {x['parallel']} |")
def setting(x, seedless=False):  # a run's optimizer and overrides, without its seed when seeds are pooled
    parts = [o for o in x.get("overrides", "").split(",") if o and not (seedless and o.startswith("training.seed="))]
    return x["optimizer"], ",".join(parts)
ok = [x for x in records if x["status"] == "ok"]
best = {}
for x in ok:
    key = (x["success"], x["success_strict"], -x["final_train_loss"])
    if setting(x) not in best or key > best[setting(x)][0]:
        best[setting(x)] = (key, x)
for (opt, overrides), (_, x) in best.items():
    lrs = [y["lr"] for y in ok if setting(y) == (opt, overrides)]
    where = " (lowest run)" if x["lr"] == min(lrs) else " (highest run)" if x["lr"] == max(lrs) else ""
    print(f"best {opt}{' ' + overrides if overrides else ''}: lr {x['lr_text']}{where}, success {x['success']:.3f}, "
          f"strict {x['success_strict']:.3f}")
seeds = defaultdict(list)
for x in ok:
    seeds[setting(x, seedless=True) + (x["lr_text"],)].append(x)
if any(len(v) > 1 for v in seeds.values()):
    print("\n| optimizer | lr | overrides (seeds pooled) | seeds | success mean +- std | strict mean +- std |")
    print("|---|---|---|---|---|---|")
    for (opt, overrides, lr), runs in sorted(seeds.items()):
        su, st = [r["success"] for r in runs], [r["success_strict"] for r in runs]
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"| {opt} | {lr} | {overrides} | {len(runs)} | {statistics.mean(su):.3f} +- {sd(su):.3f} | "
              f"{statistics.mean(st):.3f} +- {sd(st):.3f} |")
PY

if [ "${EXTEND:-0}" = 1 ] && [ $# -ge 1 ]; then
  ext=$(python3 - "$out" <<'PY'
import json, sys, pathlib
records = [x for x in json.loads((pathlib.Path(sys.argv[1]) / "sweep.json").read_text()) if x["status"] == "ok"]
def step(text, up):  # the next value of the 1-3-10 sequence
    mant, exp = text.lower().split("e")
    mant, exp = int(float(mant)), int(exp)
    if up:
        return f"3e{exp}" if mant == 1 else f"1e{exp + 1}"
    return f"1e{exp}" if mant == 3 else f"3e{exp - 1}"
for opt, overrides in sorted({(x["optimizer"], x.get("overrides", "")) for x in records}):
    runs = sorted((x for x in records if (x["optimizer"], x.get("overrides", "")) == (opt, overrides)),
                  key=lambda x: x["lr"])
    if len(runs) < 2:
        continue
    top = max(runs, key=lambda x: (x["success"], x["success_strict"], -x["final_train_loss"]))
    if top is runs[0] or top is runs[-1]:
        print(f"{opt}:{step(top['lr_text'], top is runs[-1])}" + (f":{overrides}" if overrides else ""))
PY
)
  if [ -n "$ext" ]; then
    echo "$(date +%T) extending: $ext"
    EXTEND=0 bash "$0" "$out" $ext
  else
    echo "no best lr at an end of its range: no extension"
  fi
fi
