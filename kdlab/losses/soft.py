"""Output-level distillation: soft targets (Hinton et al. 2015) and logit regression (Ba & Caruana 2014)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab import _checks


def _check_pair(student_logits: Tensor, teacher_logits: Tensor) -> None:
    _checks.logits("student_logits", student_logits)
    _checks.logits("teacher_logits", teacher_logits)
    _checks.same_shape("student_logits", student_logits, "teacher_logits", teacher_logits)


def soft_target_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton et al. (2015), sec. 2: T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), batch mean.

    The KL divergence, not the cross-entropy H(p_t, p_s): the two differ by the teacher's entropy, a
    constant for the student, so they have the same gradient, but only the KL goes to zero when the
    student matches the teacher (the "barely decreasing" cross-entropy of source 001). The T^2 factor
    keeps the gradient's scale independent of T (the soft gradients scale as 1/T^2), so the soft and
    hard terms can be mixed with one weight. Summed over classes, averaged over the batch (the
    "batchmean" convention: the per-example KL, as in the paper, not a mean over classes).
    The teacher's logits are a target: pass them detached (or from a cache).

    Shapes: (batch, classes), (batch, classes) -> scalar.
    """
    _check_pair(student_logits, teacher_logits)
    _checks.positive("temperature", temperature)
    # log_softmax on both sides keeps logits of magnitude 1e4 finite at any temperature.
    teacher_log_p = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return tempered_kl(student_logits, teacher_log_p, temperature)


