"""Output-level distillation. Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural
Network": a student trained on the teacher's softened outputs (cached once) and the true labels;
Bucila et al. (2006) and Ba & Caruana (2014): a student that mimics the teacher's outputs on
unlabelled data; and the tools of Hinton's experiments (temperature sweeps, a transfer set with a
class left out, the bias fix)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import _checks, adapters, losses, metrics
from kdlab.augment import Augment
from kdlab.data import Tensors
from kdlab.losses import soft
from kdlab.methods.common import ModelOrFactory, Result, train_model
from kdlab.train import History, Objective

MIMIC_LOSSES = ("kl", "mse")
# A teacher as its logits on the training inputs (computed once), or as the module itself (run per batch).
Teacher = Tensor | nn.Module


def _check_rows(teacher_logits: Tensor, n: int) -> None:
    if teacher_logits.shape[0] != n:
        raise ValueError(
            f"teacher_logits must hold one row per training example ({n}), got {teacher_logits.shape[0]}"
        )


def objective(temperature: float, alpha: float, standardize: bool = False) -> Objective:
    """Minimise :func:`kdlab.losses.distillation_loss` on batches ``(x, y, teacher_logits)``.

    Logs the total ``loss`` and its parts ``soft`` (T^2 KL to the teacher) and ``hard`` (label
    cross-entropy), unweighted, and ``soft_cross_entropy``: the paper's T^2 H(p_t, p_s), which is
    ``soft`` plus the teacher's (constant) entropy, logged to show why it "barely decreases".
    ``standardize``: the soft term compares z-scored logits (:func:`kdlab.losses.standardize_logits`,
    Sun et al. 2024), ``temperature`` being their base temperature; the label term keeps the raw
    logits.
    """
    _checks.positive("temperature", temperature)
    _checks.in_range("alpha", alpha, 0.0, 1.0)

    def distillation(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y, teacher_logits = batch[:3]
        student_logits = model(x)
        if standardize:
            z_student, z_teacher = (losses.standardize_logits(z) for z in (student_logits, teacher_logits))
            soft_term = losses.soft_target_loss(z_student, z_teacher, temperature)
            hard = torch.nn.functional.cross_entropy(student_logits.float(), y)
            return {"loss": alpha * soft_term + (1 - alpha) * hard, "soft": soft_term.detach(),
                    "hard": hard.detach()}
        terms = losses.distillation_terms(student_logits, teacher_logits, y, temperature, alpha)
        cross_entropy = soft.soft_target_cross_entropy(student_logits.detach(), teacher_logits, temperature)
        return {"loss": terms["loss"], "soft": terms["soft"].detach(), "hard": terms["hard"].detach(),
                "soft_cross_entropy": cross_entropy}

    return distillation


def teacher_targets(
    teacher: Teacher, tensors: tuple[Tensor, ...], objective_: Objective, *, labels: bool = True,
    augment: Augment | None = None,
) -> tuple[tuple[Tensor, ...], Objective]:
    """The loader's tensors and the objective for a teacher given as its outputs or as itself.

    ``teacher`` is the teacher's logits on ``tensors[0]`` (n, classes), computed once
    (:func:`kdlab.cache.logits`) and batched with the data as its last tensor; or the teacher
    module, run on every batch in eval mode under ``torch.inference_mode()``
    (:func:`kdlab.adapters.with_teacher`): the only right choice when ``augment`` changes the
    inputs every epoch, so fixed logits with an active ``augment`` are an error.
    """
    if isinstance(teacher, nn.Module):
        classes = int(metrics.predict(teacher, tensors[0][:2]).shape[1])
        return tensors, adapters.with_teacher(teacher, objective_, classes, labels=labels)
    if augment is not None and augment.active:
        raise ValueError(
            "teacher logits computed once cannot be used with augment: the inputs change every epoch, so "
            "pass the teacher module itself (it then runs on every augmented batch)"
        )
    _check_rows(teacher, len(tensors[0]))
    return (*tensors, teacher.to(tensors[0].device)), objective_


def distill(
    student: ModelOrFactory,
    train: Tensors,
    teacher: Teacher,
    *,
    temperature: float,
    alpha: float,
    standardize: bool = False,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Train ``student`` (a factory, or a module whose copy is trained) on ``train`` with Hinton's loss
    against ``teacher``: its logits on ``train.x`` (n, classes), computed once
    (:func:`kdlab.cache.logits`), or the teacher module, run on every batch (required with
    ``augment``; see :func:`teacher_targets`). Returns ``(student, History)``. ``standardize``:
    the soft term on z-scored logits (Sun et al. 2024; see :func:`objective`).

    ``fit_knobs``: ``epochs``, ``lr``, ``batch_size``, ``seed``, ``optimizer``, ``schedule``,
    ``augment``, ``device``... as in :func:`kdlab.methods.common.train_model`.
    """
    data, step = teacher_targets(teacher, (train.x, train.y), objective(temperature, alpha, standardize),
                                 augment=fit_knobs.get("augment"))
    return train_model(student, data, step, test=test, cache=cache, **fit_knobs)


