"""Convergence at a fixed step budget: AdamW vs GaLore vs Natural GaLore on a small Llama built from
a config (no download), on natural text (gensim's Wikipedia sample) and on synthetic plans, 3 seeds.

    python benchmarks/optim/convergence.py [--steps 300] [--seeds 0 1 2] [--out-dir benchmarks/optim]

GaLore and Natural GaLore use the same rank; Natural GaLore's two-sided state is no larger than
GaLore's one-sided state there (the table shows the measured bytes). Writes convergence.json and
convergence.png (validation loss curves, mean over seeds).
"""
from __future__ import annotations

import argparse
import bz2
import json
import math
import statistics
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common import state_bytes
from tinyagent_ft.optim import NaturalGaLoreAdamW, build_param_groups

OPTIMIZERS = {
    "adamw": dict(lr=1e-3),
    "galore": dict(lr=1e-2, side="std", history=0),
    "natural-galore": dict(lr=1e-2),
    # candidates for the defaults (--optimizers ... --seeds 0)
    "galore two-sided": dict(lr=1e-2, side="two_sided", history=0),
    "natural-galore damping 0.1": dict(lr=1e-2, damping=0.1),
    "natural-galore damping 1": dict(lr=1e-2, damping=1.0),
    "natural-galore damping 10": dict(lr=1e-2, damping=10.0),
    "natural-galore one-sided s=4 damping 1": dict(lr=1e-2, side="std", damping=1.0),
    "natural-galore one-sided s=4 damping 1e-3": dict(lr=1e-2, side="std"),
    # the refresh before issue 12 (exact SVD of every weight at once) against the default (staggered,
    # warm-started subspace iteration)
    "galore power": dict(lr=1e-2, side="std", history=0, svd_method="power", stagger_refresh=True),
    "natural-galore power": dict(lr=1e-2, svd_method="power", stagger_refresh=True),
    # issue 17: Adam moments stored in bf16 with stochastic rounding, against the fp32 moments above
    "galore bf16 state": dict(lr=1e-2, side="std", history=0, state_dtype="bfloat16"),
    "natural-galore bf16 state": dict(lr=1e-2, state_dtype="bfloat16"),
    "galore float8 state": dict(lr=1e-2, side="std", history=0, state_dtype="float8"),
    "natural-galore float8 state": dict(lr=1e-2, state_dtype="float8"),
    # bf16 weights without fp32 master copies (the optimizer rounds its fp32 update stochastically), alone and
    # with float8 moments as training.memory=lean sets them
    "natural-galore bf16 weights": dict(lr=1e-2, weights="bfloat16"),
    "natural-galore lean": dict(lr=1e-2, weights="bfloat16", state_dtype="float8"),
}
DEFAULT_SET = ["adamw", "galore", "natural-galore"]


