"""Deep Mutual Learning (Zhang, Xiang, Hospedales & Lu, CVPR 2018): each student of a cohort learns
from the labels and from the predictions of its peers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab import _checks
from kdlab.losses.soft import soft_target_loss, tempered_kl


def _check_peers(student_logits: Tensor, peer_logits: Sequence[Tensor]) -> list[Tensor]:
    _checks.logits("student_logits", student_logits)
    if isinstance(peer_logits, Tensor):
        raise TypeError(
            "peer_logits must be a sequence of (batch, classes) tensors, one per peer; got one tensor"
        )
    peers = list(peer_logits)
    if not peers:
        raise ValueError("peer_logits must hold at least one peer (a cohort has K >= 2 students), got none")
    for k, peer in enumerate(peers):
        _checks.logits(f"peer_logits[{k}]", peer)
        if peer.shape[1] != student_logits.shape[1]:
            raise ValueError(
                f"every student of a cohort must predict the same classes: peer_logits[{k}] has "
                f"{peer.shape[1]} classes, student_logits has {student_logits.shape[1]}"
            )
        _checks.same_shape("student_logits", student_logits, f"peer_logits[{k}]", peer)
    return peers


def mutual_terms(
    student_logits: Tensor,
    peer_logits: Sequence[Tensor],
    labels: Tensor,
    *,
    temperature: float = 1.0,
    ensemble: bool = False,
) -> dict[str, Tensor]:
    """The two terms of student k's DML loss and their sum: ``{"loss": ce + kl, "ce": ..., "kl": ...}``.

    ``ce`` is the cross-entropy with ``labels`` (eq. 2 of the paper), ``kl`` the mimicry term; see
    :func:`mutual_loss` for both, their normalisation and the shapes.
    """
    peers = _check_peers(student_logits, peer_logits)
    _checks.labels("labels", labels, student_logits.shape[0], student_logits.shape[1])
    _checks.positive("temperature", temperature)
    # A peer's prediction is a target: L_k is minimised over student k's parameters only.
    peers = [peer.detach().float() for peer in peers]
    if ensemble:
        # log of the mean of the peers' probabilities, computed in log space (log-sum-exp).
        log_p = torch.stack([F.log_softmax(peer / temperature, dim=1) for peer in peers])
        target_log_p = torch.logsumexp(log_p, dim=0) - math.log(len(peers))
        kl = tempered_kl(student_logits, target_log_p, temperature)
    else:
        kl = sum(soft_target_loss(student_logits, peer, temperature) for peer in peers) / len(peers)
    ce = F.cross_entropy(student_logits.float(), labels)
    return {"loss": ce + kl, "ce": ce, "kl": kl}


def mutual_loss(
    student_logits: Tensor,
    peer_logits: Sequence[Tensor],
    labels: Tensor,
    *,
    temperature: float = 1.0,
    ensemble: bool = False,
) -> Tensor:
    """Zhang et al. (2018), eq. 10: L_k = L_C(k) + 1/(K-1) sum_{l != k} KL(p_l || p_k), batch mean.

    Student k's loss in a cohort of K: the cross-entropy with the labels plus the mean, over the
    K - 1 peers l, of the KL divergence from peer l's predicted distribution p_l to the student's
    p_k (for K = 2, eq. 6: L_C(1) + KL(p_2 || p_1)). ``ensemble=True`` is the paper's variant of
    eq. 11 (DML_e): one KL from the mean of the peers' probabilities,
    KL(1/(K-1) sum_l p_l || p_k). The two coincide for K = 2.

    The peers' logits are detached here: in the paper L_k is minimised over student k's
    parameters only, the peers' predictions being targets. The paper uses T = 1; with
    ``temperature`` T the KL is taken between softmax(z / T) and scaled by T^2 as in
    :func:`kdlab.losses.soft.soft_target_loss`.

    Normalisation: each term summed over classes and averaged over the batch (``batchmean``),
    as kdlab's other output losses. The paper's equations and source 004 ("loss functions do not
    use a size average") sum over the N examples instead; that multiplies the whole loss by N,
    which Adam's updates ignore (up to its epsilon) and which for SGD only rescales the
    learning rate, while the batch mean keeps the rate independent of the batch size.

    Shapes: ``student_logits`` (batch, classes); ``peer_logits`` a sequence of K - 1 >= 1 tensors
    of that shape; ``labels`` (batch,) integer classes -> scalar.
    """
    terms = mutual_terms(student_logits, peer_logits, labels, temperature=temperature, ensemble=ensemble)
    return terms["loss"]
