"""The planner prompt (spec section 2): system text, negative sampling, and model-text rendering."""
from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .catalog import TINYAGENT, Catalog

HEADER = ("Given a user query, create a plan to solve it with the utmost parallelizability. "
          "Each plan should comprise an action from the following {n} types:\n")

GUIDELINES = """Guidelines:
 - Each action described above contains input/output types and description.
    - You must strictly adhere to the input and output types for each action.
    - The action descriptions contain the guidelines. You MUST strictly follow those guidelines when you use the actions.
 - Each action in the plan should strictly be one of the above types. Follow the Python conventions for each action.
 - Each action MUST have a unique ID, which is strictly increasing.
 - Inputs for actions can either be constants or outputs from preceding actions. In the latter case, use the format $id to denote the ID of the previous action whose output will be the input.
 - Always call join as the last action in the plan. Say '<END_OF_PLAN>' after you call join.
 - Ensure the plan maximizes parallelizability.
 - Only use the provided action types. If a query cannot be addressed using these, invoke the join action for the next steps.
 - Never introduce new actions other than the ones provided.
 - Never add comments starting with # to the plan."""

CUSTOM = """Custom instructions:
 1. Today's date is {today}."""  # then the catalog's instructions, then its rules for the tools shown

EXAMPLES_HEADER = "Here are some examples:\n"
ALPACA = "### Instruction:\n{system}\n\n### Input:\n{user}\n\n### Response:\n"


@dataclass(frozen=True)
class Demo:
    """An in-context example: a query and its plan text (ending in ``join()<END_OF_PLAN>``)."""
    query: str
    plan: str


def format_today(today: datetime) -> str:
    return today.strftime("%A %Y-%m-%d %H:%M")


def build_system_prompt(tools: Sequence[str], examples: Iterable[Demo], today: datetime,
                        guidelines: bool = True, catalog: Catalog = TINYAGENT) -> str:
    """The planner system prompt for the given tools of ``catalog`` (in this order), examples and date.

    ``guidelines=False`` drops the generic guideline block (~270 tokens): a shorter prompt for
    CPU-budget fine-tunes, where the model learns the rules from the data instead."""
    for name in tools:
        if name not in catalog:
            raise ValueError(f"unknown tool {name!r} in prompt tools")
    n = len(tools)
    parts = [HEADER.format(n=n + 1)]
    parts += [f"{i}. {catalog.get(name).description}\n\n" for i, name in enumerate(tools, 1)]
    parts.append(f"{n + 1}. {catalog.join_description}\n\n")
    if guidelines:
        parts.append(GUIDELINES + "\n\n")
    custom = CUSTOM.format(today=format_today(today))
    lines = [*catalog.instructions, *catalog.rules_for(tools)]
    custom += "".join(f"\n {i}. {line}" for i, line in enumerate(lines, 2))
    parts.append(custom + "\n\n")
    examples = list(examples)
    if examples:
        parts.append(EXAMPLES_HEADER)
        parts.append("".join(f"Question: {e.query}\n{e.plan.rstrip()}\n###\n" for e in examples))
    return "".join(parts).rstrip("\n")


def user_message(query: str) -> str:
    return f"Question: {query}"


def sample_prompt_tools(gold: Iterable[str], n_negatives: int | None, rng: random.Random,
                        catalog: Catalog = TINYAGENT) -> list[str]:
    """Gold tools plus ``n_negatives`` irrelevant tools of ``catalog`` (None = all), in shuffled order."""
    gold = sorted(set(gold))
    others = [t for t in catalog.names if t not in gold]
    k = len(others) if n_negatives is None else min(n_negatives, len(others))
    tools = gold + rng.sample(others, k)
    rng.shuffle(tools)
    return tools


def render(system: str, query: str, tokenizer=None) -> str:
    """Model text up to where the plan starts: the chat template when the tokenizer has one, else Alpaca.

    The response (plan) follows immediately, so ``len(render(...))`` is where the loss starts.
    """
    user = user_message(query)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return ALPACA.format(system=system, user=user)


class PromptSettings(BaseModel):
    """How a planner's prompts are built; saved with a fine-tuned model so inference matches training."""
    model_config = ConfigDict(extra="forbid")
    num_examples: int = Field(3, ge=0, le=12)
    guidelines: bool = True


class PromptBuilder:
    """Builds planner prompts the same way for training, evaluation and serving.

    Tools: given per query, else the classifier's choice, else the whole catalog. Examples: the index's
    most similar solved queries whose tools fit (none without an index)."""

    def __init__(self, settings: PromptSettings, classifier=None, index=None, catalog: Catalog = TINYAGENT):
        self.settings, self.classifier, self.index, self.catalog = settings, classifier, index, catalog

    def select_tools(self, queries: Sequence[str]) -> list[set[str]]:
        if self.classifier is not None:
            return self.classifier.predict(list(queries))
        return [set(self.catalog.names) for _ in queries]

    def systems(self, queries: Sequence[str], tools: Sequence[Iterable[str]], dates: Sequence[datetime],
                exclude_ids: Sequence[str | None] | None = None, num_examples: int | None = None) -> list[str]:
        """System prompts; ``exclude_ids`` keeps a training example out of its own prompt. Tools are
        listed in the order given (training passes them shuffled)."""
        tools = [list(t) for t in tools]
        k = self.settings.num_examples if num_examples is None else num_examples
        demos = (self.index.search_batch(list(queries), tools, k, exclude_ids) if self.index is not None and k
                 else [[] for _ in queries])
        return [build_system_prompt(t, d, day, self.settings.guidelines, self.catalog)
                for t, d, day in zip(tools, demos, dates)]
