"""Where models run and in which precision: one answer for training, inference and the classifier."""
from __future__ import annotations

import torch


def pick_device(device: str | None = None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: str) -> bool:
    """Native bf16 math: CUDA with bf16, or a CPU with AVX512-BF16/AMX (where autocast is ~2x faster)."""
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if bf16_supported(device) else torch.float32  # inference in bf16 where it is native
