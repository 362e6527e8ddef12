import json
import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from tinyagent_ft.config import ConfigError, load_config
from tinyagent_ft.kernels import apply_fused_kernels
from tinyagent_ft.models import resolve_model
from tinyagent_ft.packing import (VARLEN, PackedCollator, default_pack_tokens, group_by_tokens, pack_samples,
                                  register_varlen_attention, varlen_available)
from tinyagent_ft.train import run_training

from test_train import tiny


def test_groups_respect_the_budget_and_keep_every_document():
    rng = random.Random(0)
    lengths = [rng.randint(50, 400) for _ in range(500)]
    budget = default_pack_tokens(lengths, 6)
    groups = group_by_tokens(lengths, budget, seed=3)
    assert sorted(i for g in groups for i in g) == list(range(500))
    assert all(sum(lengths[i] for i in g) <= budget for g in groups)
    assert sum(lengths) / (budget * len(groups)) > 0.9  # little of the budget is left empty
    assert groups == group_by_tokens(lengths, budget, seed=3) != group_by_tokens(lengths, budget, seed=4)
    with pytest.raises(ValueError, match="pack budget 100 tokens is below a sample of 400 tokens"):
        group_by_tokens([50, 400], 100)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("attention", ["sdpa", VARLEN])
def test_packed_loss_and_gradients_match_padded(attention):
    """One packed row (no attention mask, restarting position_ids) against right-padded rows with a mask:
    same documents, same loss (mean over plan tokens) and same gradients."""
    varlen = attention == VARLEN
    if varlen and not varlen_available():
        pytest.skip("torch's varlen attention runs on CUDA only")
    torch.manual_seed(0)
    device, dtype = ("cuda", torch.bfloat16) if varlen else ("cpu", torch.float32)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32,
                                                 attn_implementation=register_varlen_attention() if varlen else None)
    model.to(device)
    model.config.use_cache = True  # the packed batch must switch the cache off itself
    docs = []
    for n, plan in ((37, 9), (64, 20), (23, 5), (51, 12)):
        ids = torch.randint(5, model.config.vocab_size, (n,)).tolist()
        docs.append({"input_ids": ids, "labels": [-100] * (n - plan) + ids[n - plan:]})

    def loss_and_grads(batch):
        model.zero_grad()
        with torch.autocast(device, dtype=dtype, enabled=varlen):
            loss = model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    pad = {k: torch.nn.utils.rnn.pad_sequence([torch.tensor(d[k]) for d in docs], batch_first=True,
                                              padding_value=-100 if k == "labels" else 0)
           for k in ("input_ids", "labels")}
    pad["attention_mask"] = (torch.arange(pad["input_ids"].shape[1])[None] < torch.tensor(
        [len(d["input_ids"]) for d in docs])[:, None]).long()
    packed = PackedCollator(varlen)([{"docs": docs[:2]}, {"docs": docs[2:]}])
    assert packed["input_ids"].shape == (1, 175) and packed["position_ids"][0, 37].item() == 0
    loss_pad, grads_pad = loss_and_grads(pad)
    loss_pack, grads_pack = loss_and_grads(packed)
    tol = 2e-2 if varlen else 1e-4  # bf16 attention kernels differ between flash and sdpa
    assert rel(loss_pack, loss_pad) < tol
    assert max(rel(a, b) for a, b in zip(grads_pack, grads_pad)) < tol
    if varlen:
        return
    # the check has teeth: with the cache left on, documents attend across their boundaries
    _, leaky = loss_and_grads({k: v for k, v in packed.items() if k != "use_cache"})
    assert max(rel(a, b) for a, b in zip(leaky, grads_pad)) > 1e-2


def test_packed_training_step_arithmetic(synth_dir, tmp_path):
    cfg = tiny(synth_dir, tmp_path, "training.packing=true", "training.max_steps=-1", "training.eval_steps=100",
               "data.max_train=16", "training.batch_size=2", "training.grad_accum=2")
    summary = run_training(cfg, show_progress=False)
    packs = summary["packing"]["packs"]
    assert 4 <= packs <= 10 and summary["steps"] == math.ceil(packs / 2)
    assert summary["tokens"] > 0 and summary["fused_kernels"] is None
    assert summary["validation"]["runs"] == 1 and summary["validation"]["seconds"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)


def test_pack_tokens_below_max_length_is_one_line_error():
    with pytest.raises(ConfigError, match=r"training.pack_tokens \(512\) must be at least data.max_length \(1024\)"):
        load_config(None, ["training.pack_tokens=512", "data.max_length=1024"])


def test_pack_samples_items_hold_whole_documents():
    samples = [{"input_ids": [1] * n, "labels": [1] * n} for n in (10, 20, 30, 40)]
    packs = pack_samples(samples, 50)
    assert sorted(len(d["input_ids"]) for p in packs for d in p["docs"]) == [10, 20, 30, 40]
    assert all(sum(len(d["input_ids"]) for d in p["docs"]) <= 50 for p in packs)


def test_varlen_attention_falls_back_to_sdpa_without_packing():
    """Generation and padded batches through a model loaded with the varlen implementation: sdpa's result."""
    torch.manual_seed(0)
    path = resolve_model("tiny-random")
    a = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    b = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=register_varlen_attention())
    ids = torch.randint(5, a.config.vocab_size, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding, as the planner does
    with torch.no_grad():
        assert torch.allclose(a(input_ids=ids, attention_mask=mask).logits, b(input_ids=ids, attention_mask=mask).logits)


def test_fused_kernels_skip_cleanly_without_cuda():
    """Last in this file: on CUDA, liger-kernel patches the Llama classes for the rest of the process."""
    assert apply_fused_kernels("auto", "cpu", "llama") is None
    assert apply_fused_kernels(False, "cuda", "llama") is None
    with pytest.raises(ConfigError, match=r"^model.fused_kernels=true needs a CUDA GPU .*; use auto or false$"):
        apply_fused_kernels(True, "cpu", "llama")
    if not torch.cuda.is_available():
        pytest.skip("liger-kernel runs on CUDA only")
    assert apply_fused_kernels("auto", "cuda", "llama") is not None
