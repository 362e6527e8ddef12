"""Shared pieces of the optimizer benchmarks: TinyLlama shapes and the optimizers under comparison."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import torch

from tinyagent_ft.optim import NaturalGaLoreAdamW, state_bytes  # noqa: F401 - benchmarks import it from here

# TinyLlama-1.1B: 22 layers, d 2048, MLP 5632, 4 KV heads of 64 (k, v: 256 x 2048), vocab 32000, untied.
LAYER_SHAPES = [(2048, 2048), (256, 2048), (256, 2048), (2048, 2048), (5632, 2048), (5632, 2048), (2048, 5632)]
LAYERS, VOCAB, D = 22, 32000, 2048

# name -> options of NaturalGaLoreAdamW's projected group (None = torch AdamW, "peer" = galore-torch)
VARIANTS = {
    "adamw": None,
    "galore (ours, one-sided)": dict(side="std", history=0),
    "galore-torch GaLoreAdamW": "peer",
    "natural-galore one-sided s=20 fp32 (paper)": dict(side="std", history=20, history_dtype="float32"),
    "galore two-sided": dict(side="two_sided", history=0),
    "natural-galore two-sided s=4 bf16 (default)": {},
    "natural-galore two-sided s=8 bf16": dict(history=8),
    "natural-galore two-sided s=20 bf16": dict(history=20),
    "natural-galore two-sided s=20 fp32": dict(history=20, history_dtype="float32"),
}


def load_galore_torch():
    """galore-torch's GaLoreAdamW, or None. Its package __init__ imports bitsandbytes (8-bit variant),
    which the benchmark does not need, so the module is loaded without running that __init__."""
    spec = importlib.util.find_spec("galore_torch")
    if spec is None:
        return None
    if "galore_torch" not in sys.modules:
        pkg = types.ModuleType("galore_torch")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["galore_torch"] = pkg
    return importlib.import_module("galore_torch.adamw").AdamW


def make_optimizer(variant: str, projected: list, rest: list, rank: int, lr: float = 1e-3,
                   update_proj_gap: int = 200, **extra):
    opts = VARIANTS[variant]
    if opts is None:
        return torch.optim.AdamW(projected + rest, lr=lr)
    if opts == "peer":
        cls = load_galore_torch()
        if cls is None:
            return None
        groups = [{"params": projected, "rank": rank, "update_proj_gap": update_proj_gap, "scale": 0.25,
                   "proj_type": "std"}] + ([{"params": rest}] if rest else [])
        return cls(groups, lr=lr, no_deprecation_warning=True)
    groups = [{"params": projected, "rank": rank, "update_proj_gap": update_proj_gap, **opts, **extra}]
    return NaturalGaLoreAdamW(groups + ([{"params": rest}] if rest else []), lr=lr)


SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
LAUNCH_CALLS = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def profile_summary(prof, steps: int) -> dict:
    """Per step, from a ``torch.profiler`` run of ``steps`` steps: kernel launches, host syncs, the kernels' busy
    time (a step far longer than its kernels is bound by the host), the kernels taking the most time and the
    operations called most often."""
    events = prof.key_averages()
    cuda = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA  # kernels, not annotated ranges
            and not e.key.startswith(("Optimizer.", "ProfilerStep"))]
    return {"launches_per_step": sum(e.count for e in events if e.key in LAUNCH_CALLS) / steps,
            "syncs_per_step": sum(e.count for e in events if e.key in SYNC_CALLS) / steps,
            "kernel_ms_per_step": sum(e.self_device_time_total for e in cuda) / 1e3 / steps,
            "top_kernels": [(e.key[:60], round(e.self_device_time_total / 1e3 / steps, 2))
                            for e in sorted(cuda, key=lambda e: -e.self_device_time_total)[:8]],
            "top_ops_by_calls": [(e.key, e.count / steps) for e in sorted(
                (e for e in events if e.key.startswith("aten::")), key=lambda e: -e.count)[:15]],
            "top_ops_by_host_ms": [(e.key, round(e.self_cpu_time_total / 1e3 / steps, 2)) for e in sorted(
                (e for e in events if e.device_type == torch.autograd.DeviceType.CPU),
                key=lambda e: -e.self_cpu_time_total)[:12]]}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
