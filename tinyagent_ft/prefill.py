"""Prefill without padding: on a CPU, each prompt of a batch is run through the model on its own and the
caches are stacked, left-padded, for batched decoding.

Batched generation pads every prompt to the longest one, and on a CPU the prefill's cost grows with the
padded tokens (and with their square in attention): planner prompts of one batch differ by hundreds of
tokens, so about a third of a batch's prefill was padding. Decoding stays batched; each row's positions
are its own, as with padding, because a Llama-style cache holds keys after their rotary embedding.
"""
from __future__ import annotations

import torch

from .models import cache_argument


def supports_unpadded_prefill(model) -> bool:
    """A decoder whose cache is one full-attention key/value pair per layer (no sliding windows, no state):
    the layers transformers builds for the model's config say so."""
    from transformers import DynamicCache
    try:
        cache = DynamicCache(config=model.config)
    except (TypeError, ValueError):
        return False
    return all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers)


@torch.inference_mode()
def prefill_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """The cache of a left-padded batch, all tokens but the last of each row, built one row at a time:
    ``generate(input_ids, attention_mask, cache=...)`` then runs only the last column and decodes."""
    from transformers import DynamicCache
    width, key = input_ids.shape[1], cache_argument(model)
    rows = []
    for ids, mask in zip(input_ids, attention_mask):
        cache = DynamicCache(config=model.config)
        model(input_ids=ids[mask.bool()][None, :-1], **{key: cache}, use_cache=True, logits_to_keep=1)
        rows.append(cache)
    batch = DynamicCache(config=model.config)
    for i in range(len(batch.layers)):
        def stacked(part: str) -> torch.Tensor:
            tensors = [getattr(c.layers[i], part) for c in rows]
            return torch.cat([torch.nn.functional.pad(t, (0, 0, width - 1 - t.shape[2], 0)) for t in tensors])
        batch.update(stacked("keys"), stacked("values"), i)
    return batch
