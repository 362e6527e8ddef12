"""Optimizer step time on a model's layer shapes, versus AdamW and galore-torch at the same rank, in one run.

Default (as in the README's table): TinyLlama-1.1B shapes, refreshes not staggered, so step GAP+1 refreshes
every weight at once; the table gives the median plain step and that refresh step. ``--training``: the
refreshes staggered over ``--gap`` steps as `tinyagent-ft train` runs them, and the mean over 2 x gap steps
(what a training run pays per step). ``--profile`` adds, per variant, what the GPU did in 10 steps: kernel
launches, host syncs and the kernels' busy time per step (a step far longer than its kernels is bound by the
host, not the GPU). Every row also counts the tensor operations one step dispatches ("ops", views included):
the host-side work of a launch-bound step, comparable on any device. Each step gets new random gradients.

    python benchmarks/optim/speed.py [--shape tinyllama|smollm2] [--rank R] [--training --gap 50] [--profile]
        [--only SUBSTR ...] [--out speed.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from common import LAYER_SHAPES, LAYERS, make_optimizer, profile_summary, sync
from tinyagent_ft.optim import PROJECTION_DEFAULTS
from tinyagent_ft.optim.projector import METHODS

GAP = 10  # refresh at steps 1, 11, 21: step 1 also allocates state, so step 11 is the timed refresh
# SmolLM2-135M: 30 layers, d 576, MLP 1536, 3 KV heads of 64 (k, v: 192 x 576)
SHAPES = {"tinyllama": (LAYERS, LAYER_SHAPES, 512),
          "smollm2": (30, [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)], 128)}


class Gradients(list):
    """One gradient per weight, views of one flat buffer that ``redraw`` refills in a single kernel: each step sees
    new values (with the same gradients every step, Natural GaLore's history rows would be identical)."""

    def __init__(self, params, generator):
        self.flat = torch.empty(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
        offsets = [0]
        for p in params:
            offsets.append(offsets[-1] + p.numel())
        super().__init__(self.flat[a:b].view(p.shape) for p, a, b in zip(params, offsets, offsets[1:]))
        self.generator = generator
        self.redraw()

    def redraw(self) -> None:
        self.flat.normal_(generator=self.generator)


def make_params(shapes, layers, device, dtype):
    gen = torch.Generator(device).manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, device=device, dtype=dtype, generator=gen) * 0.02)
              for _ in range(layers) for s in shapes]
    return params, Gradients(params, gen)


def timed_step(opt, params, grads, device) -> float:
    """One optimizer step on fresh gradient values (drawn before the clock starts; one kernel, which the op and
    launch counts include)."""
    grads.redraw()
    for p, g in zip(params, grads):
        p.grad = g
    sync(device)
    t0 = time.perf_counter()
    opt.step()
    sync(device)
    return time.perf_counter() - t0


def profile_steps(opt, params, grads, device, steps: int = 10) -> dict:
    """Kernel launches, host syncs and GPU kernel time per step over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            timed_step(opt, params, grads, device)
    return profile_summary(prof, steps)


class _CountOps(TorchDispatchMode):
    """Tensor operations dispatched (views included): the host-side work of a step, on any device."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(opt, params, grads, device) -> int:
    with _CountOps() as counter:
        timed_step(opt, params, grads, device)
    return counter.count


