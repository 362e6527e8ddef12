"""Training throughput in one run: padded / packed / packed + fused kernels x AdamW / GaLore / Natural GaLore /
LoRA, on the SmolLM2-135M and TinyLlama-1.1B shapes (random weights), with ratios against padded AdamW
measured in the same run. Tokens/s, MFU and peak memory per variant; a markdown table and JSON out.

Each optimizer step trains on ``--docs`` planner samples (real prompts and plans of the synthetic data, tokenized
with the SmolLM2 tokenizer, loss on the plan): padded micro-batches of ``--micro`` samples (sorted by length
first, as the Trainer's group_by_length does), or packs of about ``--micro`` samples flattened into one row,
through the project's own packing, collators, varlen attention, optimizer and LoRA builders and fused-kernel
switch. fp32
weights with bf16 autocast (bf16 frozen weights for LoRA), gradient clipping at 1.0, loss averaged over
the step's plan tokens (as the Trainer does with gradient accumulation).

MFU = tokens/s x (6 x parameters + 12 x layers x d_model x mean sample length) / 790 TFLOP/s (the bf16
matrix rate measured on these H100s).

    python benchmarks/train/throughput.py --make-samples samples.json --data data/synth   # on any machine
    python benchmarks/train/throughput.py --samples samples.json --tokenizer TOKDIR --out throughput.json
    python benchmarks/train/throughput.py --random-model DIR --tokenizer TOKDIR   # for `tinyagent-ft train`
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

SHAPES = {
    "SmolLM2-135M": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True,
                         max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5),
    "TinyLlama-1.1B": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096),
}
RANK = {"SmolLM2-135M": 128, "TinyLlama-1.1B": 512}
PEAK_FLOPS = 790e12


def make_samples(data: str, out: str, n: int) -> None:
    """Planner samples as training builds them (configs/smollm2-compare.yaml: gold + 3 negative tools, no
    in-context examples, guideline block), SmolLM2 tokenizer."""
    import random

    from tinyagent_ft.data import load_dataset
    from tinyagent_ft.models import load_tokenizer
    from tinyagent_ft.prompt import PromptBuilder, PromptSettings
    from tinyagent_ft.samples import build_samples, training_tools
    examples = load_dataset(data, "train").examples[:n]
    tok = load_tokenizer("smollm2-135m")
    builder = PromptBuilder(PromptSettings(num_examples=0, guidelines=True), None, None)
    tools = training_tools(examples, "gold", 3, builder, random.Random(0))
    samples, _ = build_samples(examples, tok, builder, tools, 2048)
    with open(out, "w") as f:
        json.dump(samples, f, separators=(",", ":"))


def run(shape: str, mode: str, optimizer: str, samples: list[dict], tokenizer, args) -> dict:
    from transformers import DataCollatorForSeq2Seq, LlamaConfig, LlamaForCausalLM

    from tinyagent_ft.config import load_config
    from tinyagent_ft.kernels import apply_fused_kernels
    from tinyagent_ft.packing import (PackedCollator, default_pack_tokens, pack_samples, register_varlen_attention,
                                      varlen_available)
    from tinyagent_ft.train import apply_lora, build_optimizer

    cfg = load_config(None, [f"optimizer.name={optimizer}", f"optimizer.rank={RANK[shape]}", "training.grad_accum=1"])
    dev = args.device
    kernels = apply_fused_kernels(True, dev, "llama") if mode == "packed+fused" else None
    torch.manual_seed(0)
    lora = optimizer == "lora"
    varlen = mode in ("packed", "packed+fused") and varlen_available()
    with torch.device(dev):
        model = LlamaForCausalLM(LlamaConfig(**SHAPES[shape], attn_implementation=register_varlen_attention()
                                             if varlen else "sdpa"))
    model.to(torch.bfloat16 if lora else torch.float32).train()
    model.config.use_cache = False
    if lora:
        model = apply_lora(model, cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(model, cfg) or torch.optim.AdamW(trainable, lr=cfg.optimizer.lr, fused=True)
    lengths = [len(s["input_ids"]) for s in samples]
    if mode == "padded":
        collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    else:
        collate, budget = PackedCollator(varlen), default_pack_tokens(lengths, args.micro)

    def step_batches(i: int) -> list[dict]:
        docs = [samples[(i * args.docs + j) % len(samples)] for j in range(args.docs)]
        if mode == "padded":
            docs = sorted(docs, key=lambda d: len(d["input_ids"]))
            return [collate(docs[k:k + args.micro]) for k in range(0, len(docs), args.micro)]
        return [collate([p]) for p in pack_samples(docs, budget, seed=i)]

    cuda = dev == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times, tokens = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        for i in range(args.steps + 2):  # 2 warm-up steps, the first of which computes the subspaces
            batches = [{k: v.to(dev) if torch.is_tensor(v) else v for k, v in b.items()} for b in step_batches(i)]
            items = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
            sync()
            t = time.perf_counter()
            for b in batches:
                with torch.autocast(dev, dtype=torch.bfloat16, enabled=cuda):
                    loss = model(**b, num_items_in_batch=items).loss
                loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t)
                tokens.append(sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel()
                                  for b in batches))
    except torch.OutOfMemoryError:
        return {"oom": True}
    finally:
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
        del model, opt
        if cuda:
            torch.cuda.empty_cache()
    step = statistics.median(times)
    tps = statistics.mean(tokens) / step
    dims = SHAPES[shape]
    flops = 6 * args.params[shape] + 12 * dims["num_hidden_layers"] * dims["hidden_size"] * statistics.mean(lengths)
    return {"step_s": step, "tokens_per_s": tps, "mfu": tps * flops / PEAK_FLOPS, "peak_gib": peak,
            "fused_kernels": kernels, "attention": "varlen" if varlen else "sdpa", "tokens_per_step": statistics.mean(tokens)}


def save_random_model(out: str, tokenizer_dir: str) -> None:
    """A SmolLM2-135M-shaped Llama with random weights and the SmolLM2 tokenizer, as a model folder that
    ``tinyagent-ft train model.name=DIR`` loads (for machines without the packaged weights)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SHAPES["SmolLM2-135M"], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)).save_pretrained(out)
    tok.save_pretrained(out)


