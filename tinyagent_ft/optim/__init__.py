"""Natural GaLore: a memory-saving drop-in replacement for AdamW."""
from .groups import build_param_groups
from .layerwise import LayerwiseOptimizer
from .natural import natural_gradient_transform
from .natural_galore import PROJECTION_DEFAULTS, NaturalGaLoreAdamW

__all__ = ["LayerwiseOptimizer", "NaturalGaLoreAdamW", "PROJECTION_DEFAULTS", "build_param_groups",
           "natural_gradient_transform"]