def time_variant(variant, layer_shapes, layers, rank, device, dtype, training: bool, gap: int, profile: bool, **extra):
    params, grads = make_params(layer_shapes, layers, device, dtype)
    gap = gap if training else GAP
    if "stagger_refresh" in PROJECTION_DEFAULTS and not variant.startswith(("adamw", "galore-torch")):
        extra = {"stagger_refresh": training, **extra}
    opt = make_optimizer(variant, params, [], rank, update_proj_gap=gap, **extra)
    if opt is None:
        return None
    times = [timed_step(opt, params, grads, device) for _ in range(2 * gap + 1)]
    if training:  # step 1 builds every subspace (randomized SVD) and the state: not a steady-state step
        row = {"step_ms": 1e3 * statistics.fmean(times[1:]), "first_step_ms": 1e3 * times[0]}
    else:
        row = {"step_ms": 1e3 * statistics.median(times[1:gap] + times[gap + 1:2 * gap]), "refresh_ms": 1e3 * times[gap]}
    row["tensor_ops_per_step"] = count_ops(opt, params, grads, device)
    if profile and device.startswith("cuda"):
        row |= profile_steps(opt, params, grads, device)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama")
    ap.add_argument("--layers", type=int, help="default: the model's")
    ap.add_argument("--rank", type=int, help="default: 512 (TinyLlama), 128 (SmolLM2)")
    ap.add_argument("--training", action="store_true", help="staggered refreshes every --gap steps, mean step time")
    ap.add_argument("--gap", type=int, default=50)
    ap.add_argument("--profile", action="store_true", help="kernel launches, host syncs, GPU time per step (CUDA)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--state-dtype", default="float32", choices=["float32", "bfloat16", "float8"],
                    help="Adam moments of the projected weights (lean mode: bf16 weights, float8 moments)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("speed.json")))
    ap.add_argument("--only", nargs="*", help="run the variants whose label contains one of these strings")
    args = ap.parse_args()
    layers, layer_shapes, default_rank = SHAPES[args.shape]
    layers, rank = args.layers or layers, args.rank or default_rank
    dtype = getattr(torch, args.dtype)
    runs = [("adamw", {}), ("galore-torch GaLoreAdamW", {}), ("galore (ours, one-sided)", {"svd_method": "svd"}),
            ("galore (ours, one-sided)", {"svd_method": "randomized"}),
            ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "svd"}),
            ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "randomized"}),
            ("natural-galore two-sided s=20 fp32", {"svd_method": "randomized"})]
    if "power" in METHODS:  # this checkout's optimizer has the warm-started refresh and the TF32 switch
        runs += [("galore (ours, one-sided)", {"svd_method": "power"}),
                 ("galore (ours, one-sided)", {"svd_method": "power", "tf32": True}),
                 ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "power"}),
                 ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "power", "tf32": True})]
    rows = {}
    for variant, extra in runs:
        label = variant + "".join(f" [{k}={v}]" if k != "svd_method" else f" [{v}]" for k, v in extra.items())
        if args.only and not any(o in label for o in args.only):
            continue
        state = {"state_dtype": args.state_dtype} if args.state_dtype != "float32" else {}
        r = time_variant(variant, layer_shapes, layers, rank, args.device, dtype, args.training, args.gap, args.profile,
                         **state, **extra)
        if r is not None:
            rows[label] = r
    base = rows["adamw"]["step_ms"]
    ours = next(r["step_ms"] for label, r in rows.items() if label.startswith("galore (ours"))
    mode = f"staggered refreshes every {args.gap} steps, mean step" if args.training else "median plain step"
    print(f"optimizer step, {layers} {args.shape} layers, rank {rank}, {args.dtype} weights, {args.state_dtype} moments, "
          f"{args.device}, {mode}")
    last = "first step ms" if args.training else "refresh ms"
    print(f"{'variant':<58} {'step ms':>8} {'x AdamW':>8} {'x GaLore':>9} {last:>13} {'ops':>6}"
          + (f" {'launches':>9} {'syncs':>6} {'GPU ms':>7}" if args.profile else "") + "  (x GaLore: the first GaLore row)")
    for label, r in rows.items():
        line = (f"{label:<58} {r['step_ms']:>8.1f} {r['step_ms'] / base:>8.2f} {r['step_ms'] / ours:>9.2f} "
                f"{r.get('first_step_ms', r.get('refresh_ms')):>13.1f} {r['tensor_ops_per_step']:>6}")
        if "launches_per_step" in r:
            line += f" {r['launches_per_step']:>9.0f} {r['syncs_per_step']:>6.1f} {r['kernel_ms_per_step']:>7.1f}"
        print(line)
    if args.profile:
        for label, r in rows.items():
            if "top_kernels" in r:
                print(f"{label}: " + "; ".join(f"{k} {ms} ms" for k, ms in r["top_kernels"]))
                print(f"{label}, calls per step: " + "; ".join(f"{k} {n:g}" for k, n in r["top_ops_by_calls"]))
    with open(args.out, "w") as fh:
        json.dump({"shape": args.shape, "layers": layers, "rank": rank, "device": args.device,
                   "dtype": args.dtype, "state_dtype": args.state_dtype, "training": args.training, "gap": args.gap if args.training else GAP, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
