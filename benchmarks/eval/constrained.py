"""Free versus grammar-constrained decoding on the demo's held-out test queries, base and fine-tuned.

Uses what `tinyagent-ft demo --out DIR` left in DIR (data, classifier, index, fine-tuned planner). Both
modes run batch by batch in turn on the same prompts, so load on the machine hits them alike. Prints
parse rate, success, strict success, forced endings, wall time and time per generated token, with the
constrained/free ratios; writes the numbers as JSON.

    python benchmarks/eval/constrained.py --demo runs/demo --out benchmarks/eval/results/constrained_cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from eval.report import score
from tinyagent_ft.data import load_dataset
from tinyagent_ft.planner import Planner
from tinyagent_ft.planner_folder import SETTINGS_FILE

MODES = ("free", "constrained")


def run_model(name: str, model: str, demo: Path, examples, batch_size: int, max_new_tokens: int) -> dict:
    """Prompts as the demo builds them: its classifier, its index, its number of examples."""
    settings = json.loads((demo / "planner" / "model" / SETTINGS_FILE).read_text())["prompt"]
    planner = Planner.from_pretrained(model, classifier=demo / "tool-classifier", index=demo / "example-index",
                                      num_examples=settings["num_examples"])
    planner.generate([examples[0].query], max_new_tokens=32)  # warm-up: grammar engine, kernels
    texts = {m: {} for m in MODES}
    stats = {m: {"seconds": 0.0, "tokens": 0, "forced": 0, "mask_seconds": 0.0} for m in MODES}
    for i in range(0, len(examples), batch_size):
        batch = examples[i:i + batch_size]
        for mode in MODES:
            before = planner.stats["constraint_seconds"]
            start = time.perf_counter()
            results = planner.generate([e.query for e in batch], [e.date for e in batch], max_new_tokens=max_new_tokens,
                                       batch_size=batch_size, constrain=mode == "constrained")
            s = stats[mode]
            s["seconds"] += time.perf_counter() - start
            s["mask_seconds"] += planner.stats["constraint_seconds"] - before
            s["tokens"] += sum(r.completion_tokens for r in results)
            s["forced"] += sum(r.forced_end for r in results)
            texts[mode].update({e.id: r.text for e, r in zip(batch, results)})
        print(f"{name}: {min(i + batch_size, len(examples))}/{len(examples)}", flush=True)
    out = {}
    for mode in MODES:
        m = score(examples, texts[mode])["metrics"]
        s = stats[mode]
        out[mode] = {"success_rate": m["success_rate"], "success_rate_strict": m["success_rate_strict"],
                     "parse_rate": m["parse_rate"], "forced_endings": s["forced"], "seconds": round(s["seconds"], 1),
                     "completion_tokens": s["tokens"], "ms_per_token": 1000 * s["seconds"] / max(s["tokens"], 1),
                     "constraint_seconds": round(s["mask_seconds"], 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=Path("runs/demo"))
    ap.add_argument("--test-size", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--models", nargs="+", default=["base", "fine-tuned"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    examples = load_dataset(args.demo / "data", "test").examples[:args.test_size]
    models = {"base": "smollm2-135m", "fine-tuned": str(args.demo / "planner" / "model")}
    rows = {name: run_model(name, models[name], args.demo, examples, args.batch_size, args.max_new_tokens)
            for name in args.models}
    print("\n| model | decoding | parse rate | success | strict | forced endings | wall s | ms/token | in grammar s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        for mode in MODES:
            r = row[mode]
            print(f"| {name} | {mode} | {r['parse_rate']:.3f} | {r['success_rate']:.3f} | {r['success_rate_strict']:.3f} "
                  f"| {r['forced_endings']} | {r['seconds']:.0f} | {r['ms_per_token']:.1f} | {r['constraint_seconds']:.1f} |")
        f, c = row["free"], row["constrained"]
        print(f"| {name} | constrained / free | | | | | {c['seconds'] / f['seconds']:.2f}x "
              f"| {c['ms_per_token'] / f['ms_per_token']:.2f}x | |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "test_queries": len(examples), "batch_size": args.batch_size,
                                        "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
                                        "machine": platform.processor() or platform.machine(),
                                        "device": "cuda" if torch.cuda.is_available() else "cpu"}, indent=2))


if __name__ == "__main__":
    main()
