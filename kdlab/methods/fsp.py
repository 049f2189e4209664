"""Yim et al. (2017), "A Gift from Knowledge Distillation": the student first learns the teacher's
*flow of solution procedure* (FSP matrices between the first and last maps of each section that
keeps one spatial size), then trains normally from those weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import _checks, features, metrics, runtime
from kdlab import cache as kd_cache
from kdlab.augment import Augment
from kdlab.data import TensorLoader, Tensors
from kdlab.losses.features import fsp_distance, fsp_matrix
from kdlab.methods.common import ModelOrFactory, Plan, Result, as_factory, recipe, train_model
from kdlab.models.resnet import FSP_PAIRS
from kdlab.train import History, Objective, fit

Pairs = Sequence[tuple[str, str]]


def check_pairs(model: nn.Module, pairs: Pairs, example: Tensor, role: str = "model") -> None:
    """Raise a clear error for an empty pair list, an unknown layer name (listing the model's
    layers) or a pair whose two maps differ in spatial size (naming the layers and the sizes)."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs must list at least one (first, second) pair of layer names, got none")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"pairs[{i}] must be a (first, second) pair of layer names, got {pair!r}")
        for name in pair:
            features.check_layers(model, name, f"FSP layer of the {role} (pairs[{i}])")
    names = sorted({name for pair in pairs for name in pair})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), features.capture(model, names) as maps:
            model(example)
    finally:
        model.train(was_training)
    for i, (first, second) in enumerate(pairs):
        size_1, size_2 = tuple(maps[first].shape[2:]), tuple(maps[second].shape[2:])
        if maps[first].dim() != 4 or maps[second].dim() != 4 or size_1 != size_2:
            raise ValueError(
                f"the {role}'s FSP pair {i} ({first!r}, {second!r}) must be two maps of one spatial size, "
                f"got shapes {tuple(maps[first].shape[1:])} and {tuple(maps[second].shape[1:])}; "
                "take both layers from one section"
            )


