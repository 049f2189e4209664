"""Romero et al. (2015), "FitNets: Hints for Thin Deep Nets": a thin, deep student whose lower
half first learns to predict a teacher's middle layer (the *hint*), then the whole student is
trained with knowledge distillation whose soft-target weight decays linearly.

Words, as in the paper: the teacher's *hint* layer guides the student's *guided* layer, through a
*regressor* r on top of the guided layer (:func:`kdlab.models.regressor`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import _checks, features, losses, models, runtime
from kdlab import cache as kd_cache
from kdlab.data import TensorLoader, Tensors
from kdlab.methods.common import ModelOrFactory, Plan, Result, as_factory, recipe, train_model
from kdlab.methods.hinton import Teacher, teacher_targets
from kdlab.train import History, Objective, fit

REGRESSORS = ("conv", "fc")


class _Reached(Exception):
    """Raised by a forward hook to stop a forward pass once the wanted layer has run."""


def features_until(model: nn.Module, name: str, x: Tensor) -> Tensor:
    """The output of layer ``name`` on ``x``, stopping the forward pass there.

    The layers after ``name`` cannot change it, so they are not run (the hint stage trains only
    the part of the student below the guided layer). Shapes: (batch, ...) -> the layer's output.
    """
    features.check_layers(model, name, "layer")
    found: dict[str, Tensor] = {}

    def stop(_module: nn.Module, _inputs: tuple, output: Tensor) -> None:
        found["features"] = output
        raise _Reached

    handle = model.get_submodule(name).register_forward_hook(stop)
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    if "features" not in found:
        raise RuntimeError(f"layer {name!r} did not run in the model's forward pass")
    return found["features"]


def guided_parameters(student: nn.Module, guided: str, example: Tensor) -> list[nn.Parameter]:
    """The student's parameters that the guided layer depends on ("up to the guided layer").

    Found by differentiating the guided layer's output on ``example`` (a small batch), so it
    works for any architecture, nested modules included; the order is ``student.parameters()``'s.
    """
    features.check_layers(student, guided, "guided layer")
    params = [p for p in student.parameters() if p.requires_grad]
    was_training = student.training
    student.eval()  # no batch-norm statistics move during the probe
    try:
        out = features_until(student, guided, example)
        grads = torch.autograd.grad(out.float().sum(), params, allow_unused=True)
    finally:
        student.train(was_training)
    return [p for p, g in zip(params, grads, strict=True) if g is not None]


def feature_shape(model: nn.Module, name: str, example: Tensor) -> tuple[int, ...]:
    """The shape, without the batch, of layer ``name``'s output on ``example``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return tuple(features_until(model, name, example).shape[1:])
    finally:
        model.train(was_training)


def make_regressor(
    student: nn.Module, teacher: nn.Module, *, hint: str, guided: str, example: Tensor,
    kind: str = "conv", relu: bool = True,
) -> nn.Module:
    """Romero et al. (2015), sec. 3.1: a regressor from the student's guided layer to the hint's shape.

    ``kind="conv"``: the paper's convolutional regressor when both layers are maps (c, h, w) and
    the guided map is at least as large (:func:`kdlab.models.regressor`; it falls back to a fully
    connected one otherwise); ``kind="fc"``: always fully connected, to compare parameter
    counts. ``relu=True`` gives r the ReLU that ends the hint layers used in the book.
    """
    return models.regressor(*_regressor_shapes(student, teacher, hint, guided, example, kind), relu=relu)


def regressor_size(
    student: nn.Module, teacher: nn.Module, *, hint: str, guided: str, example: Tensor, kind: str = "conv"
) -> int:
    """The parameter count of :func:`make_regressor`'s regressor, built on the meta device: nothing is
    allocated (a fully connected regressor between two 128x16x16 maps has a billion weights)."""
    shapes = _regressor_shapes(student, teacher, hint, guided, example, kind)
    with torch.device("meta"):
        return sum(p.numel() for p in models.regressor(*shapes).parameters())