def count_params(shape: str) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM
    with torch.device("meta"):
        return sum(p.numel() for p in LlamaForCausalLM(LlamaConfig(**SHAPES[shape])).parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--make-samples"), ap.add_argument("--data", default="data/synth")
    ap.add_argument("--n", type=int, default=512, help="samples to build with --make-samples")
    ap.add_argument("--samples"), ap.add_argument("--tokenizer", help="SmolLM2 tokenizer folder (padding)")
    ap.add_argument("--random-model", help="write a random SmolLM2-shaped model folder here and stop")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    ap.add_argument("--modes", nargs="+", default=["padded", "packed", "packed+fused"],
                    choices=["padded", "packed-sdpa", "packed", "packed+fused"],
                    help="packed: varlen attention where torch has it; packed-sdpa: sdpa's dense block-diagonal mask")
    ap.add_argument("--optimizers", nargs="+", default=["adamw", "galore", "natural_galore", "lora"])
    ap.add_argument("--docs", type=int, default=32, help="samples per optimizer step")
    ap.add_argument("--micro", type=int, default=8, help="samples per micro-batch (packs: on average)")
    ap.add_argument("--steps", type=int, default=5), ap.add_argument("--out")
    ap.add_argument("--repeat-baseline", action="store_true", help="measure padded AdamW again at the end")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of the script only")
    args = ap.parse_args()
    if args.make_samples:
        return make_samples(args.data, args.make_samples, args.n)
    if args.random_model:
        return save_random_model(args.random_model, args.tokenizer)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    samples = json.load(open(args.samples))
    args.params = {s: count_params(s) for s in args.shapes}
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"{device_name}, torch {torch.__version__}; {len(samples)} samples, "
          f"{args.docs} per step, micro-batches of {args.micro}", flush=True)
    rows = []
    for shape in args.shapes:
        vocab = SHAPES[shape]["vocab_size"]
        docs = [{"input_ids": [t % vocab for t in s["input_ids"]], "labels": [t if t < 0 else t % vocab for t in s["labels"]]}
                for s in samples]  # TinyLlama's vocabulary is smaller; token ids are folded into it
        for mode in args.modes:  # fused last: liger-kernel patches the Llama classes for the rest of the process
            for optimizer in args.optimizers:
                r = {"shape": shape, "mode": mode, "optimizer": optimizer, **run(shape, mode, optimizer, docs, tokenizer, args)}
                rows.append(r)
                print(json.dumps(r), flush=True)
        if args.repeat_baseline:  # the spread of one variant measured twice in this process
            r = {"shape": shape, "mode": "padded (again)", "optimizer": "adamw",
                 **run(shape, "padded", "adamw", docs, tokenizer, args)}
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("| shape | mode | optimizer | tokens/s | vs padded AdamW | MFU | peak GiB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(b for b in rows if b["shape"] == r["shape"] and b["mode"] == "padded" and b["optimizer"] == "adamw")
        if r.get("oom"):
            print(f"| {r['shape']} | {r['mode']} | {r['optimizer']} | out of memory | | | |")
            continue
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if not base.get("oom") else ""
        print(f"| {r['shape']} | {r['mode']} | {r['optimizer']} | {r['tokens_per_s']:,.0f} | {ratio} | "
              f"{r['mfu']:.1%} | {r['peak_gib']:.1f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "params"}, "params": args.params,
                       "device": device_name, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
