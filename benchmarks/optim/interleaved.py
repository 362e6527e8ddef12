"""Lean-mode step time of this checkout's optimizer against an earlier one's, alternated in one process.

Between calls on a rented GPU host the host's speed varies by +-30%, and the lean step is bound by the host, so
two runs in two processes cannot resolve a 10% change. Here one model (TinyLlama-1.1B shape, random weights, bf16,
checkpointed and compiled decoder layers, liger-kernel's fused cross-entropy where installed; 1 x 2,048 tokens)
is stepped by Natural GaLore (rank 128, float8 moments) from both checkouts, layer-wise and not, and AdamW steps
its own plain model (no checkpointing): each in turn for STEPS steps, ROUNDS times. The earlier checkout's
``tinyagent_ft/optim`` is loaded as a package of another name. Prints each round's medians, then one JSON line per
variant: median step ms over the rounds after the first (which compiles), each block's first step left out, and
tokens/s as a fraction of AdamW's.

    git worktree add /tmp/before <commit>
    python benchmarks/optim/interleaved.py --before /tmp/before [--rounds 12] [--steps 6] [--out result.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lean_variants import apply_liger
from peak_memory import TINYLLAMA

import tinyagent_ft.optim as current
from tinyagent_ft.kernels import compile_layers, liger_version


def load_optim(checkout: Path, name: str = "optim_before"):
    """``tinyagent_ft.optim`` of another checkout, as package ``name`` (its imports are relative)."""
    init = checkout / "tinyagent_ft" / "optim" / "__init__.py"
    if not init.is_file():
        print(f"error: --before {checkout}: no tinyagent_ft/optim/__init__.py there", file=sys.stderr)
        sys.exit(2)
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    before = load_optim(args.before)
    if liger_version():
        apply_liger("ce")
    torch.manual_seed(0)
    with torch.device("cuda"):
        lean = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).to(torch.bfloat16)
        plain = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).to(torch.bfloat16)
    for model in (lean, plain):
        model.config.use_cache = False
    lean.gradient_checkpointing_enable()
    compile_layers(lean)
    ids = torch.randint(0, TINYLLAMA["vocab_size"], (1, 2048), device="cuda")
    variants = {"adamw (plain)": (plain, torch.optim.AdamW(plain.parameters(), lr=1e-5), None)}
    for label, pkg in (("before", before), ("after", current)):
        inner = pkg.NaturalGaLoreAdamW(pkg.build_param_groups(lean, rank=128, svd_method="randomized"), lr=1e-5,
                                       state_dtype="float8")
        variants[f"natural-galore lean, {label}"] = (lean, inner, None)
        variants[f"natural-galore layer-wise lean, {label}"] = (lean, inner, pkg.LayerwiseOptimizer)
    times = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (model, inner, wrap) in variants.items():
            opt = wrap(inner) if wrap else inner  # layer-wise hooks live only while their variant runs
            for i in range(args.steps):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(input_ids=ids, labels=ids).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                if r and i:  # the first step after a switch refills the caches another variant displaced
                    times[name].append(time.perf_counter() - t0)
            if wrap:
                opt.remove()
        if r:
            print(f"round {r}/{args.rounds - 1}:", {k: round(1e3 * statistics.median(v[1 - args.steps:]), 1)
                                                     for k, v in times.items()}, flush=True)
    adamw = statistics.median(times["adamw (plain)"])
    rows = [{"variant": k, "step_ms": 1e3 * statistics.median(v), "x_adamw_tokens_per_s": adamw / statistics.median(v),
             "steps": len(v)} for k, v in times.items()]
    for row in rows:
        print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps({"before": str(args.before), "device": torch.cuda.get_device_name(),
                                        "rounds": args.rounds, "steps": args.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
