"""Inference: a fine-tuned (or base) causal LM that writes LLMCompiler plans for queries.

``Planner.from_pretrained`` reads a planner folder (``planner_folder``) and rebuilds prompts exactly as
training did; a preset name or plain checkpoint gets default settings, TinyAgent's tools (or the catalog
passed), all of them shown, and no examples unless a classifier and index are passed.
"""
from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from threading import Thread

import torch

from eval.plan import END_OF_PLAN

from .catalog import Catalog
from .decode import decode
from .devices import pick_device, pick_dtype
from .memory import generation_heap
from .models import cache_argument
from .planner_folder import folder_retrievers, read_prompt_settings
from .prefill import prefill_cache, reserved_cache, supports_plain_cache
from .prompt import PromptBuilder, render, sample_prompt_tools
from .samples import prompt_ids

MIN_TEMPERATURE = 1e-3  # below this sampling overflows (logits / T); treated as greedy


@dataclass
class PlanResult:
    text: str  # the plan, cut after <END_OF_PLAN> when the model wrote it
    tools: list[str]  # tools shown in the prompt
    prompt_tokens: int
    completion_tokens: int
    constrained: bool = False  # decoded under the plan grammar
    forced_end: bool = False  # the budget ran out and the shortest ending was forced


def cut_plan(text: str) -> str:
    end = text.find(END_OF_PLAN)
    return text[:end + len(END_OF_PLAN)] if end >= 0 else text


def plan_result(text: str, tools: list[str], prompt_tokens: int, completion_tokens: int, constrained: bool,
                forced: bool, catalog: Catalog) -> PlanResult:
    """The generated text as a result; a constrained plan cut short (``max_time``) gets the grammar's
    shortest ending, so a constrained plan is always whole."""
    text = cut_plan(text)
    if constrained and END_OF_PLAN not in text:
        from .grammar import closing_text
        text, forced = text + closing_text(text, {t: catalog.get(t) for t in tools}), True
    return PlanResult(text.strip(), tools, prompt_tokens, completion_tokens, constrained, forced)


