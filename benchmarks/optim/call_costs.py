"""What the optimizer's primitives cost the host per call on CUDA, at TinyLlama's shapes (projectors as rows of stacked
slabs, as the optimizer holds them): the lean step is bound by the host, so these costs, not the kernels', decide
whether to compile a function, batch weights, or cut pieces larger. Per row: host microseconds per call (no sync inside
the loop) and wall microseconds (synced at the end); for the fused float8 Adam step, its temporaries in bytes per value.

    python benchmarks/optim/call_costs.py
"""
from __future__ import annotations

import sys
import time

import torch

from tinyagent_ft.optim import lowbit
from tinyagent_ft.optim.projector import _add_projected_rounded, add_projected_rounded_, project_fp32, project_stacked

SHAPES = {"q 2048x2048": (2048, 2048, 44), "k 256x2048": (256, 2048, 44), "gate 5632x2048": (5632, 2048, 44),
          "down 2048x5632": (2048, 5632, 22)}  # (m, n, weights of that shape)


def bench(name: str, fn, n: int = 60) -> None:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    print(f"{name:56s} host {1e6 * (t1 - t0) / n:8.1f} us   wall {1e6 * (time.perf_counter() - t0) / n:8.1f} us",
          flush=True)


def main():
    if not torch.cuda.is_available():
        sys.exit("error: call_costs.py times CUDA calls, and no GPU is visible")
    dev, gen = "cuda", torch.Generator("cuda").manual_seed(0)
    x = torch.zeros(1024, device=dev)
    bench("one eager operation (x.add_(1))", lambda: x.add_(1))
    trivial = torch.compile(lambda t: t.add_(1), dynamic=True)
    bench("the same, compiled", lambda: trivial(x))
    compiled_projection = torch.compile(project_fp32, dynamic=True)
    for name, (m, n, count) in SHAPES.items():
        P = torch.randn(count, m, 128, device=dev, dtype=torch.bfloat16)
        Q = torch.randn(count, 128, n, device=dev, dtype=torch.bfloat16)
        Gs = [torch.randn(m, n, device=dev, dtype=torch.bfloat16) for _ in range(4)]
        W, R = torch.randn(m, n, device=dev, dtype=torch.bfloat16), torch.randn(128, 128, device=dev)
        seed = lowbit.rounding_seeds(dev, gen)
        bench(f"{name}: project_fp32", lambda: project_fp32(Gs[0], P[3], Q[3]))
        bench(f"{name}: project_fp32 compiled", lambda: compiled_projection(Gs[0], P[3], Q[3]))
        bench(f"{name}: project_stacked of 2", lambda: project_stacked(Gs[:2], P[2:4], Q[2:4]))
        bench(f"{name}: project_stacked of 4", lambda: project_stacked(Gs, P[:4], Q[:4]))
        bench(f"{name}: add_projected_rounded_ (compiled)", lambda: add_projected_rounded_(W, R, P[3], Q[3], -1e-5, 1.0,
                                                                                             gen))
        bench(f"{name}: the same, eager", lambda: _add_projected_rounded(W.view(-1), R, P[3], Q[3], -1e-5, 1.0, seed))
    for bits in (22, 23, 24):
        n = 1 << bits
        state, w = lowbit.new_moments(n, "float8", dev), torch.randn(n, device=dev, dtype=torch.bfloat16)
        g = torch.randn(n, device=dev, dtype=torch.bfloat16)

        def step():
            lowbit.adam_float8_pieces([state], [g], [(0, n)], (0.9, 0.999), 7, 1e-8, gen, [w], -1e-5, 1.0)
        bench(f"float8 Adam of 2^{bits} values into a bf16 weight", step)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        print(f"    its temporaries: {(torch.cuda.max_memory_allocated() - base) / n:.1f} bytes per value")


if __name__ == "__main__":
    main()
