"""Natural GaLore: a memory-saving drop-in replacement for AdamW."""
import torch

from .groups import build_param_groups
from .layerwise import LayerwiseOptimizer
from .natural import natural_gradient_transform
from .natural_galore import PROJECTION_DEFAULTS, NaturalGaLoreAdamW
from .sharded import ShardedNaturalGaLore

__all__ = ["LayerwiseOptimizer", "NaturalGaLoreAdamW", "PROJECTION_DEFAULTS", "ShardedNaturalGaLore",
           "build_param_groups", "fallback_counts", "natural_gradient_transform", "state_bytes"]


def _innermost(optimizer):
    while hasattr(optimizer, "optimizer") or hasattr(optimizer, "optim"):  # accelerate's, layer-wise, ZeRO's
        optimizer = getattr(optimizer, "optimizer", None) or optimizer.optim
    return optimizer


def fallback_counts(optimizer) -> dict | None:
    """How often a Natural GaLore optimizer (or a wrapper of one) fell back: natural-gradient solves that failed and
    used the plain projected gradient, updates skipped for non-finite gradients (this rank's, under DDP); None for
    other optimizers. A run whose transform mostly fell back was GaLore in effect, so summaries report it."""
    optimizer = _innermost(optimizer)
    if not isinstance(optimizer, NaturalGaLoreAdamW):
        return None
    return {"cholesky_fallbacks": optimizer.cholesky_fallbacks, "nonfinite_skips": optimizer.nonfinite_skips}


def state_bytes(optimizer) -> int:
    """Bytes of every tensor in an optimizer's state (any torch optimizer; a wrapper's inner one; the
    projector objects of galore-torch too): what the optimizer really holds, measured; a sharded optimizer's
    share on this rank."""
    optimizer = _innermost(optimizer)
    total = 0
    for st in optimizer.state.values():
        for v in st.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
            elif getattr(v, "ortho_matrix", None) is not None:
                mats = v.ortho_matrix if isinstance(v.ortho_matrix, (list, tuple)) else [v.ortho_matrix]
                total += sum(m.numel() * m.element_size() for m in mats)
    return total
