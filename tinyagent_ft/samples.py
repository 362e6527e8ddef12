"""Training samples: prompt tokens (masked out of the loss) followed by plan tokens and EOS."""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .data import Example
from .prompt import PromptBuilder, render, sample_prompt_tools, user_message

IGNORE = -100


@dataclass
class SampleStats:
    """What the truncation policy did: fewer in-context examples first, drop the sample last."""
    built: int = 0
    fewer_examples: int = 0
    dropped_too_long: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    tokens: int = 0  # prompt and plan, all samples: what one epoch trains on

    def summary(self) -> dict:
        p = sorted(self.prompt_tokens) or [0]
        return {"built": self.built, "fewer_examples": self.fewer_examples, "dropped_too_long": self.dropped_too_long,
                "prompt_tokens_median": p[len(p) // 2], "prompt_tokens_max": p[-1], "tokens": self.tokens}


def prompt_ids(tokenizer, text: str) -> list[int]:
    """Prompt tokens; BOS is added only when the rendered text does not already start with it."""
    bos = tokenizer.bos_token
    return tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]


def training_tools(examples: Sequence[Example], mode: str, negatives: int, builder: PromptBuilder,
                   rng: random.Random) -> list[list[str]]:
    """Prompt tools per example: gold plus sampled negatives, the classifier's choice (gold always kept),
    or the whole catalog; shuffled so position carries no signal."""
    catalog = builder.catalog
    if mode == "gold":
        return [sample_prompt_tools(e.tools, negatives, rng, catalog) for e in examples]
    if mode == "all":
        return [sample_prompt_tools(e.tools, None, rng, catalog) for e in examples]
    chosen = builder.select_tools([e.query for e in examples])
    return [sample_prompt_tools(e.tools | c, 0, rng, catalog) for e, c in zip(examples, chosen)]


def build_samples(examples: Sequence[Example], tokenizer, builder: PromptBuilder, tools: Sequence[Sequence[str]],
                  max_length: int, progress: Callable[[int], None] | None = None, chunk: int = 256,
                  mark_query: bool = False) -> tuple[list[dict], SampleStats]:
    """Tokenized samples with labels on the plan only. Over-long samples lose in-context examples
    one at a time; a sample that is too long with none is dropped and counted, never cut mid-plan.
    ``mark_query``: each sample also holds ``query_start``, the index of the user turn's first token
    (everything before it is the system prompt: tools, instructions, in-context examples)."""
    stats, samples = SampleStats(), []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    k = builder.settings.num_examples
    for start in range(0, len(examples), chunk):
        part, part_tools = examples[start:start + chunk], tools[start:start + chunk]
        systems = builder.systems([e.query for e in part], part_tools, [e.date for e in part],
                                  [e.id for e in part])
        for e, t, system in zip(part, part_tools, systems):
            target = tokenizer(e.plan, add_special_tokens=False)["input_ids"] + eos
            text = render(system, e.query, tokenizer)
            ids = prompt_ids(tokenizer, text)
            shortened = False
            for fewer in range(k - 1, -1, -1):
                if len(ids) + len(target) <= max_length:
                    break
                shortened = True
                system = builder.systems([e.query], [t], [e.date], [e.id], fewer)[0]
                text = render(system, e.query, tokenizer)
                ids = prompt_ids(tokenizer, text)
            if len(ids) + len(target) > max_length:
                stats.dropped_too_long += 1
                continue
            stats.fewer_examples += shortened
            stats.built += 1
            stats.prompt_tokens.append(len(ids))
            stats.tokens += len(ids) + len(target)
            samples.append({"input_ids": ids + target, "labels": [IGNORE] * len(ids) + target})
            if mark_query:
                samples[-1]["query_start"] = len(prompt_ids(tokenizer, text[:text.rfind(user_message(e.query))]))
        if progress:
            progress(len(part))
    return samples, stats
