"""Logit distillation since Hinton: decoupled KD (Zhao et al. 2022), logit standardisation (Sun et al.
2024) and DIST (Huang et al. 2022). Pure functions of the student's and teacher's logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab import _checks
from kdlab.losses.soft import _check_pair


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Sun et al. (2024), "Logit Standardization in Knowledge Distillation", eq. 8: each row z-scored,
    (z - mean(z)) / (std(z) + eps), before the tempered softmax.

    Hinton's loss asks the student to match the teacher's logits up to an additive constant, so a
    smaller student must also match the teacher's logit *range*; with standardised logits it
    matches only their relations (which class is how many standard deviations above the mean).
    Softmax of a z-score divided by a base temperature tau is the softmax at a per-example
    temperature tau * std(z). The standard deviation is the population one (1/K over the K
    classes), as the paper defines it; the authors' code uses the unbiased estimate, a factor
    sqrt(K / (K - 1)) that acts as a slightly lower temperature. A pre-step for any logit loss:
    ``soft_target_loss(standardize_logits(s), standardize_logits(t), 2.0)`` is their KD (the label
    cross-entropy keeps the raw logits).

    Shapes: (batch, classes) -> (batch, classes), float32; every row has mean 0 and std 1 (a
    constant row maps to zeros).
    """
    _checks.logits("logits", logits)
    _checks.positive("eps", eps)
    values = logits.float()
    mean = values.mean(dim=1, keepdim=True)
    std = values.std(dim=1, keepdim=True, unbiased=False)
    return (values - mean) / (std + eps)


