"""Optimizer-state bytes on the TinyLlama-1.1B shape, counted from the real state tensors.

    python benchmarks/optim/memory.py [--layers 22] [--rank 512] [--device cuda] [--out memory.json]

Each variant runs two steps on random gradients for the 7 projected weights of every layer plus the
embedding and lm_head (AdamW in every variant). With --layers below 22 the per-layer bytes are
measured on that many layers and scaled to 22 (every layer has the same shapes): the table says so.
"""
from __future__ import annotations

import argparse
import json

import torch

from common import D, LAYER_SHAPES, LAYERS, VARIANTS, VOCAB, make_optimizer, state_bytes


def measure(variant: str, layers: int, rank: int, device: str, dtype) -> dict | None:
    gen = torch.Generator(device).manual_seed(0)
    proj = [torch.nn.Parameter(torch.empty(s, device=device, dtype=dtype)) for _ in range(layers) for s in LAYER_SHAPES]
    rest = [torch.nn.Parameter(torch.empty(VOCAB, D, device=device, dtype=dtype)) for _ in range(2)]
    opt = make_optimizer(variant, proj, rest, rank, svd_method="randomized") if VARIANTS[variant] not in (None, "peer") \
        else make_optimizer(variant, proj, rest, rank)
    if opt is None:
        return None
    for _ in range(2):
        for p in proj + rest:
            p.grad = torch.randn(p.shape, generator=gen, device=device, dtype=dtype)
        opt.step()
    rest_bytes = state_bytes(type("S", (), {"state": {p: opt.state[p] for p in rest}})())
    layer_bytes = state_bytes(opt) - rest_bytes
    del proj, rest, opt
    total = rest_bytes + layer_bytes * LAYERS / layers
    return {"total_gb": total / 1e9, "layers_gb": layer_bytes * LAYERS / layers / 1e9, "embed_head_gb": rest_bytes / 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--rank", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out", default="benchmarks/optim/memory.json")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    rows = {}
    for v in VARIANTS:
        r = measure(v, args.layers, args.rank, args.device, dtype)
        if r is None:
            print(f"skip {v}: galore-torch not installed (pip install --no-deps galore-torch)")
            continue
        rows[v] = r
        if args.device == "cuda":
            torch.cuda.empty_cache()
    base, galore = rows["adamw"]["total_gb"], rows["galore (ours, one-sided)"]["total_gb"]
    scaled = "" if args.layers == LAYERS else f", measured on {args.layers} layers and scaled to {LAYERS}"
    print(f"optimizer state, TinyLlama-1.1B shape, rank {args.rank}, {args.dtype} params{scaled}")
    print(f"{'variant':<46} {'state GB':>9} {'of which layers':>16} {'x AdamW':>8} {'x GaLore':>9}")
    for v, r in rows.items():
        print(f"{v:<46} {r['total_gb']:>9.3f} {r['layers_gb']:>16.3f} {r['total_gb'] / base:>8.3f} {r['total_gb'] / galore:>9.3f}")
    with open(args.out, "w") as fh:
        json.dump({"rank": args.rank, "layers_measured": args.layers, "dtype": args.dtype, "device": args.device,
                   "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
