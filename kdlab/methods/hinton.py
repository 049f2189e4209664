"""Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network": a student
trained on the teacher's softened outputs (cached once) and the true labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from kdlab import _checks, losses
from kdlab.data import Tensors
from kdlab.methods.common import train_model
from kdlab.train import History, Objective


def objective(temperature: float, alpha: float) -> Objective:
    """Minimise :func:`kdlab.losses.distillation_loss` on batches ``(x, y, teacher_logits)``.

    Logs the total ``loss`` and its parts ``soft`` (T^2 KL to the teacher) and ``hard`` (label
    cross-entropy), unweighted.
    """
    _checks.positive("temperature", temperature)
    _checks.in_range("alpha", alpha, 0.0, 1.0)

    def distillation(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y, teacher_logits = batch[:3]
        terms = losses.distillation_terms(model(x), teacher_logits, y, temperature, alpha)
        return {"loss": terms["loss"], "soft": terms["soft"].detach(), "hard": terms["hard"].detach()}

    return distillation


def distill(
    make_student: Callable[[], nn.Module],
    train: Tensors,
    teacher_logits: Tensor,
    *,
    temperature: float,
    alpha: float,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> tuple[nn.Module, History]:
    """Train a fresh student on ``train`` with Hinton's loss against ``teacher_logits``.

    ``teacher_logits`` (n, classes) are the teacher's outputs on ``train.x``, computed once
    (:func:`kdlab.cache.logits`). ``fit_knobs``: ``epochs``, ``lr``, ``batch_size``, ``seed``,
    ``optimizer``, ``schedule``, ``device``... as in :func:`kdlab.methods.common.train_model`.
    """
    if teacher_logits.shape[0] != len(train):
        raise ValueError(
            f"teacher_logits must hold one row per training example ({len(train)}), got {teacher_logits.shape[0]}"
        )
    parts = {"method": "hinton", "temperature": temperature, "alpha": alpha} if cache else None
    return train_model(
        make_student, (train.x, train.y, teacher_logits.to(train.x.device)), objective(temperature, alpha),
        test=test, cache_parts=parts, **fit_knobs,
    )
