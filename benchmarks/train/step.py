"""One full fine-tuning step of the TinyLlama-1.1B shape (random weights) per optimizer, on a GPU:
peak memory and tokens/s, through the trainer's own optimizer and LoRA builders.

fp32 master weights with bf16 autocast (what ``tinyagent-ft train`` does on GPUs) for full fine-tuning;
bf16 frozen base weights for LoRA. Batch 4 x 1024 tokens (TinyAgent prompts are ~1-1.5K tokens).

    python benchmarks/train/step.py --out step.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tinyagent_ft.config import load_config
from tinyagent_ft.train import apply_lora, build_optimizer

TINYLLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096)
VARIANTS = {"adamw": ["optimizer.name=adamw"], "galore": ["optimizer.name=galore"], "natural_galore": [],
            "natural_galore layer-wise": ["optimizer.layerwise=true"], "lora": ["optimizer.name=lora"]}


def run(name: str, overrides: list[str], batch: int, seq: int, steps: int, rank: int) -> dict:
    cfg = load_config(None, [f"optimizer.rank={rank}", "optimizer.update_proj_gap=200", "training.grad_accum=1",
                             *overrides])
    torch.manual_seed(0)
    lora = cfg.optimizer.name == "lora"
    model = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).to("cuda", torch.bfloat16 if lora else torch.float32)
    if lora:
        model = apply_lora(model, cfg)
    opt = build_optimizer(model, cfg) or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                                          lr=cfg.optimizer.lr, fused=True)
    x = torch.randint(0, TINYLLAMA["vocab_size"], (batch, seq), device="cuda")
    times = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 2):  # 2 warm-up steps, the first of which computes the projections (SVD)
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        if not cfg.optimizer.layerwise:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t)
    step = sorted(times)[len(times) // 2]
    result = {"peak_gib": torch.cuda.max_memory_allocated() / 2**30, "step_s": step, "tokens_per_s": batch * seq / step,
              "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if hasattr(opt, "remove"):
        opt.remove()
    del model, opt
    torch.cuda.empty_cache()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4), ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5), ap.add_argument("--rank", type=int, default=512)
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = {name: run(name, o, args.batch, args.seq, args.steps, args.rank) for name, o in VARIANTS.items()}
    base = rows["adamw"]
    print(f"{torch.cuda.get_device_name()}, TinyLlama-1.1B shape, batch {args.batch} x {args.seq} tokens, rank {args.rank}")
    print("| optimizer | peak memory (GiB) | vs AdamW | tokens/s | vs AdamW | trainable params |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['peak_gib']:.2f} | {r['peak_gib'] / base['peak_gib']:.2f}x | {r['tokens_per_s']:,.0f} | "
              f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x | {r['trainable']:,} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
