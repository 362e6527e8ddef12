"""Grammar-constrained plan decoding for ``model.generate``, with llguidance.

A ``PlanConstraint`` holds what is costly to build once per tokenizer: llguidance's view of the
vocabulary (~0.4 s), a thread pool for mask computation, and one compiled matcher per tool set
(~30 ms each, then copied per row in microseconds). ``logits_processor`` returns the processor for
one batch: each row may only write plans that the grammar for its prompt's tools allows, and every
row ends inside its token budget: when the remaining tokens only fit the shortest ending of the
plan so far (``grammar.closing_text``), that ending is forced.
"""
from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .catalog import Tool
from .grammar import GrammarLimits, closing_text, join_line, minimal_value, plan_grammar

# Token classes llguidance can allow in one step where a string's body allows all of them (string
# characters exclude quotes, backslashes, "<" and "$", which may only start a reference): ~4x faster masks.
_BODY = "[^\"'\\\\$<\\x00-\\x1F\\x7F]"
_SLICES = [_BODY + "{1,10}", _BODY + "{1,30}", "[\\x20\\x0A\\x0D\\x09]+"]
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # HF tokenizer -> PlanConstraint


@dataclass
class RowState:
    matcher: object  # llguidance.LLMatcher
    tools: dict[str, Tool]
    text: bytes = b""
    forced: list[int] | None = None  # the ending being forced, token by token
    done: bool = False
    broken: bool = False  # the grammar engine refused a token: the row continues unconstrained


