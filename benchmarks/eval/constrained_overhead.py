"""The cost of constrained decoding per generated token, free versus constrained, same model and prompts.

For machines without the demo's models (a lent GPU): a model given by config (random weights, the real
shape) or by path, all 16 tools in every prompt, no examples. Batches alternate free and constrained.
Random weights never stop by themselves, so free rows run to the budget while constrained rows end
by force earlier: compare milliseconds per generated token, and the time spent in the grammar
processor itself (masks, budget checks), which is the overhead proper.

    python benchmarks/eval/constrained_overhead.py --tokenizer DIR --random-config DIR --device cuda
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tinyagent_ft.planner import Planner
from tinyagent_ft.prompt import PromptBuilder, PromptSettings
from tinyagent_ft.synth.generate import SynthConfig, synthesize
from tinyagent_ft.data import load_dataset


def load(args) -> Planner:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    if args.random_config:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.random_config), dtype=torch.bfloat16)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16)
    return Planner(model.to(args.device), tok, PromptBuilder(PromptSettings(num_examples=0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--random-config", help="folder with a config.json: random weights of that shape")
    ap.add_argument("--model", help="a checkpoint instead of random weights")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    data = Path("/tmp/overhead-synth")
    if not (data / "test.json").is_file():
        synthesize(data, SynthConfig(n=2000, seed=0))
    queries = [e.query for e in load_dataset(data, "test").examples[:args.queries]]
    planner = load(args)
    planner.generate(queries[:args.batch_size], max_new_tokens=32)  # warm-up both paths
    planner.generate(queries[:args.batch_size], max_new_tokens=32, constrain=False)
    rows = {m: {"seconds": 0.0, "tokens": 0, "grammar_seconds": 0.0, "forced": 0} for m in ("free", "constrained")}
    for i in range(0, len(queries), args.batch_size):
        for mode, row in rows.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            before, start = planner.stats["constraint_seconds"], time.perf_counter()
            res = planner.generate(queries[i:i + args.batch_size], max_new_tokens=args.max_new_tokens,
                                   batch_size=args.batch_size, constrain=mode == "constrained")
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            row["seconds"] += time.perf_counter() - start
            row["grammar_seconds"] += planner.stats["constraint_seconds"] - before
            row["tokens"] += sum(r.completion_tokens for r in res)
            row["forced"] += sum(r.forced_end for r in res)
    for row in rows.values():
        row["ms_per_token"] = 1000 * row["seconds"] / max(row["tokens"], 1)
        row["grammar_ms_per_token"] = 1000 * row["grammar_seconds"] / max(row["tokens"], 1)
    free, con = rows["free"], rows["constrained"]
    summary = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
               "threads": torch.get_num_threads(), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
               "rows": rows, "ms_per_token_ratio": con["ms_per_token"] / free["ms_per_token"],
               "grammar_share_of_constrained_time": con["grammar_seconds"] / con["seconds"]}
    print("| decoding | tokens | s | ms/token (batch) | in grammar processor ms/token | forced endings |")
    print("|---|---|---|---|---|---|")
    for mode, r in rows.items():
        print(f"| {mode} | {r['tokens']} | {r['seconds']:.1f} | {r['ms_per_token']:.2f} | {r['grammar_ms_per_token']:.3f} "
              f"| {r['forced']} |")
    print(f"constrained/free time per token: {summary['ms_per_token_ratio']:.2f}x; grammar processor share of "
          f"constrained time: {100 * summary['grammar_share_of_constrained_time']:.1f}%")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
