"""Logit distillation since Hinton: decoupled KD (Zhao et al. 2022) and DIST (Huang et al. 2022),
each the label cross-entropy plus its teacher term, against a teacher given as its logits (computed
once) or as itself (run on every batch). Logit standardisation (Sun et al. 2024) is the
``standardize`` knob of DKD here and of Hinton's KD (:func:`kdlab.methods.hinton.objective`)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdlab import _checks, losses
from kdlab.data import Tensors
from kdlab.methods.common import ModelOrFactory, Result, train_model
from kdlab.methods.hinton import Teacher, teacher_targets
from kdlab.train import Objective

# The authors warm DKD up over 20 of the CIFAR-100 benchmark's 240 epochs: by default, that fraction.
WARMUP_FRACTION = 20 / 240


def warmup_weight(step: int, warmup_steps: float) -> float:
    """DKD's warm-up: the teacher term weighted min((step + 1) / warmup_steps, 1) at the 0-based
    optimiser ``step``, a line from 0 to 1 over ``warmup_steps`` steps, then 1; 1 throughout when
    ``warmup_steps`` is 0. The authors' code draws the same line in steps of an epoch
    (min(epoch / 20, 1)); per step it also works when the warm-up is an epoch or less."""
    _checks.in_range("warmup_steps", warmup_steps, 0.0, math.inf)
    if warmup_steps == 0:
        return 1.0
    return min((step + 1) / warmup_steps, 1.0)


def warmup_steps(warmup_epochs: float | None, epochs: int, steps_per_epoch: int) -> float:
    """The warm-up in optimiser steps: ``warmup_epochs`` epochs of ``steps_per_epoch`` steps, or, when
    ``warmup_epochs`` is None, :data:`WARMUP_FRACTION` of the ``epochs`` (the paper's 20 of 240)."""
    _checks.at_least("epochs", epochs, 1)
    _checks.at_least("steps_per_epoch", steps_per_epoch, 1)
    if warmup_epochs is None:
        warmup_epochs = WARMUP_FRACTION * epochs
    _checks.in_range("warmup_epochs", warmup_epochs, 0.0, math.inf)
    return warmup_epochs * steps_per_epoch


def dkd_objective(
    temperature: float, tckd_weight: float, nckd_weight: float, *, warmup: float = 0.0,
    standardize: bool = False,
) -> Objective:
    """CE(y, p_s) + w * (alpha TCKD + beta NCKD) on batches ``(x, y, teacher_logits)`` (Zhao et al. 2022,
    eq. 7 and the authors' training code), w the warm-up weight over ``warmup`` steps
    (:func:`warmup_weight`); alpha and beta are ``tckd_weight`` and ``nckd_weight``
    (:func:`kdlab.losses.dkd_terms`).

    ``standardize`` z-scores both nets' logits before the decoupled term (Sun et al. 2024); the label
    term keeps the raw logits. The objective counts its own calls (one per step) for the warm-up, so
    a fresh objective is needed per run. Logs ``loss``, ``hard``, ``tckd``, ``nckd`` and the weight.
    """
    _checks.positive("temperature", temperature)
    _checks.in_range("tckd_weight", tckd_weight, 0.0, math.inf)
    _checks.in_range("nckd_weight", nckd_weight, 0.0, math.inf)
    _checks.in_range("warmup", warmup, 0.0, math.inf)
    step = 0

    def decoupled(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        nonlocal step
        x, y, teacher_logits = batch[:3]
        student_logits = model(x)
        weight = warmup_weight(step, warmup)
        step += 1
        pair = (student_logits, teacher_logits)
        if standardize:
            pair = (losses.standardize_logits(student_logits), losses.standardize_logits(teacher_logits))
        terms = losses.dkd_terms(*pair, y, temperature, tckd_weight, nckd_weight)
        hard = F.cross_entropy(student_logits.float(), y)
        return {"loss": hard + weight * terms["loss"], "hard": hard.detach(), "tckd": terms["tckd"].detach(),
                "nckd": terms["nckd"].detach(), "warmup": torch.tensor(weight)}

    return decoupled


def dist_objective(temperature: float, inter_weight: float, intra_weight: float) -> Objective:
    """CE(y, p_s) + beta * inter + gamma * intra on batches ``(x, y, teacher_logits)`` (Huang et al.
    2022, eq. 11 with the label term's weight 1; beta and gamma are ``inter_weight`` and
    ``intra_weight``, :func:`kdlab.losses.dist_terms`). Logs ``loss``, ``hard``, ``inter`` and
    ``intra``."""
    _checks.positive("temperature", temperature)
    _checks.in_range("inter_weight", inter_weight, 0.0, math.inf)
    _checks.in_range("intra_weight", intra_weight, 0.0, math.inf)

    def relations(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y, teacher_logits = batch[:3]
        student_logits = model(x)
        terms = losses.dist_terms(student_logits, teacher_logits, temperature, inter_weight, intra_weight)
        hard = F.cross_entropy(student_logits.float(), y)
        return {"loss": hard + terms["loss"], "hard": hard.detach(), "inter": terms["inter"].detach(),
                "intra": terms["intra"].detach()}

    return relations


def distill_dkd(
    student: ModelOrFactory,
    train: Tensors,
    teacher: Teacher,
    *,
    temperature: float = 4.0,
    tckd_weight: float = 1.0,
    nckd_weight: float = 8.0,
    warmup_epochs: float | None = None,
    standardize: bool = False,
    epochs: int,
    batch_size: int = 128,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Train ``student`` on ``train`` with DKD (:func:`dkd_objective`) against ``teacher``: its logits
    on ``train.x`` (n, classes), computed once, or the teacher module, run on every batch (required
    with ``augment``; :func:`kdlab.methods.hinton.teacher_targets`). The defaults are the CIFAR-100
    benchmark's: T = 4, ``tckd_weight`` 1, ``nckd_weight`` 8, and a warm-up over 1/12 of the epochs
    (:func:`warmup_steps`). ``fit_knobs``: ``lr``, ``seed``... as in
    :func:`kdlab.methods.common.train_model`."""
    _checks.at_least("batch_size", batch_size, 1)
    steps = warmup_steps(warmup_epochs, epochs, math.ceil(len(train) / batch_size))
    step_objective = dkd_objective(temperature, tckd_weight, nckd_weight, warmup=steps,
                                   standardize=standardize)
    data, step = teacher_targets(teacher, (train.x, train.y), step_objective,
                                 augment=fit_knobs.get("augment"))
    return train_model(student, data, step, test=test, epochs=epochs, batch_size=batch_size, cache=cache,
                       **fit_knobs)


def distill_dist(
    student: ModelOrFactory,
    train: Tensors,
    teacher: Teacher,
    *,
    temperature: float = 1.0,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Train ``student`` on ``train`` with DIST (:func:`dist_objective`) against ``teacher`` (its logits
    on ``train.x``, or the module itself; see :func:`distill_dkd`). ``fit_knobs`` as there."""
    step_objective = dist_objective(temperature, inter_weight, intra_weight)
    augment = fit_knobs.get("augment")
    data, step = teacher_targets(teacher, (train.x, train.y), step_objective, augment=augment)
    return train_model(student, data, step, test=test, cache=cache, **fit_knobs)
