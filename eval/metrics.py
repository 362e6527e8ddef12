"""Per-pair scores and their aggregation: success (structure / strict) plus finer metrics.

All functions are pure: plan text in, numbers out. Gold plans define the breakdown keys (number of
calls, shape) so that a model cannot move an example between buckets.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable

import networkx as nx

from tinyagent_ft.catalog import TINYAGENT, Catalog

from .dag import build_graph, canonical_forms, plan_shape, strict_match, structure_match
from .plan import Plan, parse_plan


def _overlap(gold: Counter, pred: Counter) -> tuple[int, int, int]:
    """(true positives, predicted, gold) for two multisets."""
    return sum((gold & pred).values()), sum(pred.values()), sum(gold.values())


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else float(n_gold == 0)
    r = tp / n_gold if n_gold else float(n_pred == 0)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _edges(plan: Plan) -> Counter:
    tools = {s.id: s.tool for s in plan.steps}
    return Counter((tools[r], s.tool) for s in plan.steps for r in s.refs if r in tools)


def _arg_values(plan: Plan) -> Counter:
    """(tool, argument position, canonical value) for every argument of every call."""
    return Counter((tool, k, v) for tool, args in canonical_forms(plan).values() for k, v in enumerate(args))


def graph_edit_distance(gold: Plan, pred: Plan, timeout: float) -> tuple[float, bool]:
    """Edit distance with node match on tool, normalised by the cost of deleting one graph and
    inserting the other; returns (distance in [0, 1], timed out). A timed-out value is an upper bound."""
    g, p = build_graph(gold), build_graph(pred)
    total = g.number_of_nodes() + g.number_of_edges() + p.number_of_nodes() + p.number_of_edges()
    if total == 0:
        return 0.0, False
    t0 = time.perf_counter()
    ged = nx.graph_edit_distance(g, p, node_match=lambda a, b: a["tool"] == b["tool"], timeout=timeout)
    timed_out = time.perf_counter() - t0 >= timeout * 0.98
    if ged is None:
        ged = total
    return min(1.0, ged / total), timed_out


def score_pair(gold_text: str, pred_text: str | None, ged_timeout: float | None = None,
               catalog: Catalog = TINYAGENT) -> dict:
    """All per-example numbers for one gold/prediction pair (``pred_text`` None = missing)."""
    gold = parse_plan(gold_text, catalog)
    pred = parse_plan(pred_text if pred_text is not None else "", catalog)
    out = {
        "success": structure_match(gold, pred),
        "success_strict": strict_match(gold, pred),
        "parsed": pred.valid,
        "argument_problems": pred.parses and not pred.valid,  # scored for structure, fails strict
        "gold_argument_problems": gold.parses and not gold.valid,
        "errors": ["missing: no prediction"] if pred_text is None else [str(e) for e in pred.errors],
        "n_calls": len(gold.tools),
        "shape": plan_shape(gold),
        "tools": _overlap(Counter(gold.tools), Counter(pred.tools)),
        "tool_counts": {"gold": dict(Counter(gold.tools)), "pred": dict(Counter(pred.tools))},
        "edges": _overlap(_edges(gold), _edges(pred)),
        "args": _overlap(_arg_values(gold), _arg_values(pred)),
    }
    if ged_timeout:
        out["ged"], out["ged_timed_out"] = graph_edit_distance(gold, pred, ged_timeout)
    return out


def _summary(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"count": 0}
    tot = lambda key: tuple(map(sum, zip(*(r[key] for r in rows))))  # noqa: E731
    out = {"count": n,
           "success_rate": sum(r["success"] for r in rows) / n,
           "success_rate_strict": sum(r["success_strict"] for r in rows) / n,
           "parse_rate": sum(r["parsed"] for r in rows) / n,
           "argument_problems": sum(r["argument_problems"] for r in rows),
           "tool_f1": prf(*tot("tools"))["f1"],
           "edge_f1": prf(*tot("edges"))["f1"],
           "arg_f1": prf(*tot("args"))["f1"]}
    if rows and "ged" in rows[0]:
        out["ged"] = sum(r["ged"] for r in rows) / n
    return out


def aggregate(rows: Iterable[dict]) -> tuple[dict, dict]:
    """(metrics, breakdown) over scored pairs."""
    rows = list(rows)
    metrics = _summary(rows)
    if not rows:
        return metrics, {}
    tool = prf(*map(sum, zip(*(r["tools"] for r in rows))))
    metrics.pop("tool_f1")
    metrics.update({f"tool_{k}_micro": v for k, v in tool.items()})
    per_tool: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        g, p = Counter(r["tool_counts"]["gold"]), Counter(r["tool_counts"]["pred"])
        for t in set(g) | set(p):
            per_tool[t][0] += min(g[t], p[t])
            per_tool[t][1] += p[t]
            per_tool[t][2] += g[t]
    macro = [prf(*v) for v in per_tool.values()]
    for k in ("precision", "recall", "f1"):
        metrics[f"tool_{k}_macro"] = sum(m[k] for m in macro) / len(macro) if macro else 1.0
    metrics["edge_precision"], metrics["edge_recall"], _ = prf(*map(sum, zip(*(r["edges"] for r in rows)))).values()
    if "ged" in rows[0]:
        metrics["ged_timeouts"] = sum(r["ged_timed_out"] for r in rows)
    breakdown = {}
    for key in ("n_calls", "shape"):
        groups = defaultdict(list)
        for r in rows:
            groups[r[key]].append(r)
        breakdown[f"by_{key}"] = {str(k): _summary(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}
    return metrics, breakdown
