"""Natural GaLore: a memory-saving drop-in replacement for AdamW."""
import torch

from .groups import build_param_groups
from .layerwise import LayerwiseOptimizer
from .natural import natural_gradient_transform
from .natural_galore import PROJECTION_DEFAULTS, NaturalGaLoreAdamW
from .sharded import ShardedNaturalGaLore

__all__ = ["LayerwiseOptimizer", "NaturalGaLoreAdamW", "PROJECTION_DEFAULTS", "ShardedNaturalGaLore",
           "build_param_groups", "natural_gradient_transform", "state_bytes"]


def state_bytes(optimizer) -> int:
    """Bytes of every tensor in an optimizer's state (any torch optimizer; a wrapper's inner one; the
    projector objects of galore-torch too): what the optimizer really holds, measured; a sharded optimizer's
    share on this rank."""
    while hasattr(optimizer, "optimizer") or hasattr(optimizer, "optim"):  # accelerate's, layer-wise, ZeRO's
        optimizer = getattr(optimizer, "optimizer", None) or optimizer.optim
    total = 0
    for st in optimizer.state.values():
        for v in st.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
            elif getattr(v, "ortho_matrix", None) is not None:
                mats = v.ortho_matrix if isinstance(v.ortho_matrix, (list, tuple)) else [v.ortho_matrix]
                total += sum(m.numel() * m.element_size() for m in mats)
    return total
