"""Time scoring 1,000 gold/prediction plan pairs on one core: without and with graph edit distance.

    python benchmarks/eval/score_speed.py [--data DIR] [--out results.json]

Predictions are gold plans with realistic damage (swapped dependency, wrong tool, extra step,
changed argument, truncation) so every code path runs. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time

import torch

from eval.metrics import aggregate, score_pair
from tinyagent_ft.data import load_dataset
from tinyagent_ft.synth.generate import SynthConfig, synthesize


def damaged(plan: str, rng: random.Random) -> str:
    k = rng.randrange(6)
    if k == 0:
        return plan.replace('"$1"', '"$2"', 1)
    if k == 1:
        return plan.replace("get_email_address", "get_phone_number", 1)
    if k == 2:
        return plan.replace('"', "'", 3)
    if k == 3:
        return plan[: len(plan) // 2]
    if k == 4:
        lines = plan.splitlines()
        return "\n".join(lines[:-1] + [f'{len(lines)}. get_phone_number("X")', f"{len(lines) + 1}. join()"])
    return plan


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None, help="dataset dir (default: synthesize 2,000 examples)")
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--ged-timeout", type=float, default=0.5)
    ap.add_argument("--out", default="benchmarks/eval/score_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = args.data or tempfile.mkdtemp()
    if not args.data:
        synthesize(data, SynthConfig(n=args.pairs * 2, seed=0, val_fraction=0.0, test_fraction=0.5))
    gold = load_dataset(data, "test").examples[: args.pairs]
    rng = random.Random(0)
    pairs = [(e.plan, damaged(e.plan, rng)) for e in gold]
    results = {}
    for label, timeout in (("structure+strict+finer", None), ("... + edit distance", args.ged_timeout)):
        t0 = time.perf_counter()
        metrics, _ = aggregate(score_pair(g, p, timeout) for g, p in pairs)
        results[label] = {"seconds": time.perf_counter() - t0, "success_rate": metrics["success_rate"],
                          "ged_timeouts": metrics.get("ged_timeouts", 0)}
    print(f"{'scoring of ' + str(len(pairs)) + ' pairs':<28} {'seconds':>8} {'ratio':>6} {'success':>8} {'GED timeouts':>13}")
    base = results["structure+strict+finer"]["seconds"]
    for label, r in results.items():
        print(f"{label:<28} {r['seconds']:>8.3f} {r['seconds'] / base:>6.2f} {r['success_rate']:>8.3f} {r['ged_timeouts']:>13}")
    with open(args.out, "w") as fh:
        json.dump({"pairs": len(pairs), "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
