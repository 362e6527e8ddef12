"""Summarise a plan-task sweep (benchmarks/train/sweep_gpu.sh folders) as ablation cells: each cell is an optimizer
with its overrides (seeds pooled), each learning rate of it a row; the best rate per cell (mean success, then
strict success), whether it is bracketed, the optimizer-state bytes of the cell's configuration, and how many
right-structure plans fail strict success on a string argument that is not in the query (the copy errors that a
too-high rate on the embeddings causes). Writes runs.json (each run with its per-query outcomes, for paired tests),
cells.json, table.md, ablation.png (results against optimizer state) and loss.png (training loss against steps).

    python benchmarks/train/plan_ablation.py SWEEP_DIR [SWEEP_DIR ...] --data data/synth --out OUT_DIR
    python benchmarks/train/plan_ablation.py OLD_OUT/runs.json --out OUT_DIR   (again, from a summary's runs)
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from eval.plan import parse_plan
from tinyagent_ft.data import load_dataset

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def strings(value) -> list[str]:
    """The free-text string arguments of a value (dates and ``$k`` references left out)."""
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings(v)]
    if isinstance(value, str) and "$" not in value and not DATE.match(value) and len(value) > 1:
        return [value]
    return []


def copy_errors(run: Path, report: dict, queries: dict[str, str]) -> tuple[int, int]:
    """(right-structure plans failing strict success, those of them with a string argument not in the query), from
    a run's eval report and predictions."""
    plans = {p["id"]: p["plan"] for p in map(json.loads, (run / "eval" / "predictions.jsonl").read_text().splitlines())}
    loose = [e["id"] for e in report["examples"] if e["success"] and not e["success_strict"]]
    foreign = 0
    for qid in loose:
        args = [s for step in parse_plan(plans[qid]).steps for s in strings(step.args)]
        foreign += any(s.lower() not in queries[qid].lower() for s in args)
    return len(loose), foreign


def state_bytes(train_command: str) -> int:
    """Optimizer-state bytes of a run's configuration (its config file and overrides), from the model's shapes alone.
    (The run's saved config.yaml does not load back: it sets every option, also those its optimizer refuses.)"""
    from tinyagent_ft.config import load_config
    from tinyagent_ft.models import shapes_only_model
    from tinyagent_ft.train import estimate_state_bytes
    words = train_command.split()
    config = words[words.index("-c") + 1]
    cfg = load_config(config, [w for w in words[words.index("-c") + 2:] if "=" in w])
    return estimate_state_bytes(shapes_only_model(cfg.model.name), cfg)


def cell_of(launch: dict) -> str:
    parts = [o for o in launch.get("overrides", "").split(",") if o and not o.startswith("training.seed=")]
    return " ".join([launch["optimizer"], *parts])