def tempered_kl(student_logits: Tensor, target_log_probs: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(q || softmax(z_s / T)), batch mean, for a target q given as log-probabilities.

    The sum behind :func:`soft_target_loss` (where q is the teacher's softened distribution) and
    behind the ensemble variant of :func:`kdlab.losses.mutual_loss` (where q is the mean of the
    peers' distributions, which no logits produce directly). No argument checks: its callers check.

    Shapes: (batch, classes), (batch, classes) -> scalar.
    """
    student_log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    kl = F.kl_div(student_log_p, target_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2


def distillation_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float,
    alpha: float,
) -> dict[str, Tensor]:
    """The two terms of Hinton's objective and their weighted sum, for logging each.

    Returns ``{"loss": alpha * soft + (1 - alpha) * hard, "soft": soft_target_loss(...),
    "hard": cross_entropy(student_logits, labels)}``; see :func:`distillation_loss`.
    """
    _check_pair(student_logits, teacher_logits)
    _checks.labels("labels", labels, student_logits.shape[0], student_logits.shape[1])
    _checks.in_range("alpha", alpha, 0.0, 1.0)
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits.float(), labels)
    return {"loss": alpha * soft + (1.0 - alpha) * hard, "soft": soft, "hard": hard}


def fitnets_kd_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float,
    weight: float,
) -> dict[str, Tensor]:
    """Romero et al. (2015), eq. 2 (FitNets' stage 2, as the paper and its code write it):
    H(y, P_S) + weight * H(P_T^tau, P_S^tau).

    The label cross-entropy at temperature 1 plus ``weight`` (the paper's lambda, annealed from 4
    in its experiments) times the cross-entropy with the teacher's softened outputs at
    ``temperature`` (tau = 3 there), with *no* tau^2 factor and weight 1 on the labels. This is not
    Hinton's weighted average (:func:`distillation_terms`): the soft term here is a cross-entropy
    (the KL plus the teacher's constant entropy) divided by tau^2 relative to Hinton's, and the
    labels keep their full weight. Both terms are batch means.

    Returns ``{"loss": hard + weight * soft, "soft": H(P_T^tau, P_S^tau), "hard": CE(y, P_S)}``.
    Shapes: (batch, classes), (batch, classes), (batch,) int64 -> scalars.
    """
    _check_pair(student_logits, teacher_logits)
    _checks.labels("labels", labels, student_logits.shape[0], student_logits.shape[1])
    _checks.in_range("weight", weight, 0.0, math.inf)
    soft = soft_target_cross_entropy(student_logits, teacher_logits, temperature) / temperature**2
    hard = F.cross_entropy(student_logits.float(), labels)
    return {"loss": hard + weight * soft, "soft": soft, "hard": hard}


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float,
    alpha: float,
) -> Tensor:
    """Hinton et al. (2015), sec. 2: alpha * T^2 KL(p_t^T || p_s^T) + (1 - alpha) * CE(y, p_s^1).

    A weighted average of the soft-target loss at temperature T (see :func:`soft_target_loss`)
    and the cross-entropy with the true labels at temperature 1; the paper puts "a considerably
    lower weight" on the hard term, i.e. alpha close to 1. Both terms are batch means.

    Shapes: (batch, classes), (batch, classes), (batch,) int64 -> scalar.
    """
    return distillation_terms(student_logits, teacher_logits, labels, temperature, alpha)["loss"]


def logit_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Ba & Caruana (2014), eq. 1: 1/2 ||z_s - z_t||^2 on the logits, batch mean.

    Regression on the teacher's pre-softmax values: summed over classes, averaged over the
    batch (the paper's 1/(2T) sum_t over T training cases). Hinton et al. show that the soft-target
    gradient tends to (z_s - z_t) / C as T grows, for zero-mean logits: logit matching is the
    high-temperature limit of distillation (up to a constant factor).

    Shapes: (batch, classes), (batch, classes) -> scalar.
    """
    _check_pair(student_logits, teacher_logits)
    return 0.5 * (student_logits.float() - teacher_logits.float()).pow(2).sum(dim=1).mean()


def soft_target_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton et al. (2015), sec. 2, as written: T^2 * H(softmax(z_t / T), softmax(z_s / T)), batch mean.

    The cross-entropy with the soft targets, -sum_i p_i log q_i. It equals :func:`soft_target_loss`
    plus T^2 times the teacher's entropy H(p_t), which does not depend on the student: the same
    gradient, but a floor of T^2 H(p_t) instead of zero. At high T the teacher's distribution is
    nearly uniform, so that floor is close to T^2 log(classes) and the loss "barely decreases"
    (source 001) even while the KL goes to zero. Summed over classes, averaged over the batch.

    Shapes: (batch, classes), (batch, classes) -> scalar.
    """
    _check_pair(student_logits, teacher_logits)
    _checks.positive("temperature", temperature)
    student_log_q = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher_p = F.softmax(teacher_logits.float() / temperature, dim=1)
    return -(teacher_p * student_log_q).sum(dim=1).mean() * temperature**2


COMBINES = ("probabilities", "logits")


def ensemble_logits(
    member_logits: Sequence[Tensor], combine: str = "probabilities", temperature: float = 1.0
) -> Tensor:
    """One teacher from several: the logits of an ensemble of ``member_logits`` (Hinton et al. 2015, sec. 1).

    ``"probabilities"``: the arithmetic mean of the members' softmaxes at ``temperature``, returned
    as logits ``T * log(mean_k softmax(z_k / T))``, so that ``softmax(logits / T)`` is exactly that
    mean (Hinton's ensemble soft targets; Bucila et al. 2006 label data by an ensemble's average
    vote). ``"logits"``: the mean of the logits, i.e. the normalised geometric mean of the
    probabilities (Ba & Caruana 2014 regress on logits). Every member gets weight 1/K.

    Shapes: K tensors of (n, classes) -> (n, classes).
    """
    members = list(member_logits)
    if not members:
        raise ValueError("member_logits must hold at least one tensor of logits, got none")
    _checks.choice("combine", combine, COMBINES)
    _checks.positive("temperature", temperature)
    for k, logits in enumerate(members):
        _checks.logits(f"member_logits[{k}]", logits)
        if logits.shape[1] != members[0].shape[1]:
            raise ValueError(
                f"ensemble members must have the same number of classes: member_logits[0] has "
                f"{members[0].shape[1]}, member_logits[{k}] has {logits.shape[1]}"
            )
        _checks.same_shape("member_logits[0]", members[0], f"member_logits[{k}]", logits)
    stacked = torch.stack([logits.float() for logits in members])
    if combine == "logits":
        return stacked.mean(dim=0)
    # log(mean(softmax)) through logsumexp, so confident members (probabilities of 1e-30) stay finite.
    log_p = F.log_softmax(stacked / temperature, dim=2)
    return (torch.logsumexp(log_p, dim=0) - math.log(len(members))) * temperature
