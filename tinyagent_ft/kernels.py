"""Fused GPU kernels for training. liger-kernel (Triton) replaces Llama's RMSNorm, SwiGLU MLP and RoPE and
fuses the LM head with the cross-entropy, so the vocabulary-sized logits of a packed row are never
materialized (optional: ``pip install 'tinyagent-ft[gpu]'``; CUDA only). ``torch.compile`` of each decoder
layer fuses the layer's elementwise work instead, and takes the recompute of gradient checkpointing into its
compiled backward.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import warnings

from .config import ConfigError

SUPPORTED = ("llama",)


def liger_version() -> str | None:
    if importlib.util.find_spec("liger_kernel") is None:
        return None
    return importlib.metadata.version("liger-kernel")


def apply_fused_kernels(mode: bool | str, device: str, model_type: str, compiled: bool = False) -> str | None:
    """Patch transformers' model classes; call before the model is built. Returns what was applied (for the
    run summary) or None. ``mode`` "auto" applies where possible; True fails in one line where it cannot.
    ``compiled`` (the layers will be compiled): only the fused cross-entropy, which sits outside the layers;
    inside them the compiler fuses RMSNorm, SwiGLU and RoPE itself."""
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
    if compiled:
        apply_liger_kernel_to_llama(rope=False, rms_norm=False, swiglu=False, fused_linear_cross_entropy=True)
        return f"liger-kernel {version} (fused cross-entropy)"
    apply_liger_kernel_to_llama()
    return f"liger-kernel {version}"


def _compiler_missing(device: str) -> str | None:
    """What ``torch.compile`` lacks on ``device`` to build kernels, or None."""
    if device.startswith("cuda"):
        from torch.utils._triton import has_triton
        return None if has_triton() else "needs Triton on CUDA (torch's CUDA wheels bring it)"
    if any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")):
        return None
    return "needs a C++ compiler on a CPU (g++ or clang++ on PATH)"


def compile_mode(mode: bool | str, device: str) -> bool:
    """Whether ``model.compile`` compiles here: "auto" on CUDA where Triton is (on a CPU the compile takes longer
    than the short runs it would speed up); True fails in one line where it cannot."""
    if mode == "auto":
        return device.startswith("cuda") and _compiler_missing(device) is None
    missing = _compiler_missing(device) if mode else None
    if missing:
        raise ConfigError(f"model.compile=true {missing}; use auto or false")
    return bool(mode)


def compile_layers(model) -> int:
    """``torch.compile`` each decoder layer on its own (regional compilation); returns how many.

    The layers share one compiled graph, so compiling costs one layer's compilation however deep the model is,
    and the embedding and the loss stay eager (liger-kernel's fused cross-entropy included). A layer's whole
    forward and backward then run as a few fused kernels: the host, not the GPU, bounds a checkpointed step
    of a 1B model, and with checkpointing the recompute runs inside the compiled backward instead of op by op
    in Python. Run generation under ``torch.compiler.set_stance("force_eager")``: each decode length would
    compile anew."""
    from transformers.modeling_layers import GradientCheckpointingLayer
    compiled: set[int] = set()  # the compiled layers and everything inside them
    layers = 0
    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer) and id(module) not in compiled:
            module.compile()
            compiled.update(id(m) for m in module.modules())
            layers += 1
    if not layers:
        raise ConfigError(f"model.compile: {type(model).__name__} has no decoder layers to compile "
                          "(transformers' GradientCheckpointingLayer); set model.compile=false")
    return layers