def _regressor_shapes(
    student: nn.Module, teacher: nn.Module, hint: str, guided: str, example: Tensor, kind: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The regressor's input shape (the guided layer's, flattened for ``kind="fc"``) and output shape."""
    _checks.choice("kind", kind, REGRESSORS)
    features.check_layers(teacher, hint, "hint layer")
    features.check_layers(student, guided, "guided layer")
    student_shape = feature_shape(student, guided, example)
    teacher_shape = feature_shape(teacher, hint, example)
    if kind == "fc":
        student_shape = (math.prod(student_shape),)
    return student_shape, teacher_shape


def hint_features(teacher: nn.Module, x: Tensor, hint: str, batch_size: int = 1000) -> Tensor:
    """The teacher's hint u_h(x) on every row of ``x`` (eval mode), computed once and cached
    when the teacher came from the cache. Shapes: (n, ...) -> (n, *hint shape), on ``x``'s device."""
    features.check_layers(teacher, hint, "hint layer")

    def compute() -> Tensor:
        was_training = teacher.training
        teacher.eval()
        try:
            with torch.no_grad():
                chunks = x.split(batch_size)
                return torch.cat([features_until(teacher, hint, chunk).float() for chunk in chunks])
        finally:
            teacher.train(was_training)

    model_key = kd_cache.key_of(teacher)
    if model_key is None:
        return compute().to(x.device)
    value = kd_cache.tensor("fitnets-hint", compute, model=model_key, layer=hint, x=kd_cache.tensor_digest(x))
    return value.to(x.device)


class Hinted(nn.Module):
    """The student and its regressor, trained together in the hint stage: ``forward(x)`` is
    r(v_g(x)), the regressed guided layer, shape (batch, *hint shape)."""

    def __init__(self, student: nn.Module, regressor: nn.Module, guided: str) -> None:
        super().__init__()
        features.check_layers(student, guided, "guided layer")
        self.student = student
        self.regressor = regressor
        self.guided = guided

    def forward(self, x: Tensor) -> Tensor:
        return self.regressor(features_until(self.student, self.guided, x))


def hint_objective(hinted: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """Stage 1 on batches ``(x, teacher_hint)``: :func:`kdlab.losses.hint_loss` of r(v_g(x)) and u_h(x).

    ``hinted`` is any module from the input to the regressed guided layer: a :class:`Hinted`, or
    source 004's student prefix followed by its regressor (:func:`kdlab.methods.hint_mutual.pretrain`)."""
    x, teacher_hint = batch[:2]
    return {"loss": losses.hint_loss(hinted(x), teacher_hint)}


@recipe("fitnets-hint-stage", factories=("student",))
def hint_stage(
    student: ModelOrFactory,
    teacher: nn.Module,
    train: Tensors,
    *,
    hint: str,
    guided: str,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    regressor: str = "conv",
    device: str | torch.device | None = None,
    cache: bool = False,
    progress: bool | None = None,
    desc: str = "hint stage",
) -> Plan:
    """FitNets' stage 1: train the student up to ``guided`` and the regressor on the hint loss.

    Seeds with ``seed`` and builds the student (a factory, so its initial weights are those of a
    student trained from scratch with the same seed, or a module whose copy starts from its
    weights) and the regressor (:func:`make_regressor`); Adam (``lr``) runs over the regressor and
    :func:`guided_parameters` only, for ``epochs`` epochs of :func:`hint_objective` against the
    teacher's cached hints. The layers above ``guided`` keep their initial weights. With
    ``cache``, trained once per key (:func:`kdlab.methods.common.recipe`).

    Returns the :class:`~kdlab.methods.common.Result` of the whole student (trained below the
    guided layer) and the History (the epoch mean of the hint loss, ``loss``); the regressor is
    ``produced["regressor"]``.
    """
    _checks.choice("regressor", regressor, REGRESSORS)
    _checks.at_least("epochs", epochs, 1)
    where = runtime.device(device)
    make = as_factory(student)
    teacher = teacher.to(where)
    features.check_layers(teacher, hint, "hint layer")
    x = train.x.to(where)
    teacher_hint = hint_features(teacher, x, hint)

    def build() -> Hinted:
        net = make().to(where)
        features.check_layers(net, guided, "guided layer")
        r = make_regressor(net, teacher, hint=hint, guided=guided, example=x[:2], kind=regressor)
        return Hinted(net, r, guided).to(where)

    def run(hinted: Hinted) -> History:
        hinted.to(where)
        trainable = guided_parameters(hinted.student, guided, x[:2]) + list(hinted.regressor.parameters())
        loader = TensorLoader(x, teacher_hint, batch_size=batch_size, seed=seed, device=where)
        return fit(
            hinted, loader, hint_objective, epochs=epochs, optimizer=torch.optim.Adam(trainable, lr=lr),
            device=where, progress=progress, desc=desc,
        )

    def finish(hinted: Hinted, history: History) -> Result:
        hinted.to(where)
        return Result(hinted.student, history, {"hint stage": history}, {"regressor": hinted.regressor})

    return Plan(build, run, finish)


FORMS = ("kd", "paper")


def annealed_alpha(alpha: float, step: int, total_steps: int, upper: float = 1.0) -> float:
    """The soft-target weight at ``step`` (0-based) of ``total_steps``: ``alpha`` decayed linearly to 0.

    Romero et al. (2015), sec. 3 (stage 2): the weight of the teacher's term is annealed
    linearly, so that late training leans on the labels of the examples the teacher is less sure
    of (a curriculum, Bengio et al. 2009). The last step gets ``alpha / total_steps``. ``alpha``
    lies in [0, ``upper``]: 1 for Hinton's weighted average, unbounded for the paper's lambda.
    """
    _checks.in_range("alpha", alpha, 0.0, upper)
    _checks.at_least("total_steps", total_steps, 1)
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps - 1}], got {step}")
    return alpha * (1.0 - step / total_steps)


