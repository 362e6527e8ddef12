"""Dataset statistics for ``tinyagent-ft data stats``: pure functions over loaded examples."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from eval.dag import plan_shape
from eval.plan import parse_plan
from tinyagent_ft.catalog import TINYAGENT, Catalog

from .data import Example


def percentiles(values: Sequence[float], qs=(50, 90, 99, 100)) -> dict[str, float]:
    if not values:
        return {f"p{q}": 0.0 for q in qs}
    ordered = sorted(values)
    return {f"p{q}": float(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]) for q in qs}


def dataset_stats(examples: Sequence[Example], count_tokens: Callable[[str], int] | None = None,
                  catalog: Catalog = TINYAGENT) -> dict:
    by_tool, by_calls, by_shape = Counter(), Counter(), Counter()
    for e in examples:
        plan = parse_plan(e.plan, catalog)
        by_tool.update(plan.tools)
        by_calls[len(plan.tools)] += 1
        by_shape[plan_shape(plan)] += 1
    stats = {"examples": len(examples),
             "by_tool": {t: by_tool[t] for t in catalog.names},
             "by_calls": dict(sorted(by_calls.items())),
             "by_shape": dict(by_shape.most_common())}
    if count_tokens:
        stats["plan_tokens"] = percentiles([count_tokens(e.plan) for e in examples])
        prompts = [e.prompt for e in examples if e.prompt]
        stats["prompt_tokens"] = percentiles([count_tokens(p) for p in prompts])
    return stats
