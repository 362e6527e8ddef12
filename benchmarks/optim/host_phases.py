"""Where a lean step's time goes on the host: the forward call, backward, the optimizer step and the wait for the GPU,
for Natural GaLore lean (rank 128, float8 moments) stepped after backward, layer-wise, and layer-wise with hooks that
only free each gradient (the floor of a layer-wise backward: what the optimizer's work in the hooks adds is the
difference). One model (TinyLlama-1.1B shape, random weights, bf16, checkpointed and compiled decoder layers,
liger-kernel's fused cross-entropy where installed; 1 x 2,048 tokens). A wait near zero means the step is bound by the
host, and then each phase's host time is its cost. ``--profile`` adds a cProfile of three layer-wise steps.

    python benchmarks/optim/host_phases.py [--steps 12] [--rank 128] [--profile] [--out host_phases.json]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lean_variants import apply_liger
from peak_memory import TINYLLAMA

from tinyagent_ft.kernels import compile_layers, liger_version
from tinyagent_ft.optim import LayerwiseOptimizer, NaturalGaLoreAdamW, build_param_groups

PHASES = ("forward", "backward", "step", "wait")


class FreeingOnly(LayerwiseOptimizer):
    """Layer-wise hooks that free each gradient and do nothing else: the backward's floor."""

    def _hook(self, group: dict):
        def hook(p: torch.Tensor) -> None:
            p.grad = None
        return hook


def timed_step(model, opt, ids) -> tuple[float, ...]:
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    torch.cuda.synchronize()
    return t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12, help="per row; medians over all but the first four")
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--profile", action="store_true", help="cProfile three layer-wise steps: top functions by own time")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: host_phases.py times a CUDA step, and no GPU is visible")
    if liger_version():
        apply_liger("ce")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).to(torch.bfloat16)
    model.config.use_cache = False
    model.gradient_checkpointing_enable()
    compile_layers(model)
    inner = NaturalGaLoreAdamW(build_param_groups(model, rank=args.rank, svd_method="randomized"), lr=1e-5,
                               state_dtype="float8")
    ids = torch.randint(0, TINYLLAMA["vocab_size"], (1, 2048), device="cuda")
    rows = {}
    for name, wrap in (("lean", None), ("layer-wise lean", LayerwiseOptimizer),
                       ("layer-wise, hooks only free", FreeingOnly)):
        opt = wrap(inner) if wrap else inner
        times = []
        for i in range(args.steps):
            torch.cuda.synchronize()
            t = timed_step(model, opt, ids)
            if i >= 4:  # compilation, the first subspaces and the caches settle in the first steps
                times.append(t)
        rows[name] = {phase: 1e3 * statistics.median(t[k] for t in times) for k, phase in enumerate(PHASES)}
        if args.profile and wrap is LayerwiseOptimizer:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(3):
                timed_step(model, opt, ids)
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
            print(text.getvalue())
        if wrap:
            opt.remove()
    print(f"host ms per phase (median of {args.steps - 4} steps), {torch.cuda.get_device_name()}, rank {args.rank}")
    print(f"{'row':<30}" + "".join(f"{p:>10}" for p in PHASES) + f"{'total':>10}")
    for name, row in rows.items():
        print(f"{name:<30}" + "".join(f"{row[p]:>10.1f}" for p in PHASES) + f"{sum(row.values()):>10.1f}")
    if args.out:
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rank": args.rank, "steps": args.steps,
                                        "host_ms": rows}, indent=2))


if __name__ == "__main__":
    main()
