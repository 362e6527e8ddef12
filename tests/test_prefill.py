"""The planner's decoding cache: reserved buffers and the unpadded prefill (CPU) decode as transformers' own
cache and the padded batch do."""
import torch

from eval.plan import parse_plan
from tinyagent_ft.models import cache_argument
from tinyagent_ft.planner import Planner, cut_plan
from tinyagent_ft.prefill import prefill_cache, supports_plain_cache


def _left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


@torch.inference_mode()
def test_prefilled_cache_gives_the_padded_batch_next_token_logits():
    planner = Planner.from_pretrained("tiny-random", device="cpu", dtype="float32")
    model = planner.model
    assert supports_plain_cache(model) and planner.unpadded_prefill
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(5, 1000, (n,), generator=gen).tolist() for n in (37, 5, 90)]
    ids, mask = _left_padded(rows, pad=0)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    padded = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
    cache = prefill_cache(model, ids, mask)
    assert cache.get_seq_length() == ids.shape[1] - 1
    stepped = model(input_ids=ids[:, -1:], attention_mask=mask, position_ids=positions[:, -1:],
                    **{cache_argument(model): cache}).logits[:, -1]
    torch.testing.assert_close(stepped, padded, rtol=1e-4, atol=1e-4)


def test_planner_plans_are_the_same_with_unpadded_prefill_reserved_cache_and_transformers_cache():
    planner = Planner.from_pretrained("tiny-random", device="cpu", dtype="float32")
    queries = ["Text Ana that I'm running late", "Open the note Gift Ideas",
               "Email Bob the quarterly report and remind me on Friday at 9am to follow up with him"]
    unpadded = [r.text for r in planner.generate(queries, max_new_tokens=64, batch_size=3)]
    planner.unpadded_prefill = False
    padded = [r.text for r in planner.generate(queries, max_new_tokens=64, batch_size=3)]
    planner.reserved_cache = False
    dynamic = [r.text for r in planner.generate(queries, max_new_tokens=64, batch_size=3)]
    assert unpadded == padded == dynamic
    assert all(p.rstrip().endswith("<END_OF_PLAN>") for p in unpadded)


def test_models_with_sliding_window_attention_keep_padded_prefill():
    from transformers import AutoModelForCausalLM, MistralConfig
    model = AutoModelForCausalLM.from_config(MistralConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        vocab_size=100, sliding_window=16))
    assert not supports_plain_cache(model)


def test_reserved_layer_grows_past_its_capacity_and_keeps_what_it_held():
    from tinyagent_ft.prefill import ReservedLayer
    layer, parts = ReservedLayer(capacity=4), [torch.randn(2, 3, n, 8) for n in (3, 1, 5)]
    for part in parts:
        keys, values = layer.update(part, -part)
    assert layer.get_seq_length() == 9 and layer.capacity >= 9
    torch.testing.assert_close(keys, torch.cat(parts, dim=2))
    torch.testing.assert_close(values, -torch.cat(parts, dim=2))


def test_decoding_writes_what_generate_writes():
    """``decode`` (rows leave the batch as their plans end) gives ``model.generate``'s greedy plans, free and
    constrained."""
    planner = Planner.from_pretrained("tiny-random", device="cpu", dtype="float32")
    queries = ["Text Ana that I'm running late", "Open the note Gift Ideas and the note Groceries",
               "Email Bob the quarterly report and remind me on Friday at 9am to follow up with him"]
    for constrain in (True, False):
        texts, shown = planner.prompts(queries)
        batch = sorted(texts, key=lambda t: len(planner.tokenizer(t)["input_ids"]))  # the order generate uses
        enc = planner._encode(batch)
        constraint = planner._constraint([shown[texts.index(t)] for t in batch], enc, 64, constrain)
        out = planner.model.generate(**enc, **planner._generation_kwargs(64, 0.0, None, constraint))
        expected = {t: cut_plan(planner.tokenizer.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True))
                    for t, row in zip(batch, out)}
        plans = planner.generate(queries, max_new_tokens=64, batch_size=3, constrain=constrain)
        assert [p.text for p in plans] == [expected[t].strip() for t in texts]


def test_rows_leave_the_batch_as_their_plans_end():
    planner = Planner.from_pretrained("tiny-random", device="cpu", dtype="float32")
    queries = ["Text Ana that I'm running late", "Open the note Gift Ideas", "Email Bob the report", "Open the note X"]
    rows = []  # batch rows of each decoding step (prefill runs each prompt on its own, all but its last token)
    planner.model.register_forward_hook(
        lambda m, args, kwargs, out: rows.append(len(kwargs["input_ids"])) if kwargs["input_ids"].shape[1] == 1 else None,
        with_kwargs=True)
    for seed in range(5):  # sampled, so that plans end at different lengths
        torch.manual_seed(seed)
        rows.clear()
        plans = planner.generate(queries, max_new_tokens=64, batch_size=4, temperature=1.0)
        lengths = sorted(p.completion_tokens for p in plans)
        if lengths[0] < lengths[-1]:
            break
    assert lengths[0] < lengths[-1], "no seed gave plans of different lengths"
    assert rows[0] == 4 and rows[-1] == lengths.count(lengths[-1])  # the longest plans decode alone at the end
    assert len(rows) == lengths[-1]  # one step per token of the longest plan
    assert all(parse_plan(p.text).valid for p in plans)
