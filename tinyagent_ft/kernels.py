"""Fused GPU kernels for training: liger-kernel (Triton) replaces Llama's RMSNorm, SwiGLU MLP and RoPE and
fuses the LM head with the cross-entropy, so the vocabulary-sized logits of a packed row are never
materialized. Optional (``pip install 'tinyagent-ft[gpu]'``); CUDA only.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings

from .config import ConfigError

SUPPORTED = ("llama",)


def liger_version() -> str | None:
    if importlib.util.find_spec("liger_kernel") is None:
        return None
    return importlib.metadata.version("liger-kernel")


def apply_fused_kernels(mode: bool | str, device: str, model_type: str) -> str | None:
    """Patch transformers' model classes; call before the model is built. Returns what was applied (for the
    run summary) or None. ``mode`` "auto" applies where possible; True fails in one line where it cannot."""
    if mode is False:
        return None
    version = liger_version()
    problem = ("needs a CUDA GPU (liger-kernel's kernels are Triton)" if not device.startswith("cuda") else
               "needs liger-kernel: pip install 'tinyagent-ft[gpu]'" if version is None else
               f"supports model types {SUPPORTED}, not {model_type!r}" if model_type not in SUPPORTED else None)
    if problem:
        if mode is True:
            raise ConfigError(f"model.fused_kernels=true {problem}; use auto or false")
        return None
    with warnings.catch_warnings():  # its import warns about optional backends it does not find
        warnings.simplefilter("ignore")
        from liger_kernel.transformers import apply_liger_kernel_to_llama
    apply_liger_kernel_to_llama()
    return f"liger-kernel {version}"
