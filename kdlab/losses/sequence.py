"""Per-token divergences between a teacher's and a student's next-token distributions, for
distilling language models: forward KL (word-level KD), reverse KL (MiniLLM) and the generalised
Jensen-Shannon divergence (GKD).

Every function takes logits of shape (batch, length, vocab), compares the two distributions at
each position, sums over the vocabulary and averages over the positions that ``mask`` (batch,
length) keeps (all of them by default): a mean per token, in nats, comparable with a next-token
cross-entropy. Distributions are softmax(logits / temperature) and the result is multiplied by
temperature^2, as :func:`kdlab.losses.soft_target_loss` does (Hinton et al.'s gradient scale; at
the usual temperature 1 nothing changes). The teacher's logits are a target: they are detached.
Everything is computed from log-softmaxes (a log-sum-exp for the mixture), in float32 or wider.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab import _checks


def _log_probs(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Checked arguments as log q (student) and log p (teacher), (batch, length, vocab)."""
    _checks.float_tensor("student_logits", student_logits, "(batch, length, vocab)", 3, 3)
    _checks.float_tensor("teacher_logits", teacher_logits, "(batch, length, vocab)", 3, 3)
    _checks.same_shape("student_logits", student_logits, "teacher_logits", teacher_logits)
    _checks.positive("temperature", temperature)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True: the position counts), got dtype {mask.dtype}")
        if mask.shape != student_logits.shape[:2]:
            expected = tuple(student_logits.shape[:2])
            raise ValueError(f"mask must have shape (batch, length) = {expected}, got {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("mask must keep at least one position, got none (the mean would be 0/0)")
    # float32 at least (half precision is promoted; float64 stays).
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    student_log_q = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=-1)
    return student_log_q, teacher_log_p


def _kl(log_a: Tensor, log_b: Tensor) -> Tensor:
    """KL(a || b) = sum_v a_v (log a_v - log b_v) at every position: (batch, length)."""
    return F.kl_div(log_b, log_a, reduction="none", log_target=True).sum(dim=-1)


def _token_mean(per_token: Tensor, mask: Tensor | None, temperature: float) -> Tensor:
    kept = per_token if mask is None else per_token[mask]
    return kept.mean() * temperature**2


def forward_kl(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    """Word-level KD: T^2 * KL(p_teacher || q_student) per token, mean over the kept tokens.

    Kim & Rush (2016), sec. 3.1 (word-level knowledge distillation): the cross-entropy with the
    teacher's distribution at every position, -sum_v p(v) log q(v), here as the KL divergence
    (that cross-entropy minus the teacher's entropy, a constant for the student: the same
    gradient, and 0 when the student matches). It is Hinton et al.'s soft-target loss applied to
    each token. Kim & Rush sum it over a sentence's words; kdlab averages over tokens (see the
    module). The student must cover every character the teacher gives mass to ("mode covering").

    Shapes: (batch, length, vocab), (batch, length, vocab), mask (batch, length) bool -> scalar.
    """
    log_q, log_p = _log_probs(student_logits, teacher_logits, temperature, mask)
    return _token_mean(_kl(log_p, log_q), mask, temperature)


def reverse_kl(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    """T^2 * KL(q_student || p_teacher) per token, mean over the kept tokens.

    The reverse KL that MiniLLM (Gu et al. 2024, sec. 2.1) minimises: sum_v q(v) (log q(v) - log p(v)),
    large where the student puts mass the teacher does not, so the student may drop some of the
    teacher's modes but must not invent any ("mode seeking"). MiniLLM minimises it over whole
    sequences sampled from the student, by policy gradient; this is the per-token term at given
    prefixes (MiniLLM's "single-step" part, computed exactly over the vocabulary), which a recipe
    applies to the data's prefixes or the student's own.

    Shapes: (batch, length, vocab), (batch, length, vocab), mask (batch, length) bool -> scalar.
    """
    log_q, log_p = _log_probs(student_logits, teacher_logits, temperature, mask)
    return _token_mean(_kl(log_q, log_p), mask, temperature)


def generalised_jsd(
    student_logits: Tensor,
    teacher_logits: Tensor,
    beta: float,
    temperature: float = 1.0,
    mask: Tensor | None = None,
) -> Tensor:
    """T^2 * JSD(beta) per token, mean over the kept tokens.

    Agarwal et al. (ICLR 2024, GKD), eq. 1, with P the teacher and Q the student:
    JSD(beta)(P || Q) = beta KL(P || M) + (1 - beta) KL(Q || M), with M = beta P + (1 - beta) Q
    (log M through a log-sum-exp). It is symmetric under swapping P and Q together with beta and
    1 - beta, at most -beta log beta - (1 - beta) log(1 - beta) (log 2 at beta = 1/2, the usual JSD),
    and it vanishes at both ends: at beta = 0 and beta = 1 it is exactly 0 for any P and Q, and
    so is its gradient. Near the ends it tends to the KLs: JSD(beta) / beta -> KL(P || Q), the forward
    KL (:func:`forward_kl`), as beta -> 0, and JSD(beta) / (1 - beta) -> KL(Q || P), the reverse KL
    (:func:`reverse_kl`), as beta -> 1. This function follows the paper's definition, ends
    included; GKD's code (and TRL's ``generalized_jsd_loss``) instead returns the forward KL at
    beta = 0 and the reverse KL at beta = 1, which is what :func:`kdlab.methods.language.divergence`
    does for a recipe's ``beta``.

    Shapes: (batch, length, vocab), (batch, length, vocab), mask (batch, length) bool -> scalar.
    """
    _checks.in_range("beta", beta, 0.0, 1.0)
    log_q, log_p = _log_probs(student_logits, teacher_logits, temperature, mask)
    # log M = log(beta P + (1 - beta) Q), a log-sum-exp over the parts of positive weight.
    parts = [log + math.log(weight) for log, weight in ((log_p, beta), (log_q, 1.0 - beta)) if weight > 0]
    log_m = torch.logsumexp(torch.stack(parts), dim=0)
    per_token = beta * _kl(log_p, log_m) + (1.0 - beta) * _kl(log_q, log_m)
    return _token_mean(per_token, mask, temperature)
