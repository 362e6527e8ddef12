#!/usr/bin/env bash
# Two GPUs of one host through torchrun (NCCL): tokens/s against one GPU in the same call (16-sample micro-batches: 16 x 2 on one GPU, 16 x 1 per rank on two), loss curves at
# the same effective batch, and the rank-consistency check of tests/ddp_optim_worker.py on NCCL.
#   bash benchmarks/train/ddp.sh OUT [MAX_TRAIN]     (SKIP_CONSISTENCY=1: throughput runs only)
#   RUNS="name:override,override ..." (default: adamw and natural_galore), each on 1 and on 2 GPUs
# Offline: needs the SmolLM2 tokenizer folder in .gpu/tok and, where the machine lacks them, wheels in
# .gpu/whl (pydantic, networkx, llguidance). Writes OUT/ddp.json and prints a table.
set -euo pipefail
out=${1:?OUT}; max_train=${2:-2560}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if compgen -G ".gpu/whl/*.whl" > /dev/null; then  # liger-kernel too where .gpu/liger has it
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl \
    $(compgen -G ".gpu/liger/*.whl" || true)
  export PYTHONPATH=/tmp/site
fi
site=${PYTHONPATH:-}
export PYTHONPATH="$PWD${site:+:$site}"
python3 -c 'import torch; print(torch.cuda.device_count(), "x", torch.cuda.get_device_name(), "torch", torch.__version__)'

if [ -z "${SKIP_CONSISTENCY:-}" ]; then
# every rank holds the same projectors and weights, straight and resumed; sharded: each rank its share of the
# projectors, the same weights, and the run resumed from the gathered checkpoint ends where the straight one does
for spec in svd power "power float8 sharded"; do
  mkdir -p "$out/consistency-${spec// /-}"
  torchrun --standalone --nproc_per_node 2 tests/ddp_optim_worker.py "$out/consistency-${spec// /-}" $spec > /dev/null
done
python3 - "$out" <<'EOF'
import json, sys, torch
out, report = sys.argv[1], {}
diff = lambda a, b: max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
for name in ("svd", "power", "power-float8-sharded"):
    r0, r1 = (torch.load(f"{out}/consistency-{name}/rank{r}.pt", weights_only=True) for r in (0, 1))
    parts = ("weights",) if "sharded" in name else ("weights", "projectors")
    report[name] = {f"{run} {part} rank0 vs rank1": diff(r0[run][part], r1[run][part])
                    for run in ("straight", "resumed") for part in parts}
    for r, snap in enumerate((r0, r1)):
        for part in ("weights", "projectors"):
            report[name][f"rank{r} resumed vs straight {part}"] = diff(snap["straight"][part], snap["resumed"][part])
print(json.dumps(report, indent=1))
json.dump(report, open(f"{out}/consistency.json", "w"), indent=1)
EOF
rm -r "$out"/consistency-*
fi

python3 benchmarks/train/throughput.py --random-model /tmp/smollm2-random --tokenizer .gpu/tok > /dev/null
python3 -m tinyagent_ft data synth --out /tmp/synth --n 6000 --seed 0 > /dev/null
common="-c configs/smollm2-compare.yaml model.name=/tmp/smollm2-random data.path=/tmp/synth data.max_train=$max_train
        eval.subset=16 eval.max_new_tokens=64 training.batch_size=16"
export RUNS=${RUNS:-adamw:optimizer.name=adamw natural_galore:optimizer.name=natural_galore}
for run in $RUNS; do
  opt=${run%%:*}; overrides=${run#*:}; overrides=${overrides//,/ }
  CUDA_VISIBLE_DEVICES=0 python3 -m tinyagent_ft train $common $overrides training.grad_accum=2 \
    training.output_dir=/tmp/ddp-1gpu-$opt > "$out/1gpu-$opt.log" 2>&1 || { tail -30 "$out/1gpu-$opt.log"; exit 1; }
  torchrun --standalone --nproc_per_node 2 -m tinyagent_ft train $common $overrides training.grad_accum=1 \
    training.output_dir=/tmp/ddp-2gpu-$opt > "$out/2gpu-$opt.log" 2>&1 || { tail -30 "$out/2gpu-$opt.log"; exit 1; }
  for g in 1gpu 2gpu; do
    cp /tmp/ddp-$g-$opt/summary.json "$out/$g-$opt.summary.json"; cp /tmp/ddp-$g-$opt/metrics.jsonl "$out/$g-$opt.metrics.jsonl"
  done
done
python3 - "$out" <<'EOF'
import json, os, sys
out, rows = sys.argv[1], {}
def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, open(path)) if "loss" in r}
def steady(path):  # median tokens/s of the logged intervals after the first 10 steps (start-up excluded)
    rates = sorted(r["tokens_per_second"] for r in map(json.loads, open(path)) if r["step"] > 10 and "tokens_per_second" in r)
    return round(rates[len(rates) // 2])
for opt in (run.split(":")[0] for run in os.environ["RUNS"].split()):
    one, two = (json.load(open(f"{out}/{g}-{opt}.summary.json")) for g in ("1gpu", "2gpu"))
    l1, l2 = losses(f"{out}/1gpu-{opt}.metrics.jsonl"), losses(f"{out}/2gpu-{opt}.metrics.jsonl")
    steps = sorted(set(l1) & set(l2))
    rows[opt] = {"tokens_per_second_1gpu": one["tokens_per_second"], "tokens_per_second_2gpu": two["tokens_per_second"],
                 "speedup": round(two["tokens_per_second"] / one["tokens_per_second"], 2),
                 "steady_tokens_per_second": [steady(f"{out}/{g}-{opt}.metrics.jsonl") for g in ("1gpu", "2gpu")],
                 "steps": [one["steps"], two["steps"]], "loss_steps_compared": len(steps),
                 "max_abs_loss_difference": round(max(abs(l1[s] - l2[s]) for s in steps), 4),
                 "final_loss": [l1[steps[-1]], l2[steps[-1]]],
                 "validation_success": [one["best_success_rate"], two["best_success_rate"]],
                 "gpu_ms_per_step": [{k: round(1000 * s["gpu_seconds_by_phase"][k] / s["steps"], 1)
                                      for k in ("forward", "backward", "optimizer_step", "other")} for s in (one, two)]}
for r in rows.values():
    r["steady_speedup"] = round(r["steady_tokens_per_second"][1] / r["steady_tokens_per_second"][0], 2)
print(f"{'optimizer':16} {'1 GPU tok/s':>12} {'2 GPU tok/s':>12} {'speedup':>8} {'steady 1/2 GPU':>16} {'speedup':>8} "
      f"{'max |dloss|':>12}")
for opt, r in rows.items():
    s1, s2 = r["steady_tokens_per_second"]
    print(f"{opt:16} {r['tokens_per_second_1gpu']:>12} {r['tokens_per_second_2gpu']:>12} {r['speedup']:>8} "
          f"{s1:>7}/{s2:<8} {r['steady_speedup']:>8} {r['max_abs_loss_difference']:>12}")
print(f"\nGPU ms per optimizer step (rank 0; backward includes clipping and the all-reduce)\n"
      f"{'optimizer':16} {'GPUs':>4} {'forward':>8} {'backward':>9} {'step':>7} {'other':>7}")
for opt, r in rows.items():
    for n, ms in zip((1, 2), r["gpu_ms_per_step"]):
        print(f"{opt:16} {n:>4} {ms['forward']:>8} {ms['backward']:>9} {ms['optimizer_step']:>7} {ms['other']:>7}")
json.dump(rows, open(f"{out}/ddp.json", "w"), indent=1)
EOF
