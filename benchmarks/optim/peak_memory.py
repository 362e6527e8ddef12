"""Peak GPU memory and tokens/s of one full fine-tuning step of the TinyLlama-1.1B shape (random
weights, bf16, one sequence of 2,048 tokens) per optimizer, layer-wise and not, next to LoRA r=16, in the
default mode and in lean mode (`training.memory=lean`: gradient checkpointing, liger-kernel's fused linear
cross-entropy where installed, and for GaLore / Natural GaLore float8 Adam moments). Weights are bf16 in
every row (AdamW and LoRA included), so rows differ only by what the mode and the optimizer hold.
``--accum K`` takes K micro-batches per optimizer step (as a recipe with gradient accumulation does; layer-wise
mode then only projects and sums on K - 1 of them); ``--profile`` adds what the GPU and the host did per step;
``--compile`` compiles each decoder layer in the lean rows (`model.compile`, lean mode's setting on CUDA), whose
fused kernels are then the cross-entropy only.

    python benchmarks/optim/peak_memory.py [--seq 2048] [--rank 128] [--accum 1] [--steps 4] [--profile]
        [--compile] [--out peak_memory.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common import profile_summary

from tinyagent_ft.kernels import apply_fused_kernels, compile_layers
from tinyagent_ft.optim import LayerwiseOptimizer, NaturalGaLoreAdamW, build_param_groups

TINYLLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)


def setup(kind: str, model, rank: int, lean: bool, accum: int, state_dtype: str | None):
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-5), None
    if kind == "lora r=16":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=[
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4), model
    opts = {"galore": dict(side="std", history=0), "natural-galore": {}}[kind.split(" ")[0]]
    opt = NaturalGaLoreAdamW(build_param_groups(model, rank=rank, svd_method="randomized", **opts), lr=1e-5,
                             state_dtype=state_dtype or ("float8" if lean else "float32"))
    if "layer-wise" in kind:
        return LayerwiseOptimizer(opt, grad_accumulation_steps=accum), None
    return opt, None


def measure(kind: str, seq: int, rank: int, lean: bool, accum: int = 1, state_dtype: str | None = None,
            profile: bool = False, steps: int = 4, compiled: bool = False) -> dict:
    gc.collect()  # layer-wise hooks tie params and optimizer in a cycle: free the previous run first
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    if torch.cuda.memory_allocated() > 2**29:  # more than library workspaces
        raise RuntimeError(f"{torch.cuda.memory_allocated() / 2**30:.2f} GiB still allocated before {kind}")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).to(torch.bfloat16)
    model.config.use_cache = False
    if lean:
        model.gradient_checkpointing_enable()
    opt, wrapped = setup(kind, model, rank, lean, accum, state_dtype)
    model = wrapped or model
    if compiled:
        compile_layers(model)
    torch.cuda.reset_peak_memory_stats()  # the model is built in fp32 on the GPU before its cast to bf16
    ids = torch.randint(0, 32000, (1, seq), device="cuda")
    times, phases = [], {"forward": 0.0, "backward": 0.0, "step": 0.0}

    def mark(phase):
        phases[phase] = max(phases[phase], torch.cuda.max_memory_allocated() / 2**30)
        torch.cuda.reset_peak_memory_stats()

    def one_step():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(accum):
            loss = model(input_ids=ids, labels=ids).loss
            mark("forward")
            loss.backward()
            mark("backward")
        opt.step()  # layer-wise: the last queued weights
        opt.zero_grad(set_to_none=True)
        mark("step")
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    times = [one_step() for _ in range(steps)]
    step = statistics.median(times[1:])  # the first step refreshes, allocates, compiles; the median resists a busy host
    row = {"peak_gib": max(phases.values()), "peak_by_phase_gib": phases, "step_s": step,
           "tokens_per_s": accum * seq / step}
    if profile:
        from torch.profiler import ProfilerActivity, profile as profiler
        with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(2):
                one_step()
        row["profile"] = profile_summary(prof, 2)
    if isinstance(opt, LayerwiseOptimizer):
        opt.remove()
    del model, opt
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--rank", type=int, default=128, help="the recipe's rank (optimizer.rank)")
    ap.add_argument("--out", default="benchmarks/optim/peak_memory.json")
    ap.add_argument("--rows", nargs="+", default=None, help='only these rows, e.g. "adamw (default)" "natural-galore (lean)"')
    ap.add_argument("--accum", type=int, default=1, help="micro-batches per optimizer step")
    ap.add_argument("--state-dtype", choices=["float32", "bfloat16", "float8"],
                    help="Adam moments of the low-rank rows (default: float8 in lean mode, else float32)")
    ap.add_argument("--profile", action="store_true", help="kernels, launches, host syncs and host time per step")
    ap.add_argument("--steps", type=int, default=4, help="steps per row; tokens/s from the median of all but the first")
    ap.add_argument("--compile", action="store_true", help="lean rows: torch.compile each decoder layer")
    args = ap.parse_args()
    plain = ["adamw", "galore", "galore layer-wise", "natural-galore", "natural-galore layer-wise", "lora r=16"]
    lean = ["adamw", "natural-galore", "galore layer-wise", "natural-galore layer-wise", "lora r=16"]
    rows, fused = {}, None
    for mode, kinds in (("default", plain), ("lean", lean)):
        if mode == "lean":  # liger-kernel patches the Llama classes for the rest of the process: plain rows first
            fused = apply_fused_kernels("auto", "cuda", "llama", compiled=args.compile)
        for k in kinds:
            if args.rows and f"{k} ({mode})" not in args.rows:
                continue
            try:
                rows[f"{k} ({mode})"] = measure(k, args.seq, args.rank, mode == "lean", args.accum, args.state_dtype,
                                                args.profile, args.steps, args.compile and mode == "lean")
            except ImportError as exc:
                print(f"skip {k}: {exc}")
    base = rows.get("adamw (default)") or next(iter(rows.values()))
    print(f"full fine-tuning step, TinyLlama-1.1B shape, bf16 weights, {args.accum} x 1 x {args.seq} tokens, rank {args.rank}, "
          f"{torch.cuda.get_device_name()}; lean: gradient checkpointing, float8 moments, fused CE: {fused or 'none'}"
          + (", compiled layers" if args.compile else ""))
    print(f"{'optimizer (mode)':<36} {'peak GiB':>9} {'x AdamW':>8} {'fwd/bwd/step GiB':>18} {'tokens/s':>9} {'x AdamW':>8}")
    for k, r in rows.items():
        ph = "/".join(f"{v:.2f}" for v in r["peak_by_phase_gib"].values())
        print(f"{k:<36} {r['peak_gib']:>9.2f} {r['peak_gib'] / base['peak_gib']:>8.2f} {ph:>18} {r['tokens_per_s']:>9.0f} "
              f"{r['tokens_per_s'] / base['tokens_per_s']:>8.2f}")
    for k, r in rows.items():
        if "profile" in r:
            pr = r["profile"]
            print(f"{k}: {1e3 * r['step_s']:.0f} ms per step, kernels {pr['kernel_ms_per_step']:.0f} ms, "
                  f"{pr['launches_per_step']:.0f} launches, {pr['syncs_per_step']:.0f} syncs")
            for title, key, unit in (("kernels", "top_kernels", " ms"), ("host", "top_ops_by_host_ms", " ms"),
                                     ("calls", "top_ops_by_calls", "")):
                print(f"  {title}: " + "; ".join(f"{name} {value:g}{unit}" for name, value in pr[key]))
    with open(args.out, "w") as fh:
        json.dump({"seq": args.seq, "rank": args.rank, "accum": args.accum, "steps": args.steps,
                   "state_dtype": args.state_dtype, "compile_lean": args.compile,
                   "device": torch.cuda.get_device_name(), "fused_kernels": fused,
                   "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
