"""Tool-selection quality: pure functions over gold and selected tool sets."""
from __future__ import annotations

from collections.abc import Sequence

from eval.metrics import prf


def selection_metrics(gold: Sequence[frozenset[str]], selected: Sequence[set[str]],
                      labels: Sequence[str] | None = None) -> dict:
    """Recall as TinyAgent counts it (every gold tool selected, per example), mean tools, micro/macro F1
    and per-tool recall (over ``labels``, default every tool named in gold or selection)."""
    if len(gold) != len(selected):
        raise ValueError(f"{len(gold)} gold sets but {len(selected)} selections")
    n = len(gold)
    covered = sum(g <= s for g, s in zip(gold, selected))
    tp = sum(len(g & s) for g, s in zip(gold, selected))
    micro = prf(tp, sum(map(len, selected)), sum(map(len, gold)))
    per_tool, macro_f1 = {}, []
    for t in labels or sorted(set().union(*gold, *selected)):
        t_tp = sum(t in g and t in s for g, s in zip(gold, selected))
        t_gold = sum(t in g for g in gold)
        scores = prf(t_tp, sum(t in s for s in selected), t_gold)
        if t_gold:
            per_tool[t] = {"recall": scores["recall"], "support": t_gold}
            macro_f1.append(scores["f1"])
    return {"examples": n, "recall": covered / n if n else 0.0,
            "mean_tools": sum(map(len, selected)) / n if n else 0.0,
            "micro_precision": micro["precision"], "micro_recall": micro["recall"], "micro_f1": micro["f1"],
            "macro_f1": sum(macro_f1) / len(macro_f1) if macro_f1 else 0.0, "per_tool": per_tool}