def objective(
    temperature: float, alpha: float, total_steps: int | None = None, form: str = "kd"
) -> Objective:
    """KD on batches ``(x, y, teacher_logits)`` with a soft-target weight ``alpha`` that decays
    linearly over ``total_steps`` optimiser steps (:func:`annealed_alpha`), or stays fixed when
    ``total_steps`` is None.

    ``form="kd"``: Hinton's ``alpha T^2 KL + (1 - alpha) CE`` (:func:`kdlab.losses.distillation_terms`,
    alpha in [0, 1]); ``form="paper"``: the paper's ``CE + lambda H(P_T^tau, P_S^tau)``
    (:func:`kdlab.losses.fitnets_kd_terms`, ``alpha`` is lambda, e.g. 4 with tau = 3): two
    different weightings of the same two terms. The objective counts its own calls (one per
    step), so a fresh objective is needed per run. Logs ``loss``, the unweighted ``soft`` and
    ``hard`` terms and the ``alpha`` used.
    """
    _checks.positive("temperature", temperature)
    _checks.choice("form", form, FORMS)
    upper = 1.0 if form == "kd" else math.inf
    _checks.in_range("alpha", alpha, 0.0, upper)
    if total_steps is not None:
        _checks.at_least("total_steps", total_steps, 1)
    step = 0

    def distillation(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        nonlocal step
        x, y, teacher_logits = batch[:3]
        weight = alpha
        if total_steps is not None:
            weight = annealed_alpha(alpha, min(step, total_steps - 1), total_steps, upper)
        step += 1
        terms_of = losses.distillation_terms if form == "kd" else losses.fitnets_kd_terms
        terms = terms_of(model(x), teacher_logits, y, temperature, weight)
        return {
            "loss": terms["loss"], "soft": terms["soft"].detach(), "hard": terms["hard"].detach(),
            "alpha": torch.tensor(weight),
        }

    return distillation


def distill(
    student: ModelOrFactory,
    train: Tensors,
    teacher: Teacher,
    *,
    temperature: float,
    alpha: float,
    epochs: int,
    anneal: bool = True,
    form: str = "kd",
    batch_size: int = 128,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """FitNets' stage 2: KD on the whole student, the soft-target weight annealed from ``alpha`` to 0.

    ``student`` builds a fresh student (KD alone), or is a student module whose copy is trained
    (the hint-trained student of :func:`hint_stage`: the FitNet). ``teacher`` is the teacher's
    outputs on ``train.x`` (n, classes) (:func:`kdlab.cache.logits`), or the teacher module, run
    on every batch (required with ``augment``; :func:`kdlab.methods.hinton.teacher_targets`).
    ``anneal=False`` keeps ``alpha`` fixed (Hinton et al.'s KD). ``form="paper"`` trains on the
    paper's ``CE + lambda H(P_T^tau, P_S^tau)`` with ``alpha`` as lambda (the paper: 4, tau 3)
    instead of Hinton's weighted average (see :func:`objective`). ``fit_knobs``: ``lr``,
    ``seed``, ``optimizer``, ``device``... as in :func:`kdlab.methods.common.train_model`.
    """
    _checks.at_least("epochs", epochs, 1)
    _checks.at_least("batch_size", batch_size, 1)
    total_steps = epochs * math.ceil(len(train) / batch_size) if anneal else None
    step_objective = objective(temperature, alpha, total_steps, form)
    augment = fit_knobs.get("augment")
    data, step = teacher_targets(teacher, (train.x, train.y), step_objective, augment=augment)
    return train_model(student, data, step, test=test, epochs=epochs, batch_size=batch_size, cache=cache,
                       **fit_knobs)
