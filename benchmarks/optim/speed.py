"""Optimizer step time on TinyLlama-1.1B layer shapes: refresh and non-refresh steps separately,
versus AdamW and galore-torch at the same rank, in one run; exact SVD, randomized SVD and warm-started
subspace iteration ("power") for the refresh. Refreshes are not staggered here, so step GAP+1 refreshes
every weight at once and its excess over a plain step is the cost of one full refresh.

    python benchmarks/optim/speed.py [--layers 22] [--rank 512] [--device cuda] [--only SUBSTR ...] [--out speed.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from common import LAYER_SHAPES, make_optimizer, sync
from tinyagent_ft.optim import PROJECTION_DEFAULTS
from tinyagent_ft.optim.projector import METHODS

GAP = 10  # refresh at steps 1, 11, 21: step 1 also allocates state, so step 11 is the timed refresh


def time_variant(variant, layers, rank, device, dtype, **extra):
    gen = torch.Generator(device).manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, device=device, dtype=dtype, generator=gen) * 0.02)
              for _ in range(layers) for s in LAYER_SHAPES]
    grads = [torch.randn(p.shape, device=device, dtype=dtype, generator=gen) for p in params]
    if "stagger_refresh" in PROJECTION_DEFAULTS and not variant.startswith(("adamw", "galore-torch")):
        extra = {"stagger_refresh": False, **extra}
    opt = make_optimizer(variant, params, [], rank, update_proj_gap=GAP, **extra)
    if opt is None:
        return None
    times = []
    for _ in range(2 * GAP):
        for p, g in zip(params, grads):
            p.grad = g
        sync(device)
        t0 = time.perf_counter()
        opt.step()
        sync(device)
        times.append(time.perf_counter() - t0)
    non_refresh = statistics.median(times[1:GAP] + times[GAP + 1:])
    return {"non_refresh_ms": 1e3 * non_refresh, "refresh_ms": 1e3 * times[GAP]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--rank", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out", default="benchmarks/optim/speed.json")
    ap.add_argument("--only", nargs="*", help="run the variants whose label contains one of these strings")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    runs = [("adamw", {}), ("galore-torch GaLoreAdamW", {}), ("galore (ours, one-sided)", {"svd_method": "svd"}),
            ("galore (ours, one-sided)", {"svd_method": "randomized"}),
            ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "svd"}),
            ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "randomized"}),
            ("natural-galore two-sided s=20 fp32", {"svd_method": "randomized"})]
    if "power" in METHODS:  # this checkout's optimizer has the warm-started refresh and the TF32 switch
        runs += [("galore (ours, one-sided)", {"svd_method": "power"}),
                 ("galore (ours, one-sided)", {"svd_method": "power", "tf32": False}),
                 ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "power"}),
                 ("natural-galore two-sided s=4 bf16 (default)", {"svd_method": "power", "tf32": False})]
    rows = {}
    for variant, extra in runs:
        label = variant + "".join(f" [{k}={v}]" if k != "svd_method" else f" [{v}]" for k, v in extra.items())
        if args.only and not any(o in label for o in args.only):
            continue
        r = time_variant(variant, args.layers, args.rank, args.device, dtype, **extra)
        if r is not None:
            rows[label] = r
    base = rows["adamw"]["non_refresh_ms"]
    ours = next(r["non_refresh_ms"] for label, r in rows.items() if label.startswith("galore (ours"))
    print(f"optimizer step, {args.layers} TinyLlama layers, rank {args.rank}, {args.dtype}, {args.device}")
    print(f"{'variant':<60} {'step ms':>8} {'x AdamW':>8} {'x GaLore':>9} {'refresh ms':>11}  (x GaLore: the first "
          f"GaLore row)")
    for label, r in rows.items():
        print(f"{label:<60} {r['non_refresh_ms']:>8.1f} {r['non_refresh_ms'] / base:>8.2f} "
              f"{r['non_refresh_ms'] / ours:>9.2f} {r['refresh_ms']:>11.1f}")
    with open(args.out, "w") as fh:
        json.dump({"layers": args.layers, "rank": args.rank, "device": args.device, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
