"""The key/value cache the planner decodes with: buffers reserved for the whole plan, and on a CPU a prefill
without padding.

transformers' ``DynamicCache`` grows by concatenation, so every decoding step copies the whole cache of every
layer: on 2 CPU cores that copy was 45% of a batch's generation time (16 planner prompts of ~900 tokens).
``ReservedLayer`` writes each step into buffers sized for prompt plus plan, and attention reads a view of the
filled part, so results are unchanged.

Batched generation pads every prompt to the longest one, and on a CPU the prefill's cost grows with the
padded tokens (and with their square in attention): planner prompts of one batch differ by hundreds of
tokens, so about a third of a batch's prefill was padding. ``prefill_cache`` runs each prompt on its own and
stacks the caches, left-padded, for batched decoding; each row's positions are its own, as with padding,
because a Llama-style cache holds keys after their rotary embedding.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

from .models import cache_argument


def supports_plain_cache(model) -> bool:
    """A decoder whose cache is one full-attention key/value pair per layer (no sliding windows, no state):
    the layers transformers builds for the model's config say so."""
    from transformers import DynamicCache
    try:
        cache = DynamicCache(config=model.config)
    except (TypeError, ValueError):
        return False
    return all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers)


class ReservedLayer(DynamicLayer):
    """A full-attention layer cache written in place into buffers of ``capacity`` tokens (doubled, with
    one copy, if a caller goes past them); ``keys``/``values`` are views of the filled part."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized or self.keys.shape[-2] != self.length:  # first call, or cropped
            self._reserve(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            self.capacity = max(end, 2 * self.capacity)
            self._reserve(key_states, value_states)
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices`` (rows whose plans ended leave the batch)."""
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Fresh buffers of ``capacity`` tokens holding what the layer has cached so far."""
        old = (self.keys, self.values) if self.is_initialized else None
        self.length = 0 if old is None else old[0].shape[-2]
        self.capacity = max(self.capacity, self.length + key_states.shape[-2])
        self._keys, self._values = (s.new_empty((*s.shape[:2], self.capacity, s.shape[-1]))
                                    for s in (key_states, value_states))
        if old is not None:
            self._keys[:, :, :self.length], self._values[:, :, :self.length] = old
        self.device, self.is_initialized = key_states.device, True


def reserved_cache(model, capacity: int) -> Cache:
    """An empty cache for ``capacity`` tokens per row (prompt and generated)."""
    return Cache(layers=[ReservedLayer(capacity) for _ in range(model.config.num_hidden_layers)])


@torch.inference_mode()
def prefill_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, capacity: int = 0) -> Cache:
    """The cache of a left-padded batch, all tokens but the last of each row, built one row at a time:
    decoding (``decode.decode``, or ``generate(input_ids, attention_mask, cache=...)``) then runs only the last
    column and writes into the room ``capacity`` (tokens per row, at least the batch's width) leaves."""
    from transformers import DynamicCache
    width, key = input_ids.shape[1], cache_argument(model)
    rows = []
    for ids, mask in zip(input_ids, attention_mask):
        cache = DynamicCache(config=model.config)
        model(input_ids=ids[mask.bool()][None, :-1], **{key: cache}, use_cache=True, logits_to_keep=1)
        rows.append(cache)
    batch = reserved_cache(model, max(capacity, width))
    for i in range(len(batch.layers)):
        def stacked(part: str) -> torch.Tensor:
            tensors = [getattr(c.layers[i], part) for c in rows]
            return torch.cat([torch.nn.functional.pad(t, (0, 0, width - 1 - t.shape[2], 0)) for t in tensors])
        batch.update(stacked("keys"), stacked("values"), i)
    return batch