def check_vocabulary(tokenizer, ll_tokenizer, text: str = '1. open_note("Gift Ideas", "")\n2. join()') -> None:
    """Refuse a tokenizer whose vocabulary llguidance reads differently: every mask would be wrong. Seen with
    the SmolLM2 GGUF converted by transformers 5.17 (" open" read as another token: plans like "1.. ")."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    seen = ll_tokenizer.decode_bytes(ids)
    if seen != text.encode():
        raise ValueError(f"constrained decoding: the grammar engine reads the tokens of {text!r} as {seen!r}; "
                         f"rebuild the tokenizer with a current transformers, or decode with constrain=False")


class PlanConstraint:
    """llguidance state for one tokenizer; ``for_tokenizer`` shares it within the process."""

    def __init__(self, tokenizer, limits: GrammarLimits = GrammarLimits(), cache_size: int = 256):
        import llguidance
        import llguidance.hf
        self.llg, self.limits, self.cache_size = llguidance, limits, cache_size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, slices=_SLICES)
        check_vocabulary(tokenizer, self.tokenizer)
        self.executor = llguidance.LLExecutor()
        self._matchers: OrderedDict[tuple[str, ...], object] = OrderedDict()

    @classmethod
    def for_tokenizer(cls, tokenizer) -> PlanConstraint:
        if tokenizer not in _CACHE:
            _CACHE[tokenizer] = cls(tokenizer)
        return _CACHE[tokenizer]

    def matcher(self, tools: Sequence[Tool]):
        """A fresh matcher for plans over ``tools`` (compiled once per tool set, then copied)."""
        key = tuple(sorted(set(tools), key=lambda t: t.name))
        if key not in self._matchers:
            grammar = self.llg.LLMatcher.grammar_from_lark(plan_grammar(key, self.limits))
            m = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
            if m.is_error():
                raise ValueError(f"plan grammar for {[t.name for t in key]}: {m.get_error()}")
            self._matchers[key] = m
            if len(self._matchers) > self.cache_size:
                self._matchers.popitem(last=False)
        self._matchers.move_to_end(key)
        return self._matchers[key].deep_copy()

    def logits_processor(self, tools: Sequence[Sequence[Tool]], prompt_len: int, max_new_tokens: int) -> PlanLogitsProcessor:
        return PlanLogitsProcessor(self, tools, prompt_len, max_new_tokens)

    def tokens(self, text: str) -> list[int]:
        """Byte-exact tokens for forced text (no prefix space, whatever the tokenizer's habits)."""
        return self.tokenizer.greedy_tokenize(text)


class PlanLogitsProcessor:
    """The grammar's masks for one batch: ``mask`` a step's scores, ``consume`` the tokens chosen, ``keep``
    the rows that go on (``decode.decode`` drops finished rows); also a transformers logits processor for
    ``generate``, whose rows all stay."""

    def __init__(self, constraint: PlanConstraint, tools: Sequence[Sequence[Tool]], prompt_len: int, max_new_tokens: int):
        from llguidance.torch import allocate_token_bitmask
        self.c, self.prompt_len, self.max_new_tokens = constraint, prompt_len, max_new_tokens
        self.rows = [RowState(constraint.matcher(t), {x.name: x for x in t}) for t in tools]
        self.live = list(self.rows)  # the rows still in the batch, in batch order
        vocab = constraint.tokenizer.vocab_size
        self.bitmask = allocate_token_bitmask(len(self.rows), vocab)
        self.seconds = 0.0  # spent in this processor: masks, budget checks, forcing
        self.ending_failures = 0  # endings the grammar refused: a bug if ever non-zero (in the planner's stats)
        # The longest ending any state can need, in tokens, plus the most one token can add to it:
        # outside this many remaining tokens no row needs checking.
        shown = {t.name: t for r in self.rows for t in r.tools.values()}
        calls = [f"{t.name}(" + ", ".join(minimal_value(a) for a in t.args) + ")\n" for t in shown.values()] or [""]
        longest = max(len(constraint.tokens(c)) for c in calls)
        self.watch = 2 * longest + 2 * len(constraint.tokens(join_line(constraint.limits.max_steps))) + 8
        if max_new_tokens < len(constraint.tokens(join_line(1))):
            raise ValueError(f"max_new_tokens={max_new_tokens} cannot fit even a join-only plan")

    @property
    def forced_rows(self) -> list[bool]:
        return [r.forced is not None for r in self.rows]

    def keep(self, batch_rows: list[int]) -> None:
        self.live = [self.live[i] for i in batch_rows]

    def consume(self, tokens: list[int]) -> None:
        """Advance each live row's grammar state by the token it wrote."""
        start = time.perf_counter()
        for row, token in zip(self.live, tokens):
            if row.done or row.broken:
                continue
            if row.forced:
                row.forced.pop(0)
            if not row.matcher.consume_token(token):
                row.broken = True
                continue
            row.text += self.c.tokenizer.decode_bytes([token])
            row.done = row.matcher.is_accepting()
        self.seconds += time.perf_counter() - start

    def _ending(self, row: RowState, extra: bytes = b"") -> list[int]:
        text = (row.text + extra).decode("utf-8", errors="ignore")
        return self.c.tokens(closing_text(text, row.tools))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        produced = input_ids.shape[1] - self.prompt_len
        if produced > 0:
            self.consume(input_ids[:, -1].tolist())
        return self.mask(scores, produced)

    def mask(self, scores: torch.FloatTensor, produced: int) -> torch.FloatTensor:
        """``scores`` (one row per live row) with every token the grammar forbids at -inf, or only the next
        token of a forced ending allowed; ``produced``: tokens written so far."""
        from llguidance.torch import fill_next_token_bitmask_par
        start = time.perf_counter()
        rows = self.live
        free = [i for i, r in enumerate(rows) if not (r.done or r.broken or r.forced)]
        bitmask = self.bitmask[:len(rows)]
        bitmask.fill_(-1)  # rows not filled below stay unconstrained (finished, forced or broken)
        if free:
            fill_next_token_bitmask_par(self.c.executor, [(rows[i].matcher, i) for i in free], bitmask)
        bits = np.unpackbits(bitmask.numpy().view(np.uint8), axis=1, bitorder="little")
        width = min(bits.shape[1], scores.shape[1])
        # On the CPU, numpy on the logits' own buffer: single-threaded passes that stay fast on a busy
        # 2-core machine, where torch's threaded compare, fill and argmax were 5-10x slower.
        arr = scores.numpy() if scores.device.type == "cpu" and scores.dtype == torch.float32 else None
        target = arr if arr is not None else scores
        if arr is not None:
            np.copyto(arr[:, :width], -np.inf, where=bits[:, :width] == 0)
            arr[free, width:] = -np.inf
        else:
            banned = torch.from_numpy(bits[:, :width]).to(scores.device, non_blocking=True) == 0
            scores[:, :width].masked_fill_(banned, float("-inf"))
            scores[free, width:] = float("-inf")
        remaining = self.max_new_tokens - produced
        if remaining <= self.watch and free:
            self._keep_in_budget(dict(zip(free, target[free].argmax(-1).tolist())), remaining)
        for i, row in enumerate(rows):
            if row.forced:
                token = row.forced[0]
                keep = float(target[i, token])
                target[i] = -np.inf
                target[i, token] = keep if np.isfinite(keep) else 0.0
        self.seconds += time.perf_counter() - start
        return scores

    def _keep_in_budget(self, best: dict[int, int], remaining: int) -> None:
        """Let a free row write its best token only if the plan can still end after it, with one token
        to spare; otherwise force the shortest ending of what it has written, which fits (the previous
        step checked it)."""
        for i, token in best.items():
            row = self.live[i]
            if len(self._ending(row, self.c.tokenizer.decode_bytes([token]))) <= remaining - 2:
                continue
            ending = self._ending(row)
            if ending and row.matcher.validate_tokens(ending) == len(ending):
                row.forced = ending
            else:
                self.ending_failures += 1
