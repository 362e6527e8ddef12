"""Parameter groups from a model: project the 2-D weights of attention and MLP linear layers."""
from __future__ import annotations

import re

from torch import nn

DEFAULT_TARGETS = (r"(q|k|v|o)_proj$", r"(gate|up|down)_proj$", r"(attn|attention|mlp)\.")


def build_param_groups(model: nn.Module, rank: int, targets=DEFAULT_TARGETS, **projection) -> list[dict]:
    """[projected group, AdamW group]. ``targets`` are regexes searched in Linear module names; a
    pattern that matches no Linear weight is one clear error, never a flood of warnings."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    compiled = [re.compile(t) for t in targets]
    unmatched = [t.pattern for t in compiled if not any(t.search(n) for n in linears)]
    if len(unmatched) == len(compiled):
        sample = ", ".join(list(linears)[:5]) or "none"
        raise ValueError(f"target patterns {unmatched} matched no nn.Linear module (Linear modules here: {sample}, ...)")
    chosen = {id(m.weight) for n, m in linears.items() if any(t.search(n) for t in compiled)}
    projected, rest, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))  # tied weights appear once
        (projected if id(p) in chosen and p.dim() == 2 else rest).append(p)
    groups = [{"params": projected, "rank": rank, **projection}]
    if rest:
        groups.append({"params": rest})
    return groups
