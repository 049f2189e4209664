"""Pure loss functions of the source papers: no state, no training.

Each function's docstring names its paper, equation, normalisation and shapes.
"""

from kdlab.losses.features import fsp_distance, fsp_loss, fsp_matrix, hint_loss
from kdlab.losses.modern import dist_loss, dist_terms, dkd_loss, dkd_terms, standardize_logits
from kdlab.losses.mutual import mutual_loss, mutual_terms
from kdlab.losses.sequence import forward_kl, generalised_jsd, reverse_kl
from kdlab.losses.soft import (
    distillation_loss,
    distillation_terms,
    ensemble_logits,
    fitnets_kd_terms,
    logit_mse,
    soft_target_cross_entropy,
    soft_target_loss,
)
from kdlab.losses.tsne import conditional_p, tsne_loss, tsne_p, tsne_q

__all__ = [
    "soft_target_loss",
    "soft_target_cross_entropy",
    "ensemble_logits",
    "distillation_loss",
    "distillation_terms",
    "fitnets_kd_terms",
    "logit_mse",
    "dkd_loss",
    "dkd_terms",
    "dist_loss",
    "dist_terms",
    "standardize_logits",
    "forward_kl",
    "reverse_kl",
    "generalised_jsd",
    "hint_loss",
    "fsp_matrix",
    "fsp_loss",
    "fsp_distance",
    "mutual_loss",
    "mutual_terms",
    "conditional_p",
    "tsne_p",
    "tsne_q",
    "tsne_loss",
]
