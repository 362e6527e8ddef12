"""Does the natural-gradient transform help? The same projection with and without it, on the 16M-parameter
proxy of convergence.py (issue 13, section 2).

Grid: side in {std (one-sided), two_sided} x history in {0 (plain GaLore), 4, 20} x damping in {absolute 1e-3
(the reference code), relative 10 (our default)}; history 0 has no damping, so 10 cells. Each cell gets its own
learning rate: a sweep at seed 0 (extended by one value when the best sits at an end), then the best rate on
every seed. Every finished run is appended to runs.jsonl at once, so a cut-off call keeps its results and a
rerun with the same --out-dir skips them.

    python benchmarks/optim/ablation.py --corpus plans --out-dir benchmarks/optim/results/ablation
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from convergence import plans_text, run, wiki_text

DAMPING = {"abs 1e-3": dict(damping=1e-3, damping_mode="absolute"), "rel 10": dict(damping=10.0, damping_mode="relative")}


def cells() -> dict[str, dict]:
    grid = {}
    for side in ("std", "two_sided"):
        grid[f"{side} h0"] = dict(side=side, history=0)
        for history in (4, 20):
            for name, damping in DAMPING.items():
                grid[f"{side} h{history} {name}"] = dict(side=side, history=history, **damping)
    return grid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", choices=["wikipedia", "plans"], default="plans")
    ap.add_argument("--cells", nargs="+", default=None, help="subset of the grid (default: all 10 cells)")
    ap.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2, 3e-2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--wiki", default=None, help="plain-text file instead of gensim's sample")
    ap.add_argument("--tokenizer", default="smollm2-135m")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-dir", default="benchmarks/optim/results/ablation")
    args = ap.parse_args()
    from tinyagent_ft.models import load_tokenizer
    tok = load_tokenizer(args.tokenizer)
    ids = torch.tensor(tok(wiki_text(args.wiki) if args.corpus == "wikipedia" else plans_text(),
                           add_special_tokens=False)["input_ids"])
    cut = int(ids.numel() * 0.95)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"runs_{args.corpus}.jsonl"
    done = {(r["cell"], r["lr"], r["seed"]): r for r in map(json.loads, log.read_text().splitlines())} if log.is_file() else {}

    grid = {k: v for k, v in cells().items() if args.cells is None or k in args.cells}

    def once(cell: str, lr: float, seed: int) -> dict:
        if (cell, lr, seed) not in done:
            r = run(cell, ids[:cut], ids[cut:], len(tok), args.steps, seed, args.device, args.rank,
                    options=dict(lr=lr, **grid[cell]))
            done[(cell, lr, seed)] = r = {"cell": cell, "lr": lr, "seed": seed, **r}
            with log.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"{args.corpus:<9} {cell:<24} lr {lr:<7g} seed {seed}: val loss {r['final_val_loss']:.4f} "
                  f"state {r['state_mb']:.2f} MB ({r['seconds']:.0f} s)", flush=True)
        return done[(cell, lr, seed)]

    table = {}
    for cell in grid:
        lrs = sorted(args.lrs)
        while True:  # sweep at the first seed; extend past an end that wins
            losses = {lr: once(cell, lr, args.seeds[0])["final_val_loss"] for lr in lrs}
            best = min(losses, key=losses.get)
            if best == lrs[0] and best / 3 >= 1e-4:
                lrs.insert(0, best / 3)
            elif best == lrs[-1] and best * 3 <= 0.3:
                lrs.append(best * 3)
            else:
                break
        finals = [once(cell, best, s)["final_val_loss"] for s in args.seeds]
        table[cell] = {"lr": best, "sweep": losses, "mean": statistics.mean(finals),
                       "std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                       "state_mb": done[(cell, best, args.seeds[0])]["state_mb"],
                       "curve": [[s, statistics.mean(done[(cell, best, seed)]["curve"][i][1] for seed in args.seeds)]
                                 for i, (s, _) in enumerate(done[(cell, best, args.seeds[0])]["curve"])]}
    print(f"\n{args.corpus}: validation loss after {args.steps} steps at each cell's best lr, mean ± std over seeds "
          f"{args.seeds}, rank {args.rank}")
    print(f"{'cell':<24} {'best lr':>8} {'val loss':>17} {'state MB':>9}   sweep (seed {args.seeds[0]})")
    for cell, t in table.items():
        sweep = " ".join(f"{lr:g}:{v:.3f}" for lr, v in sorted(t["sweep"].items()))
        print(f"{cell:<24} {t['lr']:>8g} {t['mean']:>8.4f} ± {t['std']:<6.4f} {t['state_mb']:>9.2f}   {sweep}")
    (out / f"ablation_{args.corpus}.json").write_text(json.dumps(
        {"corpus": args.corpus, "steps": args.steps, "rank": args.rank, "seeds": args.seeds, "cells": table}, indent=2))
    plot(table, args.corpus, out / f"ablation_{args.corpus}.png")


def plot(table: dict, corpus: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (curves, memory) = plt.subplots(1, 2, figsize=(13, 4.5))
    for cell, t in table.items():
        style = "-" if "two_sided" in cell else "--"
        curves.plot([s for s, _ in t["curve"]], [v for _, v in t["curve"]], style, label=cell)
        memory.errorbar(t["state_mb"], t["mean"], yerr=t["std"], fmt="o" if "two_sided" in cell else "s", label=cell)
    curves.set(title=f"{corpus}: validation loss (best lr per cell, mean of seeds)", xlabel="step", ylabel="loss")
    memory.set(title="final validation loss against optimizer state", xlabel="optimizer state (MB)", ylabel="loss")
    curves.legend(fontsize=7)
    memory.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