class Planner:
    def __init__(self, model, tokenizer, builder: PromptBuilder):
        self.model, self.tokenizer, self.builder = model.eval(), tokenizer, builder
        self.catalog = builder.catalog
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.oracle_negatives: int | None = None
        self.max_new_tokens = 256  # what plan() generates at most (the longest synthetic plans are ~190 tokens)
        self.constrain = True  # grammar-constrained decoding wherever plans are generated
        # decoding writes into a cache reserved for prompt and plan; CPU batches prefill one prompt at a time,
        # without padding (see prefill.py)
        self.reserved_cache = supports_plain_cache(model)
        self.unpadded_prefill = next(model.parameters()).device.type == "cpu" and self.reserved_cache
        self._rng = random.Random(0)
        self.stats = {"plans": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                      "constrained": 0, "forced_endings": 0, "constraint_seconds": 0.0, "ending_failures": 0}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | None = None, dtype: str = "auto",
                        classifier: str | Path | None = None, index: str | Path | None = None,
                        num_examples: int | None = None, catalog: Catalog | None = None) -> Planner:
        """``catalog``: the tools to plan with; default the folder's own, else TinyAgent's."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from retriever import ExampleIndex, ToolClassifier

        from .catalog_files import folder_catalog
        from .models import resolve_model
        path = Path(resolve_model(str(name_or_path)))
        catalog = catalog or folder_catalog(path)
        settings = read_prompt_settings(path)
        if num_examples is not None:
            settings.num_examples = num_examples
        own_classifier, own_index = folder_retrievers(path)
        classifier, index = classifier or own_classifier, index or own_index
        device = pick_device(device)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=pick_dtype(dtype, device)).to(device)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        builder = PromptBuilder(settings, ToolClassifier.from_pretrained(classifier, catalog=catalog) if classifier else None,
                                ExampleIndex.load(index) if index else None, catalog)
        return cls(model, tokenizer, builder)

    def prompts(self, queries: Sequence[str], dates: Sequence[datetime | None] | None = None,
                tools: Sequence[Sequence[str] | None] | None = None, num_examples: int | None = None
                ) -> tuple[list[str], list[list[str]]]:
        """Model texts and the tool list each shows (catalog order when chosen here)."""
        tools = list(tools) if tools is not None else [None] * len(queries)
        todo = [i for i, t in enumerate(tools) if t is None]
        if todo:
            picked = self.builder.select_tools([queries[i] for i in todo])
            for i, p in zip(todo, picked):
                tools[i] = [t for t in self.catalog.names if t in p]
        now = datetime.now().replace(second=0, microsecond=0)
        days = [d or now for d in (dates or [None] * len(queries))]
        systems = self.builder.systems(queries, tools, days, num_examples=num_examples)
        return [render(s, q, self.tokenizer) for s, q in zip(systems, queries)], [list(t) for t in tools]

    def _encode(self, texts: list[str]) -> dict:
        return self._batch([prompt_ids(self.tokenizer, t) for t in texts])

    def _batch(self, ids: list[list[int]]) -> dict:
        width = max(map(len, ids))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])  # left padding
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        device = next(self.model.parameters()).device
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}

    def _generation_kwargs(self, max_new_tokens: int, temperature: float, max_time: float | None,
                           constraint=None) -> dict:
        kw = dict(max_new_tokens=max_new_tokens, stop_strings=[END_OF_PLAN], tokenizer=self.tokenizer,
                  pad_token_id=self.tokenizer.pad_token_id, use_cache=True, max_time=max_time)
        if constraint is not None:
            from transformers import LogitsProcessorList
            kw["logits_processor"] = LogitsProcessorList([constraint])
        if temperature >= MIN_TEMPERATURE:
            return kw | dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        return kw | dict(do_sample=False, temperature=None, top_p=None, top_k=None)

    def _cache(self, enc: dict, max_new_tokens: int):
        """The cache to decode into (None: the model's own)."""
        if not self.reserved_cache:
            return None
        ids, capacity = enc["input_ids"], enc["input_ids"].shape[1] + max_new_tokens
        if self.unpadded_prefill and len(ids) > 1 and int(enc["attention_mask"].sum(1).min()) > 1:
            return prefill_cache(self.model, **enc, capacity=capacity)
        return reserved_cache(self.model, capacity)

    def _constraint(self, tools: Sequence[Sequence[str]], enc: dict, max_new_tokens: int, constrain: bool | None):
        """The grammar's logits processor for one batch, or None when decoding is free."""
        if not (self.constrain if constrain is None else constrain):
            return None
        from .constrain import PlanConstraint
        shown = [[self.catalog.get(t) for t in row] for row in tools]
        return PlanConstraint.for_tokenizer(self.tokenizer).logits_processor(shown, enc["input_ids"].shape[1],
                                                                             max_new_tokens)

    @torch.inference_mode()
    def generate(self, queries: Sequence[str], dates: Sequence[datetime | None] | None = None,
                 tools: Sequence[Sequence[str] | None] | None = None, max_new_tokens: int = 256,
                 batch_size: int = 8, temperature: float = 0.0, num_examples: int | None = None,
                 max_time: float | None = None, constrain: bool | None = None) -> list[PlanResult]:
        """Batched plans (greedy by default), left-padded with the KV cache, stopping at <END_OF_PLAN>;
        under the plan grammar unless ``constrain`` (default ``self.constrain``) is False.
        ``max_time`` (seconds per batch) bounds generation for servers."""
        texts, shown = self.prompts(queries, dates, tools, num_examples)
        with generation_heap():
            return self._generate(texts, shown, max_new_tokens, batch_size, temperature, max_time, constrain)

    def _generate(self, texts: list[str], shown: list[list[str]], max_new_tokens: int, batch_size: int,
                  temperature: float, max_time: float | None, constrain: bool | None) -> list[PlanResult]:
        start = time.perf_counter()
        ids = [prompt_ids(self.tokenizer, t) for t in texts]
        # rows leave a batch as their plans end, but each step has a fixed cost until its longest plan ends:
        # prompts of similar length (tools shown, example) tend to have plans of similar length
        order = sorted(range(len(ids)), key=lambda j: len(ids[j]))
        results: list[PlanResult | None] = [None] * len(ids)
        for i in range(0, len(order), batch_size):
            rows = order[i:i + batch_size]
            enc = self._batch([ids[j] for j in rows])
            constraint = self._constraint([shown[j] for j in rows], enc, max_new_tokens, constrain)
            new = decode(self.model, self.tokenizer, **enc, max_new_tokens=max_new_tokens,
                         cache=self._cache(enc, max_new_tokens),
                         processor=constraint, temperature=temperature if temperature >= MIN_TEMPERATURE else 0.0,
                         max_time=max_time)
            forced = constraint.forced_rows if constraint else [False] * len(new)
            if constraint:
                self.stats["constraint_seconds"] += constraint.seconds
                self.stats["ending_failures"] += constraint.ending_failures
            for j, tokens, mask, f in zip(rows, new, enc["attention_mask"], forced):
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                results[j] = plan_result(text, shown[j], int(mask.sum()), len(tokens), constraint is not None, f,
                                         self.catalog)
        self._account(results, time.perf_counter() - start)
        return results

    def _account(self, results: list[PlanResult], seconds: float) -> None:
        self.stats["plans"] += len(results)
        self.stats["prompt_tokens"] += sum(r.prompt_tokens for r in results)
        self.stats["completion_tokens"] += sum(r.completion_tokens for r in results)
        self.stats["constrained"] += sum(r.constrained for r in results)
        self.stats["forced_endings"] += sum(r.forced_end for r in results)
        self.stats["seconds"] += seconds

    def plan(self, queries: Sequence[str], dates: Sequence[datetime | None] | None = None,
             gold_tools: Sequence[Iterable[str]] | None = None) -> list[str]:
        """Plan texts: the interface ``eval.harness.run`` drives. With ``oracle_negatives`` set, prompts
        show the gold tools plus that many random others (tool selection's upper bound, as in validation)."""
        tools = None
        if self.oracle_negatives is not None and gold_tools is not None:
            tools = [sample_prompt_tools(g, self.oracle_negatives, self._rng, self.catalog) for g in gold_tools]
        return [r.text for r in self.generate(queries, dates, tools, self.max_new_tokens, batch_size=len(queries))]

    def stream(self, query: str, date: datetime | None = None, tools: Sequence[str] | None = None,
               max_new_tokens: int = 256, temperature: float = 0.0, num_examples: int | None = None,
               max_time: float | None = None, constrain: bool | None = None
               ) -> tuple[list[str], int, Iterator[str], object | None]:
        """(tools shown, prompt tokens, iterator of text pieces, the grammar's logits processor or None)
        for one query, as the model writes them. Generation runs in a thread; the iterator ends when it
        does, also when it fails; ``plan_result`` turns the collected text into the final result."""
        from transformers import TextIteratorStreamer
        texts, shown = self.prompts([query], [date], [tools], num_examples)
        enc = self._encode(texts)
        constraint = self._constraint(shown, enc, max_new_tokens, constrain)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cache = self._cache(enc, max_new_tokens)
        kwargs = dict(**enc, **self._generation_kwargs(max_new_tokens, temperature, max_time, constraint),
                      **({cache_argument(self.model): cache} if cache is not None else {}), streamer=streamer)

        @torch.inference_mode()
        def work() -> None:
            try:
                with generation_heap():
                    self.model.generate(**kwargs)
            except Exception:  # noqa: BLE001 - the consumer sees a truncated plan, never a hang
                streamer.end()
                raise

        Thread(target=work, daemon=True).start()
        return shown[0], int(enc["attention_mask"].sum()), streamer, constraint

    def throughput(self) -> dict:
        s = self.stats
        return {**s, "plans_per_second": s["plans"] / s["seconds"] if s["seconds"] else 0.0}