def _binary_and_rest(logits: Tensor, labels: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Log-probabilities of (target, not target) at ``temperature``, shape (batch, 2), and of the
    non-target classes renormalised among themselves, shape (batch, classes) with the target's entry
    at -inf (its probability 0). Both in log space, so confident logits stay finite."""
    scaled = logits.float() / temperature
    target = F.one_hot(labels, scaled.shape[1]).bool()
    log_p = F.log_softmax(scaled, dim=1)
    log_target = log_p.gather(1, labels[:, None])
    log_rest = torch.logsumexp(log_p.masked_fill(target, float("-inf")), dim=1, keepdim=True)
    binary = torch.cat([log_target, log_rest], dim=1)
    others = F.log_softmax(scaled.masked_fill(target, float("-inf")), dim=1)
    return binary, others


def _kl_rows(target_log_p: Tensor, student_log_p: Tensor) -> Tensor:
    """KL(target || student) per row, from log-probabilities; entries where the target is 0 count 0."""
    absent = torch.isneginf(target_log_p)  # filled with 0 first, so no inf - inf reaches a gradient
    difference = target_log_p.masked_fill(absent, 0.0) - student_log_p.masked_fill(absent, 0.0)
    return (target_log_p.exp() * difference).sum(dim=1)


def dkd_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float,
    tckd_weight: float = 1.0,
    nckd_weight: float = 8.0,
) -> dict[str, Tensor]:
    """Zhao et al. (2022), "Decoupled Knowledge Distillation", eq. 7: alpha * TCKD + beta * NCKD.

    Split the tempered softmax of each example into the binary distribution b = (p_t, 1 - p_t) of
    its target class t against all others, and the distribution p~ of the non-target classes
    among themselves. Then TCKD = KL(b^teacher || b^student) and NCKD = KL(p~^teacher ||
    p~^student), and Hinton's KD is exactly TCKD + (1 - p_t^teacher) NCKD (the paper's eq. 5): KD
    weighs the non-target knowledge by how *unsure* the teacher is, so a confident teacher all but
    switches it off. DKD gives the two parts their own weights, the paper's alpha and beta, here
    ``tckd_weight`` and ``nckd_weight`` (in kdlab ``alpha`` is always Hinton's soft-target weight);
    the CIFAR-100 benchmark uses 1 and 8, or 6 for some pairs. Both terms carry T^2 like
    :func:`kdlab.losses.soft_target_loss`, summed over classes, averaged over the batch. The
    label cross-entropy is not included (DKD adds it with weight 1).

    Returns ``{"loss": tckd_weight * tckd + nckd_weight * nckd, "tckd", "nckd"}``.
    Shapes: (batch, classes), (batch, classes), (batch,) int64 -> scalars.
    """
    _check_pair(student_logits, teacher_logits)
    _checks.labels("labels", labels, student_logits.shape[0], student_logits.shape[1])
    if student_logits.shape[1] < 2:
        classes = student_logits.shape[1]
        raise ValueError(f"DKD needs at least 2 classes (a target and a non-target), got {classes}")
    _checks.positive("temperature", temperature)
    _checks.in_range("tckd_weight", tckd_weight, 0.0, float("inf"))
    _checks.in_range("nckd_weight", nckd_weight, 0.0, float("inf"))
    binary_s, others_s = _binary_and_rest(student_logits, labels, temperature)
    binary_t, others_t = _binary_and_rest(teacher_logits, labels, temperature)
    tckd = _kl_rows(binary_t, binary_s).mean() * temperature**2
    nckd = _kl_rows(others_t, others_s).mean() * temperature**2
    return {"loss": tckd_weight * tckd + nckd_weight * nckd, "tckd": tckd, "nckd": nckd}


def dkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float,
    tckd_weight: float = 1.0,
    nckd_weight: float = 8.0,
) -> Tensor:
    """alpha * TCKD + beta * NCKD (Zhao et al. 2022, eq. 7; alpha = ``tckd_weight``, beta =
    ``nckd_weight``); see :func:`dkd_terms`.

    Shapes: (batch, classes), (batch, classes), (batch,) int64 -> scalar.
    """
    return dkd_terms(student_logits, teacher_logits, labels, temperature, tckd_weight, nckd_weight)["loss"]


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """The Pearson correlation of each row of ``a`` with the same row of ``b``: the cosine of the
    mean-centred rows. Shapes: (n, m), (n, m) -> (n,)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
) -> dict[str, Tensor]:
    """Huang et al. (2022), "Knowledge Distillation from A Stronger Teacher" (DIST), eqs. 9-11:
    beta * inter + gamma * intra.

    With Y = softmax(Z / T) for each net (rows: examples, columns: classes), the *inter-class*
    relation term is T^2 * mean over examples of 1 - rho(Y_s[i, :], Y_t[i, :]), and the
    *intra-class* term T^2 * mean over classes of 1 - rho(Y_s[:, j], Y_t[:, j]), where rho is the
    Pearson correlation. Matching correlations instead of the distributions themselves (KL)
    leaves the student free in the scale and shift of its predictions, which the paper argues
    suits a student far weaker than its teacher; the intra-class term asks it to rank the batch's
    examples within each class as the teacher does. The paper's weights beta and gamma are
    ``inter_weight`` and ``intra_weight`` here (1 and 1 in its official loss; the label
    cross-entropy is not included).

    Returns ``{"loss": inter_weight * inter + intra_weight * intra, "inter", "intra"}``.
    Shapes: (batch, classes), (batch, classes) -> scalars; the intra-class term needs a batch of 2 or more.
    """
    _check_pair(student_logits, teacher_logits)
    _checks.positive("temperature", temperature)
    _checks.in_range("inter_weight", inter_weight, 0.0, float("inf"))
    _checks.in_range("intra_weight", intra_weight, 0.0, float("inf"))
    if student_logits.shape[0] < 2:
        raise ValueError(
            f"DIST's intra-class term correlates each class over the batch, so it needs a batch of at "
            f"least 2 examples, got {student_logits.shape[0]}"
        )
    y_s = F.softmax(student_logits.float() / temperature, dim=1)
    y_t = F.softmax(teacher_logits.float() / temperature, dim=1)
    inter = (1.0 - pearson_rows(y_s, y_t)).mean() * temperature**2
    intra = (1.0 - pearson_rows(y_s.T, y_t.T)).mean() * temperature**2
    return {"loss": inter_weight * inter + intra_weight * intra, "inter": inter, "intra": intra}


def dist_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
) -> Tensor:
    """The inter-class plus the intra-class relation loss, each with its weight (Huang et al. 2022's
    beta and gamma); see :func:`dist_terms`.

    Shapes: (batch, classes), (batch, classes) -> scalar.
    """
    return dist_terms(student_logits, teacher_logits, temperature, inter_weight, intra_weight)["loss"]

