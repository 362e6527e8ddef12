"""Plans as networkx DAGs, their shape, and the two success criteria (spec section 5).

``structure``: the TinyAgent isomorphism metric with its quirks fixed (every ``$k`` and ``${k}``
reference in every argument makes an edge; join is a node). ``strict``: structure plus equal
multisets of canonical nodes, where a node's canonical form is its tool and arguments with each
reference replaced by the canonical form of the referenced node; strings compare stripped and
casefolded, lists as multisets, and None equals "" (the tools treat both as "not applicable").
"""
from __future__ import annotations

from collections import Counter

import networkx as nx

from tinyagent_ft.catalog import JOIN

from .plan import REFERENCE, Plan

SHAPES = ("empty", "single", "parallel", "chain", "dag")


def build_graph(plan: Plan) -> nx.DiGraph:
    """One node per step (join included) with its ``tool``; an edge k -> i per reference to k in step i."""
    g = nx.DiGraph()
    for s in plan.steps:
        g.add_node(s.id, tool=s.tool)
    for s in plan.steps:
        for r in s.refs:
            if r in g:
                g.add_edge(r, s.id)
    return g


def plan_shape(plan: Plan) -> str:
    """empty (join only), single, parallel (no dependencies), chain (one path through all calls) or dag."""
    calls = [s for s in plan.steps if s.tool != JOIN]
    if not calls:
        return "empty"
    if len(calls) == 1:
        return "single"
    edges = [(r, s.id) for s in calls for r in s.refs]
    if not edges:
        return "parallel"
    outs, ins = Counter(a for a, _ in edges), Counter(b for _, b in edges)
    if len(edges) == len(calls) - 1 and max(outs.values()) == 1 and max(ins.values()) == 1:
        return "chain"
    return "dag"


def _signatures(plan: Plan) -> dict[int, tuple]:
    """Per node: (tool, sorted signatures of its dependencies), i.e. its whole upstream tree of tool names."""
    by_id = {s.id: s for s in plan.steps}
    sig: dict[int, tuple] = {}
    for s in plan.steps:  # steps are in increasing id order and refer only backwards
        sig[s.id] = (s.tool, tuple(sorted(sig[r] for r in s.refs if r in sig)))
    return {k: sig[k] for k in by_id}


def structure_match(gold: Plan, pred: Plan) -> bool:
    """TinyAgent's criterion: tools and dependencies only, so argument count or type problems (in gold
    or prediction) do not fail it; unknown tools, bad references or a missing join do."""
    if not (gold.parses and pred.parses) or len(gold.steps) != len(pred.steps):
        return False
    sg, sp = _signatures(gold), _signatures(pred)
    if Counter(sg.values()) != Counter(sp.values()):
        return False
    g, p = build_graph(gold), build_graph(pred)
    for n in g:
        g.nodes[n]["sig"] = sg[n]
    for n in p:
        p.nodes[n]["sig"] = sp[n]
    return nx.is_isomorphic(g, p, node_match=lambda a, b: a["sig"] == b["sig"])


def canon_value(value, node):
    if value is None:
        return ("str", "")
    if isinstance(value, str):
        parts = REFERENCE.split(value)  # text, ref id, text, ref id, ...
        if len(parts) == 1:
            return ("str", value.strip().casefold())
        pieces = tuple(node(int(p)) if i % 2 else p.strip().casefold() for i, p in enumerate(parts))
        return ("ref", tuple(x for x in pieces if x != ""))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(sorted((canon_value(v, node) for v in value), key=repr)))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((canon_value(k, node), canon_value(v, node)) for k, v in value.items()), key=repr)))
    return (type(value).__name__, value)


def canonical_forms(plan: Plan) -> dict[int, tuple]:
    """Per step id: (tool, canonical args), references replaced by the referenced step's form."""
    forms: dict[int, tuple] = {}

    def node(i: int):
        return forms.get(i, ("missing", i))

    for s in plan.steps:  # increasing ids; valid plans refer only backwards
        forms[s.id] = (s.tool, tuple(canon_value(a, node) for a in s.args))
    return forms


def canonical_nodes(plan: Plan) -> Counter:
    return Counter(canonical_forms(plan).values())


def strict_match(gold: Plan, pred: Plan) -> bool:
    """Structure plus equal arguments; a plan with an argument count or type problem never matches."""
    return gold.valid and pred.valid and structure_match(gold, pred) and canonical_nodes(gold) == canonical_nodes(pred)