def fsp_matrices(model: nn.Module, x: Tensor, pairs: Pairs = FSP_PAIRS) -> list[Tensor]:
    """The FSP matrix (:func:`kdlab.losses.fsp_matrix`) of each pair of layers on ``x``, in the
    model's current mode and with gradients. Shapes: (batch, ...) -> one (batch, c1, c2) per pair."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs must list at least one (first, second) pair of layer names, got none")
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    with features.capture(model, names) as maps:
        model(x)
    return [fsp_matrix(maps[first], maps[second]) for first, second in pairs]


def teacher_matrices(
    teacher: nn.Module, x: Tensor, pairs: Pairs = FSP_PAIRS, batch_size: int = 500
) -> list[Tensor]:
    """The teacher's FSP matrices on every row of ``x`` (eval mode), in one pass over ``x``, and
    cached when the teacher came from the cache: they do not depend on the student. On ``x``'s
    device. Shapes: (n, ...) -> one (n, c1, c2) per pair."""
    pairs = [tuple(pair) for pair in pairs]
    check_pairs(teacher, pairs, x[:2], "teacher")
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.no_grad():
            shapes = [tuple(g.shape[1:]) for g in fsp_matrices(teacher, x[:1], pairs)]

            def compute() -> Tensor:
                # All sections side by side, one row per example, so one cache entry holds them.
                return torch.cat([
                    torch.cat([g.flatten(1) for g in fsp_matrices(teacher, chunk, pairs)], dim=1)
                    for chunk in x.split(batch_size)
                ])

            model_key = kd_cache.key_of(teacher)
            if model_key is None:
                flat = compute()
            else:
                digest = kd_cache.tensor_digest(x)
                flat = kd_cache.tensor("fsp-matrices", compute, model=model_key, pairs=pairs, x=digest)
    finally:
        teacher.train(was_training)
    parts = flat.to(x.device).split([c1 * c2 for c1, c2 in shapes], dim=1)
    return [part.reshape(-1, *shape) for part, shape in zip(parts, shapes, strict=True)]


def objective(pairs: Pairs = FSP_PAIRS, weights: Sequence[float] | None = None) -> Objective:
    """Stage 1 on batches ``(x, G_1^T, ..., G_n^T)`` (the teacher's cached matrices):
    :func:`kdlab.losses.fsp_distance` between the student's FSP matrices and the teacher's."""
    pairs = [tuple(pair) for pair in pairs]
    if not pairs:
        raise ValueError("pairs must list at least one (first, second) pair of layer names, got none")

    def flow(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, targets = batch[0], batch[1:]
        return {"loss": fsp_distance(fsp_matrices(model, x, pairs), targets, weights)}

    return flow


def with_teacher(
    teacher: nn.Module, objective_: Objective, teacher_pairs: Pairs = FSP_PAIRS
) -> Objective:
    """An objective on batches ``(x,)`` that computes the teacher's FSP matrices on each batch (eval
    mode, under ``torch.inference_mode()``) and hands ``(x, G_1^T, ..., G_n^T)`` to ``objective_``:
    for augmented inputs, where matrices computed once for the training set would be stale."""
    teacher_pairs = [tuple(pair) for pair in teacher_pairs]

    def flow(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x = batch[0]
        found = metrics.frozen_outputs(teacher, lambda t: fsp_matrices(t, x, teacher_pairs))
        return objective_(model, (x, *found))

    return flow


@recipe("fsp-stage", factories=("student",))
def fsp_stage(
    student: ModelOrFactory,
    teacher: nn.Module,
    train: Tensors,
    *,
    epochs: int,
    pairs: Pairs = FSP_PAIRS,
    teacher_pairs: Pairs | None = None,
    weights: Sequence[float] | None = None,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    augment: Augment | None = None,
    device: str | torch.device | None = None,
    cache: bool = False,
    progress: bool | None = None,
    desc: str = "FSP stage",
) -> Plan:
    """Yim et al. (2017), stage 1: train the student (seeded with ``seed``) to minimise the FSP loss.

    ``student`` is a factory or a module whose copy is trained. ``pairs`` name the (first, last)
    layers of each section in the student, ``teacher_pairs`` those of the teacher (default: the
    same names, as for two :func:`kdlab.models.resnet` nets); ``weights`` are the lambda_i
    (default all 1, as the paper). Adam over all the student's parameters (only those below the
    last pair get a gradient; the classifier keeps its initial weights). Without ``augment`` the
    teacher's matrices are computed once for the training set (:func:`teacher_matrices`); with
    one (:mod:`kdlab.augment`, e.g. :data:`kdlab.augment.CIFAR`, as the CIFAR-100 benchmark's
    stage 1 trains on its augmented batches) every batch's inputs are shifted and flipped on the
    device and the teacher runs on each batch (:func:`with_teacher`). With ``cache``, trained
    once per key (:func:`kdlab.methods.common.recipe`). Returns the student and the History
    (``loss``: the epoch mean of the FSP loss).
    """
    _checks.at_least("epochs", epochs, 1)
    where = runtime.device(device)
    make = as_factory(student)
    pairs = [tuple(pair) for pair in pairs]
    teacher_pairs = pairs if teacher_pairs is None else [tuple(pair) for pair in teacher_pairs]
    if len(teacher_pairs) != len(pairs):
        raise ValueError(
            f"teacher_pairs must hold one pair per student pair ({len(pairs)}), got {len(teacher_pairs)}"
        )
    if augment is not None and not isinstance(augment, Augment):
        raise TypeError(f"augment must be a kdlab.augment.Augment or None, got {type(augment).__name__}")
    teacher = teacher.to(where)
    x = train.x.to(where)
    if augment is None:
        targets = teacher_matrices(teacher, x, teacher_pairs)
    else:
        check_pairs(teacher, teacher_pairs, x[:2], "teacher")

    def build() -> nn.Module:
        net = make().to(where)
        check_pairs(net, pairs, x[:2], "student")
        return net

    def run(net: nn.Module) -> History:
        if augment is None:
            loader = TensorLoader(x, *targets, batch_size=batch_size, seed=seed, device=where)
            step = objective(pairs, weights)
        else:
            loader = TensorLoader(x, batch_size=batch_size, seed=seed, device=where, augment=augment)
            step = with_teacher(teacher, objective(pairs, weights), teacher_pairs)
        return fit(net, loader, step, epochs=epochs, lr=lr, device=where, progress=progress, desc=desc)

    return Plan(build, run, lambda net, history: Result(net, history, {"FSP stage": history}))


def train_from(
    init: nn.Module,
    train: Tensors,
    *,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Yim et al. (2017), stage 2: normal training (label cross-entropy) of a copy of ``init``,
    the student of :func:`fsp_stage` (``init`` itself is left unchanged): :func:`train_model` on
    the labels. ``fit_knobs``: ``epochs``, ``lr``, ``batch_size``, ``seed``... as there.
    """
    if not isinstance(init, nn.Module):
        raise TypeError(f"init must be the stage-1 student (an nn.Module), got {type(init).__name__}")
    return train_model(init, train, test=test, cache=cache, **fit_knobs)
