"""Natural GaLore: a memory-saving drop-in replacement for AdamW."""
import torch

from .groups import build_param_groups
from .layerwise import LayerwiseOptimizer
from .natural import natural_gradient_transform
from .natural_galore import PROJECTION_DEFAULTS, NaturalGaLoreAdamW

__all__ = ["LayerwiseOptimizer", "NaturalGaLoreAdamW", "PROJECTION_DEFAULTS", "build_param_groups",
           "natural_gradient_transform", "state_bytes"]


def state_bytes(optimizer) -> int:
    """Bytes of every tensor in an optimizer's state (any torch optimizer; a wrapper's inner one; the
    projector objects of galore-torch too): what the optimizer really holds, measured."""
    while hasattr(optimizer, "optimizer"):  # accelerate's and the layer-wise wrappers
        optimizer = optimizer.optimizer
    total = 0
    for st in optimizer.state.values():
        for v in st.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
            elif getattr(v, "ortho_matrix", None) is not None:
                mats = v.ortho_matrix if isinstance(v.ortho_matrix, (list, tuple)) else [v.ortho_matrix]
                total += sum(m.numel() * m.element_size() for m in mats)
    return total