def wiki_text(path: str | None) -> str:
    if path:
        return Path(path).read_text()
    from gensim.corpora.wikicorpus import filter_wiki
    from gensim.test.utils import datapath
    raw = bz2.open(datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"), "rt").read()
    return filter_wiki(raw)


def plans_text(n: int = 6000) -> str:
    from eval.plan import format_plan
    from tinyagent_ft.synth.generate import Generator, SynthConfig
    gen = Generator(SynthConfig(seed=0))
    return "\n\n".join(f"Question: {q}\n{format_plan(calls)}" for _, q, _, calls in (gen.sample(False) for _ in range(n)))


def batches(ids: torch.Tensor, seq: int, batch: int, gen: torch.Generator):
    while True:
        starts = torch.randint(0, ids.numel() - seq - 1, (batch,), generator=gen)
        yield torch.stack([ids[s:s + seq + 1] for s in starts.tolist()])


def run(name, ids_train, ids_val, vocab, steps, seed, device, rank, seq=128, batch=16, options: dict | None = None):
    """One training run; ``options`` (lr plus NaturalGaLoreAdamW / group options) replaces OPTIMIZERS[name]."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=seq, tie_word_embeddings=True)
    opts = dict(options if options is not None else OPTIMIZERS[name])
    lr = opts.pop("lr")
    model = LlamaForCausalLM(cfg).to(device, getattr(torch, opts.pop("weights", "float32")))
    if name == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    else:
        state_dtype = opts.pop("state_dtype", "float32")
        opt = NaturalGaLoreAdamW(build_param_groups(model, rank=rank, update_proj_gap=100, **opts), lr=lr,
                                 state_dtype=state_dtype)
    warm = steps // 10
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warm) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, s - warm) / max(1, steps - warm))))))
    gen = torch.Generator().manual_seed(seed)
    it = batches(ids_train, seq, batch, gen)
    val_gen = torch.Generator().manual_seed(1234)
    val = [b.to(device) for b, _ in zip(batches(ids_val, seq, batch, val_gen), range(8))]
    curve = []

    def val_loss():
        model.eval()
        with torch.no_grad():
            loss = statistics.mean(float(model(input_ids=b[:, :-1], labels=b[:, :-1]).loss) for b in val)
        model.train()
        return loss

    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        b = next(it).to(device)
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            loss = model(input_ids=b[:, :-1], labels=b[:, :-1]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % max(1, steps // 10) == 0 or step == steps:
            curve.append((step, val_loss()))
    return {"final_val_loss": curve[-1][1], "curve": curve, "seconds": time.perf_counter() - t0,
            "state_mb": state_bytes(opt) / 1e6}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--optimizers", nargs="+", default=DEFAULT_SET, choices=list(OPTIMIZERS))
    ap.add_argument("--wiki", default=None, help="plain-text file instead of gensim's sample")
    ap.add_argument("--corpora", nargs="+", default=["wikipedia", "plans"], choices=["wikipedia", "plans"])
    ap.add_argument("--tokenizer", default="smollm2-135m")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-dir", default="benchmarks/optim")
    args = ap.parse_args()
    from tinyagent_ft.models import load_tokenizer
    tok = load_tokenizer(args.tokenizer)
    corpora = {c: wiki_text(args.wiki) if c == "wikipedia" else plans_text() for c in args.corpora}
    results = {}
    for corpus, text in corpora.items():
        ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"])
        cut = int(ids.numel() * 0.95)
        for name in args.optimizers:
            for seed in args.seeds:
                r = run(name, ids[:cut], ids[cut:], len(tok), args.steps, seed, args.device, args.rank)
                results.setdefault(corpus, {}).setdefault(name, []).append(r)
                print(f"{corpus:<10} {name:<42} seed {seed}: val loss {r['final_val_loss']:.4f} ({r['seconds']:.0f} s)", flush=True)
    print(f"\nvalidation loss after {args.steps} steps, mean ± std over seeds {args.seeds}, rank {args.rank}")
    print(f"{'corpus':<10} {'optimizer':<42} {'val loss':>16} {'x GaLore':>9} {'state MB':>9}")
    for corpus, by_opt in results.items():
        ref = statistics.mean(r["final_val_loss"] for r in by_opt.get("galore", next(iter(by_opt.values()))))
        for name, rs in by_opt.items():
            losses = [r["final_val_loss"] for r in rs]
            sd = statistics.stdev(losses) if len(losses) > 1 else 0.0
            print(f"{corpus:<10} {name:<42} {statistics.mean(losses):>8.4f} ± {sd:<6.4f} "
                  f"{statistics.mean(losses) / ref:>9.4f} {rs[0]['state_mb']:>9.1f}")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "convergence.json").write_text(json.dumps({"steps": args.steps, "seeds": args.seeds, "rank": args.rank,
                                                      "results": results}, indent=2))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (corpus, by_opt) in zip(axes[0], results.items()):
        for name, rs in by_opt.items():
            steps = [s for s, _ in rs[0]["curve"]]
            ax.plot(steps, [statistics.mean(r["curve"][i][1] for r in rs) for i in range(len(steps))], label=name)
        ax.set_title(f"{corpus}: validation loss (mean of {len(args.seeds)} seeds)")
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "convergence.png", dpi=110)


if __name__ == "__main__":
    main()