def mimic_objective(loss: str = "kl", temperature: float = 1.0) -> Objective:
    """Match the teacher's outputs alone, on batches ``(x, teacher_logits)``: no labels.

    ``loss="kl"``: :func:`kdlab.losses.soft_target_loss` at ``temperature`` (Hinton's soft
    targets with no hard term); ``loss="mse"``: :func:`kdlab.losses.logit_mse` (Ba & Caruana's
    logit regression; ``temperature`` plays no part).
    """
    _checks.choice("loss", loss, MIMIC_LOSSES)
    _checks.positive("temperature", temperature)

    def matching(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, teacher_logits = batch[:2]
        student_logits = model(x)
        if loss == "mse":
            return {"loss": losses.logit_mse(student_logits, teacher_logits)}
        return {"loss": losses.soft_target_loss(student_logits, teacher_logits, temperature)}

    return matching


def mimic(
    student: ModelOrFactory,
    x: Tensor,
    teacher: Teacher,
    *,
    loss: str = "kl",
    temperature: float = 1.0,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Train ``student`` on unlabelled inputs ``x`` (n, ...) and the teacher's outputs only (its logits
    (n, classes), or the teacher module run per batch, see :func:`teacher_targets`).

    Bucila et al. (2006) and Ba & Caruana (2014): the teacher labels a transfer set, the student
    never sees a true label (see :func:`mimic_objective` for ``loss``). ``fit_knobs`` as in
    :func:`distill`.
    """
    data, step = teacher_targets(teacher, (x,), mimic_objective(loss, temperature), labels=False,
                                 augment=fit_knobs.get("augment"))
    return train_model(student, data, step, test=test, cache=cache, **fit_knobs)


def sweep(
    student: ModelOrFactory,
    train: Tensors,
    teacher: Teacher,
    *,
    temperatures: Sequence[float],
    alphas: Sequence[float],
    seeds: int,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> dict[tuple[float, float], list[History]]:
    """:func:`distill` for every (temperature, alpha) pair and seeds 0..seeds-1: ``{(T, alpha): [History]}``.

    Source 001's lambda sweep crossed with Hinton's temperatures. Every knob is checked before the
    first run, so a bad value (a temperature of 0) fails at once, not after an hour of training.
    """
    temperatures, alphas = list(temperatures), list(alphas)
    if not temperatures or not alphas:
        raise ValueError(f"temperatures and alphas must not be empty, got {temperatures} and {alphas}")
    for k, temperature in enumerate(temperatures):
        _checks.positive(f"temperatures[{k}]", temperature)
    for k, alpha in enumerate(alphas):
        _checks.in_range(f"alphas[{k}]", alpha, 0.0, 1.0)
    _checks.at_least("seeds", seeds, 1)
    return {
        (temperature, alpha): [
            distill(
                student, train, teacher, temperature=temperature, alpha=alpha, test=test,
                cache=cache, seed=seed, desc=f"T={temperature:g}, alpha={alpha:g}, seed {seed}", **fit_knobs,
            )[1]
            for seed in range(seeds)
        ]
        for temperature in temperatures
        for alpha in alphas
    }


def without_classes(train: Tensors, teacher_logits: Tensor, classes: Sequence[int]) -> tuple[Tensors, Tensor]:
    """The transfer set with every example of ``classes`` removed, and the matching teacher rows.

    Hinton et al. (2015), sec. 3: a student distilled on MNIST with no 3 in its transfer set.
    Shapes: n examples, (n, C) -> m examples, (m, C), m = the examples kept.
    """
    _check_rows(teacher_logits, len(train))
    for cls in classes:
        _checks.in_range("classes", cls, 0, teacher_logits.shape[1] - 1)
    keep = ~torch.isin(train.y, torch.as_tensor(list(classes), dtype=train.y.dtype, device=train.y.device))
    if not bool(keep.any()):
        raise ValueError(
            f"the transfer set is empty after removing classes {list(classes)}: every example was one of them"
        )
    return Tensors(train.x[keep], train.y[keep]), teacher_logits[keep.to(teacher_logits.device)]


def raise_bias(logits: Tensor, cls: int, amount: float) -> Tensor:
    """``logits`` with ``amount`` added to column ``cls``: the effect of raising that class's output bias.

    Hinton et al. (2015), sec. 3 raise the bias of the never-seen 3 (by 3.5) after distillation. The
    bias of the logit layer enters every example's logit for that class unchanged, so shifting the
    column is the same as editing the model. Shapes: (n, C) -> (n, C).
    """
    _checks.logits("logits", logits)
    _checks.in_range("cls", cls, 0, logits.shape[1] - 1)
    shifted = logits.clone()
    shifted[:, cls] += amount
    return shifted


def best_bias(logits: Tensor, labels: Tensor, cls: int, amounts: Sequence[float]) -> float:
    """The amount of ``amounts`` for :func:`raise_bias` that makes the fewest errors on ``(logits, labels)``.

    Pick it on held-out labelled data, never on the test set; ties go to the smallest amount
    (the least change to the model). Shapes: (n, C), (n,) -> float.
    """
    amounts = list(amounts)
    if not amounts:
        raise ValueError("amounts must hold at least one candidate bias, got none")
    errors = [metrics.error_count(raise_bias(logits, cls, amount), labels) for amount in amounts]
    best = min(range(len(amounts)), key=lambda k: (errors[k], amounts[k]))
    return float(amounts[best])
