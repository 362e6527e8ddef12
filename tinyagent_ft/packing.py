"""Padding-free packing: whole documents grouped into micro-batches by a token budget, each micro-batch
flattened into one row by transformers' ``DataCollatorWithFlattening`` (``position_ids`` restart at every
document, the first label of each document is -100).

Attention never crosses documents, in one of two ways:
- ``varlen`` (CUDA, torch with ``torch.nn.attention.varlen``): FlashAttention per document from the
  collator's cumulative lengths; each document costs what it would alone.
- otherwise sdpa: with no attention mask transformers derives a dense block-diagonal mask from the
  restarting ``position_ids``, so attention is computed over the whole row and masked (its cost grows
  with the square of the row length: slower than padding on GPUs, see README).
The cache must stay off during training: a ``DynamicCache`` disables the block-diagonal detection (the
model would then attend across documents silently), so every packed batch carries ``use_cache=False``.
"""
from __future__ import annotations

import inspect
import math
import random
from collections.abc import Sequence

import torch

VARLEN = "varlen"  # the attention implementation registered with transformers by register_varlen_attention


def default_pack_tokens(lengths: Sequence[int], docs_per_pack: int) -> int:
    """A budget that holds ``docs_per_pack`` documents of mean length (and the longest one), so steps per
    epoch and examples per optimizer step stay what the padded batch size gives."""
    return max(max(lengths), math.ceil(docs_per_pack * sum(lengths) / len(lengths)))


def group_by_tokens(lengths: Sequence[int], budget: int, seed: int = 0, max_open: int = 64) -> list[list[int]]:
    """Indices of documents grouped so each group's total length is at most ``budget``: documents in a
    seeded random order, each put into the first open group with room (first fit). A group closes when the
    shortest document no longer fits or when more than ``max_open`` are open (the oldest closes), which
    keeps the work linear in the number of documents."""
    too_long = [n for n in lengths if n > budget]
    if too_long:
        raise ValueError(f"pack budget {budget} tokens is below a sample of {max(too_long)} tokens; raise it")
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    shortest = min(lengths, default=0)
    groups, open_groups = [], []  # open: [free tokens, group]
    for i in order:
        n = lengths[i]
        for slot in open_groups:
            if slot[0] >= n:
                slot[0] -= n
                slot[1].append(i)
                break
        else:
            slot = [budget - n, [i]]
            groups.append(slot[1])
            open_groups.append(slot)
            if len(open_groups) > max_open:
                open_groups.pop(0)
        if slot[0] < shortest and slot in open_groups:
            open_groups.remove(slot)
    return groups


def pack_samples(samples: Sequence[dict], budget: int, seed: int = 0) -> list[dict]:
    """One dataset item per micro-batch: ``{"docs": [sample, ...]}`` (train with a batch size of 1)."""
    return [{"docs": [samples[i] for i in g]} for g in group_by_tokens([len(s["input_ids"]) for s in samples],
                                                                       budget, seed)]


class PackedCollator:
    """Flattens the documents of the packs it gets into one row (via ``DataCollatorWithFlattening``);
    ``varlen``: with the cumulative document lengths the varlen attention reads."""

    def __init__(self, varlen: bool = False):
        from transformers import DataCollatorWithFlattening
        self.flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100,
                                                  return_flash_attn_kwargs=varlen)

    def __call__(self, packs: list[dict]) -> dict:
        batch = self.flatten([doc for pack in packs for doc in pack["docs"]], return_tensors="pt")
        batch["use_cache"] = False
        return batch


def varlen_available() -> bool:
    """torch's FlashAttention-based varlen kernel exists here (it runs on CUDA only)."""
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                      cu_seq_lens_q=None, cu_seq_lens_k=None, max_length_q=None, max_length_k=None, **kwargs):
    """Packed rows (the collator's cumulative lengths present): causal FlashAttention within each document.
    Anything else (generation, padded batches) goes to sdpa with the mask transformers built."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    from torch.nn.attention.varlen import varlen_attn
    b, heads, t, d = query.shape
    dtype = query.dtype if query.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16  # flash: 16-bit only
    q, k, v = (x.transpose(1, 2).reshape(b * t, x.shape[1], d).to(dtype) for x in (query, key, value))
    params = inspect.signature(varlen_attn).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    if k.shape[1] != heads:  # grouped-query attention
        if "enable_gqa" in params:
            causal["enable_gqa"] = True
        else:
            k, v = (x.repeat_interleave(heads // x.shape[1], dim=1) for x in (k, v))
    out = varlen_attn(q, k, v, cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k, scale=scaling, **causal)
    return out.reshape(b, t, heads, d), None


def register_varlen_attention() -> str:
    """Register ``varlen`` with transformers (idempotent); load models with ``attn_implementation=VARLEN``."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask
    AttentionInterface.register(VARLEN, _varlen_attention)
    AttentionMaskInterface.register(VARLEN, sdpa_mask)
    return VARLEN
