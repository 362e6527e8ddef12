"""What each part of lean mode costs: one full fine-tuning step of the TinyLlama-1.1B shape (random weights, bf16,
1 x 2,048 tokens) with or without gradient checkpointing (HF's default non-reentrant, torch's reentrant, every
other layer, or all but the last N layers) and liger-kernel's kernels (none, fused cross-entropy only, all), for
AdamW and Natural GaLore (rank 128, float8 moments; layer-wise or not), with or without each decoder layer
compiled (`model.compile`). liger-kernel patches the Llama classes for the whole process, so each LIGER setting
runs in its own process. Prints one JSON line per row: median step ms over 5 steps after 2 (the first compiles),
the host's time to queue the step, peak GiB since the model was built.

    python benchmarks/optim/lean_variants.py LIGER ROW [ROW ...]
        LIGER: none | ce | all       ROW: OPTIMIZER:CHECKPOINTING[:compile]
        OPTIMIZER: adamw | ng | nglw (layer-wise)   CHECKPOINTING: none | all | reentrant | every2 | keepN
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import warnings

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from peak_memory import TINYLLAMA

from tinyagent_ft.kernels import compile_layers
from tinyagent_ft.optim import LayerwiseOptimizer, NaturalGaLoreAdamW, build_param_groups


def apply_liger(kernels: str) -> None:
    if kernels == "none":
        return
    with warnings.catch_warnings():  # its import warns about optional backends it does not find
        warnings.simplefilter("ignore")
        from liger_kernel.transformers import apply_liger_kernel_to_llama
    only_ce = dict(rope=False, rms_norm=False, swiglu=False) if kernels == "ce" else {}
    apply_liger_kernel_to_llama(fused_linear_cross_entropy=True, **only_ce)


def checkpointing(model, how: str) -> None:
    if how == "none":
        return
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True} if how == "reentrant"
                                        else None)
    layers = model.model.layers
    if how == "every2":
        for i, layer in enumerate(layers):
            layer.gradient_checkpointing = i % 2 == 0
    elif how.startswith("keep"):  # the last N layers keep their activations
        for layer in layers[len(layers) - int(how[4:]):]:
            layer.gradient_checkpointing = False


def measure(row: str, steps: int = 7) -> dict:
    name, how, *compiled = row.split(":")
    gc.collect()
    torch.cuda.empty_cache()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).to(torch.bfloat16)
    model.config.use_cache = False
    torch.cuda.reset_peak_memory_stats()
    checkpointing(model, how)
    if compiled == ["compile"]:
        compile_layers(model)
    if name == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    else:
        opt = NaturalGaLoreAdamW(build_param_groups(model, rank=128, svd_method="randomized"), lr=1e-5,
                                 state_dtype="float8")
        opt = LayerwiseOptimizer(opt) if name == "nglw" else opt
    ids = torch.randint(0, TINYLLAMA["vocab_size"], (1, 2048), device="cuda")
    host, total = [], []
    for i in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        if i >= 2:
            host.append(t1 - t0)
            total.append(time.perf_counter() - t0)
    if isinstance(opt, LayerwiseOptimizer):
        opt.remove()
    step = statistics.median(total)
    return {"row": row, "step_ms": 1e3 * step, "host_ms": 1e3 * statistics.median(host),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "tokens_per_s": 2048 / step}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("liger", choices=["none", "ce", "all"])
    ap.add_argument("rows", nargs="+")
    args = ap.parse_args()
    apply_liger(args.liger)
    for row in args.rows:
        print(json.dumps({"liger": args.liger, **measure(row)}), flush=True)


if __name__ == "__main__":
    main()