def run_record(run: Path, queries: dict[str, str]) -> dict:
    """One run of a sweep folder: its cell, rate, seed, results, copy errors, loss curve and per-query outcomes."""
    launch = json.loads((run / "launch.json").read_text())
    report = json.loads((run / "eval" / "report.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    loose, foreign = copy_errors(run, report, queries)
    examples = sorted(report["examples"], key=lambda e: e["id"])
    losses = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    return {"run": run.name, "cell": cell_of(launch), "lr": launch["lr_text"],
            "seed": int(dict(o.split("=") for o in launch["overrides"].split(",") if o).get("training.seed", 0)),
            "success": report["metrics"]["success_rate"], "success_strict": report["metrics"]["success_rate_strict"],
            "parse_rate": report["metrics"]["parse_rate"], "train_seconds": summary["train_seconds"],
            "right_structure_strict_failures": loose, "with_a_string_not_in_the_query": foreign,
            "train_loss_by_step": {r["step"]: round(r["loss"], 5) for r in losses if "loss" in r},
            "train_command": launch["train_command"], "eval_command": launch["eval_command"],
            "query_ids_sorted_success_bits": "".join("01"[e["success"]] for e in examples),
            "query_ids_sorted_strict_bits": "".join("01"[e["success_strict"]] for e in examples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+", type=Path, help="sweep folders, or the runs.json of an earlier summary")
    ap.add_argument("--data", type=Path, default=Path("data/synth"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    runs = [r for sweep in args.sweeps if sweep.is_file() for r in json.loads(sweep.read_text())]
    dirs = [sweep for sweep in args.sweeps if not sweep.is_file()]
    queries = {e.id: e.query for e in load_dataset(args.data, "test").examples} if dirs else {}
    for sweep in dirs:
        runs += [run_record(launch.parent, queries) for launch in sorted(sweep.glob("*/launch.json"))
                 if (launch.parent / "eval" / "report.json").is_file()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runs.json").write_text(json.dumps(runs, indent=1))

    by_cell = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by_cell[r["cell"]][r["lr"]].append(r)
    cells = []
    for cell, lrs in by_cell.items():
        rows = []
        for lr, rs in sorted(lrs.items(), key=lambda kv: float(kv[0])):
            su, st = [r["success"] for r in rs], [r["success_strict"] for r in rs]
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else None
            rows.append({"lr": lr, "seeds": sorted(r["seed"] for r in rs), "success_mean": statistics.mean(su),
                         "success_std": sd(su), "strict_mean": statistics.mean(st), "strict_std": sd(st),
                         "right_structure_strict_failures": sum(r["right_structure_strict_failures"] for r in rs),
                         "with_a_string_not_in_the_query": sum(r["with_a_string_not_in_the_query"] for r in rs)})
        best = max(rows, key=lambda x: (x["success_mean"], x["strict_mean"]))
        bracketed = len(rows) >= 3 and best is not rows[0] and best is not rows[-1]
        cells.append({"cell": cell, "best_lr": best["lr"], "bracketed": bracketed,
                      "state_bytes": state_bytes(lrs[best["lr"]][0]["train_command"]), "rates": rows})
    cells.sort(key=lambda c: -max(r["success_mean"] for r in c["rates"]))
    (args.out / "cells.json").write_text(json.dumps(cells, indent=1))

    fmt = lambda m, s: f"{m:.3f}" + (f" +- {s:.3f}" if s is not None else "")
    lines = ["| cell | lr | seeds | success | strict | copy errors | state MB | best |", "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        for r in c["rates"]:
            mark = ("**best**" + ("" if c["bracketed"] else " (not bracketed)")) if r["lr"] == c["best_lr"] else ""
            lines.append(f"| {c['cell']} | {r['lr']} | {len(r['seeds'])} | {fmt(r['success_mean'], r['success_std'])} | "
                         f"{fmt(r['strict_mean'], r['strict_std'])} | {r['with_a_string_not_in_the_query']} / "
                         f"{r['right_structure_strict_failures']} | {c['state_bytes'] / 1e6:.1f} | {mark} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(cells, runs, args.out / "ablation.png")
    plot_losses(cells, runs, args.out / "loss.png")


def plot(cells: list, runs: list, out: Path) -> None:
    """Success and strict success of each cell at its best rate, every seed a dot, against optimizer state."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharex=True)
    colors = plt.get_cmap("tab20").colors
    for k, (key, label) in enumerate((("success", "success"), ("success_strict", "strict success"))):
        ax = axes[k]
        for i, c in enumerate(cells):
            seeds = [r[key] for r in runs if r["cell"] == c["cell"] and r["lr"] == c["best_lr"]]
            x = c["state_bytes"] / 1e6
            color = colors[i % len(colors)]
            ax.scatter([x] * len(seeds), seeds, color=color, alpha=0.5, s=18)
            ax.plot([x], [statistics.mean(seeds)], "o", color=color, ms=8,
                    label=f"{c['cell'].replace('optimizer.', '')} @ {c['best_lr']} ({len(seeds)} seeds)" if k == 0 else None)
        ax.set_xlabel("optimizer state (MB, estimated)")
        ax.set_ylabel(f"test {label} (300 queries)")
        ax.set_title(f"{label} at each cell's best rate (dots: seeds)")
    fig.legend(loc="lower center", ncol=2, fontsize=7)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_losses(cells: list, runs: list, out: Path) -> None:
    """Training loss against steps for each cell at its best rate (mean over its seeds), log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.get_cmap("tab20").colors
    for i, c in enumerate(cells):
        curves = [r["train_loss_by_step"] for r in runs if r["cell"] == c["cell"] and r["lr"] == c["best_lr"]]
        steps = sorted(set.intersection(*(set(curve) for curve in curves)), key=int)
        ax.plot([int(t) for t in steps], [statistics.mean(curve[t] for curve in curves) for t in steps],
                color=colors[i % len(colors)], label=f"{c['cell'].replace('optimizer.', '')} @ {c['best_lr']} "
                                                     f"({len(curves)} seeds)")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (plan tokens), mean over seeds")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
