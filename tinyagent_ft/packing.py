"""Padding-free packing: whole documents grouped into micro-batches by a token budget, each micro-batch
flattened into one row by transformers' ``DataCollatorWithFlattening`` (``position_ids`` restart at every
document, the first label of each document is -100).

With no attention mask, transformers derives a block-diagonal causal mask from the restarting
``position_ids``, so no token attends across documents and no compute is spent on padding. The cache
must stay off during training: a ``DynamicCache`` disables that detection (the model would then attend
across documents silently), so every packed batch carries ``use_cache=False``.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence


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
    """Flattens the documents of the packs it gets into one row (via ``DataCollatorWithFlattening``)."""

    def __init__(self):
        from transformers import DataCollatorWithFlattening
        self.flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)

    def __call__(self, packs: list[dict]) -> dict:
        batch = self.flatten([doc for pack in packs for doc in pack["docs"]], return_tensors="pt")
        batch["use_cache"] = False
        return batch
