"""Pure loss functions of the source papers: no state, no training.

Each function's docstring names its paper, equation, normalisation and shapes.
"""

from kdlab.losses.features import fsp_loss, fsp_matrix, hint_loss
from kdlab.losses.soft import distillation_loss, distillation_terms, logit_mse, soft_target_loss

__all__ = [
    "soft_target_loss", "distillation_loss", "distillation_terms", "logit_mse", "hint_loss", "fsp_matrix",
    "fsp_loss",
]
