"""Batched decoding that drops each row from the batch as soon as its plan ends.

``model.generate`` keeps finished rows in the batch until the longest plan of the batch ends, and every step
costs in proportion to the rows: on the demo's test queries (batches of 16 on 2 CPU cores) about half of
the row-steps went to rows that had already finished. Here a row leaves the batch (its cache, attention
mask and grammar state) when it writes <END_OF_PLAN> or the end-of-sequence token, or reaches its budget.
Greedy by default, or sampled at ``temperature``; the grammar's logits processor, when given, masks each
step's scores as in ``generate``.
"""
from __future__ import annotations

import time

import torch

from eval.plan import END_OF_PLAN

from .models import cache_argument, forward_accepts


@torch.inference_mode()
def decode(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           cache=None, processor=None, temperature: float = 0.0, max_time: float | None = None) -> list[list[int]]:
    """New tokens of each left-padded row (at most ``max_new_tokens``, ending with the stop text or token).
    ``cache``: filled with all but the last column (``prefill.prefill_cache``) or empty; None lets the
    model build its own. ``max_time``: seconds, after which every row stops where it is."""
    start, key = time.perf_counter(), cache_argument(model)
    eos = tokenizer.eos_token_id
    stop_tail = len(tokenizer(END_OF_PLAN, add_special_tokens=False)["input_ids"]) + 2
    extra = {"logits_to_keep": 1} if forward_accepts(model, "logits_to_keep") else {}
    live = list(range(len(input_ids)))  # original row of each batch row
    new: list[list[int]] = [[] for _ in live]
    positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
    done = cache.get_seq_length() if cache is not None else 0
    step_ids, step_positions, mask = input_ids[:, done:], positions[:, done:], attention_mask
    for produced in range(max_new_tokens):
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions, **{key: cache},
                    use_cache=True, **extra)
        cache = getattr(out, key)  # the output field is named as the argument
        scores = out.logits[:, -1].to(dtype=torch.float32, copy=True)
        if processor is not None:
            scores = processor.mask(scores, produced)
        if temperature > 0:
            tokens = torch.multinomial(torch.softmax(scores / temperature, dim=-1), 1).squeeze(1)
        else:
            tokens = scores.argmax(-1)
        ended, chosen = [], tokens.tolist()
        for i, (row, token) in enumerate(zip(live, chosen)):
            new[row].append(token)
            if token == eos or END_OF_PLAN in tokenizer.decode(new[row][-stop_tail:]):
                ended.append(i)
        if processor is not None:
            processor.consume(chosen)
        if len(ended) == len(live) or (max_time is not None and time.perf_counter() - start > max_time):
            break
        if ended:
            keep = sorted(set(range(len(live))) - set(ended))
            index = torch.tensor(keep, device=input_ids.device)
            cache.batch_select_indices(index)
            tokens, mask, step_positions = tokens[index], mask[index], step_positions[index]
            live = [live[i] for i in keep]
            if processor is not None:
                processor.keep(keep)
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        step_ids, step_positions = tokens[:, None], step_positions[:, -1:] + 1
    return new
