"""Zhang, Xiang, Hospedales & Lu (2018), "Deep Mutual Learning": a cohort of K >= 2 students, each
trained on the labels and on its peers' predictions, with no pre-trained teacher.

A cohort is one ``nn.ModuleList`` trained by :func:`kdlab.train.fit` with one optimiser: an
update of student k yields a loss that depends on student k's parameters only (the peers'
predictions are detached), so the gradients of the other students are ``None`` after fit's
``zero_grad(set_to_none=True)`` and Adam / SGD leave them untouched. The recipe:

- :func:`objective`: the per-batch updates, ``"in_turn"`` (the paper's Algorithm 1),
  ``"simultaneous"`` (one step on the sum of the K losses) or ``"independent"`` (no mimicry:
  K students trained alone on the same batches, the baseline);
- :func:`evaluation`: each student's test error, the cohort's mean and its ensemble's;
- :func:`fit_cohort` trains a built cohort, :func:`train` seeds, builds and trains one (and, with
  ``cache=True``, stores it in :mod:`kdlab.cache`, through :func:`kdlab.methods.common.recipe`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdlab import _checks, dry_run, loggers, metrics, runtime
from kdlab.augment import Augment
from kdlab.data import TensorLoader, Tensors
from kdlab.losses.mutual import mutual_terms
from kdlab.methods.common import RUN_KNOBS_NOT_KEYED, ModelOrFactory, Plan, as_factory, recipe
from kdlab.train import Evaluate, History, Objective, Steps, fit, make_optimizer

UPDATES = ("in_turn", "simultaneous", "independent")


def cohort(students: Sequence[nn.Module]) -> nn.ModuleList:
    """The students as one ``nn.ModuleList`` (student k is ``cohort[k]``); at least two of them."""
    if isinstance(students, nn.Module) and not isinstance(students, nn.ModuleList):
        raise TypeError("students must be a sequence of modules (a cohort), got a single module")
    students = list(students)
    if len(students) < 2:
        raise ValueError(f"a cohort needs at least 2 students (K >= 2), got {len(students)}")
    for k, student in enumerate(students):
        if not isinstance(student, nn.Module):
            raise TypeError(f"students[{k}] must be an nn.Module, got {type(student).__name__}")
    return nn.ModuleList(students)


def check_classes(students: nn.ModuleList, x: Tensor) -> int:
    """The number of classes every student predicts on ``x[:2]``; ``ValueError`` if they differ."""
    with torch.no_grad():
        classes = [int(metrics.predict(student, x[:2]).shape[1]) for student in students]
    if len(set(classes)) != 1:
        listed = ", ".join(f"student {k}: {c}" for k, c in enumerate(classes))
        raise ValueError(f"every student of a cohort must predict the same number of classes, got {listed}")
    return classes[0]


def objective(update: str = "in_turn", *, temperature: float = 1.0, ensemble: bool = False) -> Objective:
    """DML's objective over a cohort (``nn.ModuleList``) on batches ``(x, y, ...)``.

    Each of the K students is run once on the batch (K forwards with their graphs), and the K
    detached predictions are the peers' targets in :func:`kdlab.losses.mutual.mutual_loss`:

    - ``"in_turn"``, the paper's Algorithm 1: yields one loss per student, in order, so
      :func:`kdlab.train.fit` takes K optimiser steps per batch and student k's update sees the
      *current* predictions of the students updated before it. After student k's step only its
      own predictions are stale: they are recomputed once, without a graph, and reused by every
      later student. Algorithm 1 recomputes all K predictions after each update; the others'
      parameters have not moved, so their values are the same (with dropout the first mask is
      kept; the re-run is in train mode, so batch norm's running statistics see the batch once
      more). Cost per batch: K forwards and backwards plus K - 1 forwards without a graph,
      instead of the K^2 forwards of a literal reading.
    - ``"simultaneous"``: one step on the sum of the K losses, all against the predictions of
      the batch's start (K forwards and backwards: about K plain steps).
    - ``"independent"``: one step on the sum of the K cross-entropies, no mimicry (the baseline:
      each student alone, seeing the same batches).

    Logs ``ce/k`` and ``kl/k`` for each student k (``kl`` is absent when independent).
    """
    _checks.choice("update", update, UPDATES)
    _checks.positive("temperature", temperature)

    def mutual(students: nn.Module, batch: tuple[Tensor, ...]) -> Iterator[dict[str, Tensor]]:
        x, y = batch[0], batch[1]
        if len(students) < 2:
            raise ValueError(f"a cohort needs at least 2 students (K >= 2), got {len(students)}")
        logits = [student(x) for student in students]
        if update == "independent":
            ces = [F.cross_entropy(z.float(), y) for z in logits]
            yield {"loss": sum(ces), **{f"ce/{k}": ce.detach() for k, ce in enumerate(ces)}}
            return
        targets = [z.detach() for z in logits]
        terms = []
        for k in range(len(students)):
            peers = targets[:k] + targets[k + 1 :]
            term = mutual_terms(logits[k], peers, y, temperature=temperature, ensemble=ensemble)
            logged = {f"ce/{k}": term["ce"].detach(), f"kl/{k}": term["kl"].detach()}
            if update == "simultaneous":
                terms.append((term["loss"], logged))
                continue
            yield {"loss": term["loss"], **logged}
            if k < len(students) - 1:
                # Student k has just taken its step: its new predictions are the later students' target.
                with torch.no_grad():
                    targets[k] = students[k](x)
        if update == "simultaneous":
            logged = {name: value for _, part in terms for name, value in part.items()}
            yield {"loss": sum(loss for loss, _ in terms), **logged}

    return mutual


def evaluation(
    test: Tensors | tuple[Tensor, Tensor],
    *,
    every: int = 1,
    epochs: int | None = None,
    batch_size: int = 1000,
    prefix: str = "test",
) -> Evaluate:
    """Test metrics of a cohort, for ``fit(evaluate=...)``.

    Returns, for each student k, ``test_error/k`` (a count) and ``test_accuracy/k``; the
    cohort's mean ``test_error/mean``; and its ensemble's ``test_error/ensemble`` and
    ``test_accuracy/ensemble`` (the arg-max of the mean of the K softmax probabilities).
    Evaluating every epoch costs K test-set forwards; with ``every`` > 1 the metrics are computed
    on every ``every``-th call and at call ``epochs`` (the last epoch), other calls log nothing.
    ``prefix="val"`` names them ``val_error/k``... for a validation split.
    """
    _checks.at_least("every", every, 1)
    last = dry_run.cut().epochs(epochs) if epochs is not None else None  # a dry run stops after 1 epoch
    x, y = test.tensors if isinstance(test, Tensors) else test
    calls = [0]

    def evaluate(students: nn.Module) -> dict[str, float]:
        calls[0] += 1
        if calls[0] % every and calls[0] != last:
            return {}
        device = next(students.parameters()).device
        labels = y.to(device)
        logits = [metrics.predict(student, x.to(device), batch_size) for student in students]
        row: dict[str, float] = {}
        counts = []
        for k, z in enumerate(logits):
            counts.append(float(metrics.error_count(z, labels)))
            row[f"{prefix}_error/{k}"] = counts[k]
            row[f"{prefix}_accuracy/{k}"] = 1.0 - counts[k] / len(labels)
        row[f"{prefix}_error/mean"] = sum(counts) / len(counts)
        probabilities = torch.stack([torch.softmax(z, dim=1) for z in logits]).mean(0)
        errors = metrics.error_count(probabilities, labels)
        row[f"{prefix}_error/ensemble"] = float(errors)
        row[f"{prefix}_accuracy/ensemble"] = 1.0 - errors / len(labels)
        return row

    return evaluate


def _optimizer(
    name: str, parameters: list[Tensor], lr: float, weight_decay: float, betas: tuple[float, float] | None
) -> torch.optim.Optimizer:
    if betas is None:
        return make_optimizer(name, parameters, lr, weight_decay)
    _checks.choice("optimizer (with betas)", name, ("adam", "adamw"))
    for i, beta in enumerate(betas):
        _checks.in_range(f"betas[{i}]", beta, 0.0, 1.0)
    _checks.positive("lr", lr)
    kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return kind(parameters, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def fit_cohort(
    students: Sequence[nn.Module],
    train: Tensors | Iterable[tuple[Tensor, ...]],
    *,
    epochs: int,
    test: Tensors | None = None,
    update: str = "in_turn",
    temperature: float = 1.0,
    ensemble: bool = False,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    optimizer: str = "adam",
    betas: tuple[float, float] | None = None,
    weight_decay: float = 0.0,
    schedule: str | Steps | None = None,
    augment: Augment | None = None,
    eval_every: int = 1,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    desc: str = "cohort",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    val: Tensors | None = None,
    log: str | os.PathLike | None = None,
    tensorboard: str | os.PathLike | None = None,
    callbacks: Sequence[loggers.Callback] | loggers.Callback = (),
) -> tuple[nn.ModuleList, History]:
    """Train built ``students`` as a cohort on ``train`` with :func:`objective` (``update``...).

    One optimiser (``optimizer``, ``lr``, ``weight_decay``, Adam's ``betas`` if given, e.g. seed
    004's (0.5, 0.99)) over all students; batches from a :class:`~kdlab.data.TensorLoader` seeded
    with ``seed`` over ``train``'s tensors (inputs shifted and flipped on the device by ``augment``,
    :mod:`kdlab.augment`), or ``train`` itself when it is a loader (``(x, y)`` batches);
    ``schedule`` as in :func:`kdlab.train.fit`. With ``test``, logs :func:`evaluation` every
    ``eval_every`` epochs and at the last one. Returns the cohort and its
    :class:`~kdlab.train.History`.

    ``checkpoint``, ``resume``, ``log``, ``tensorboard`` and ``callbacks`` are
    :func:`~kdlab.train.fit`'s. With ``val``, the cohort is scored on it every epoch
    (``val_error/k``, ``val_error/ensemble``...) and the weights of the epoch with the fewest val
    errors averaged over the students (``val_error``, the same as ``val_error/mean``) are returned,
    as one cohort: the students are trained together, so one epoch is chosen for all of them.
    """
    students = cohort(students)
    where = runtime.device(device)
    students.to(where)
    evaluate = evaluation(test, every=eval_every, epochs=epochs) if test is not None else None
    parameters = [p for p in students.parameters() if p.requires_grad]
    if isinstance(train, Tensors):
        check_classes(students, train.x.to(where))
        loader = TensorLoader(
            train.x, train.y, batch_size=batch_size, seed=seed, device=where, augment=augment
        )
    else:
        loader = train
    history = fit(
        students, loader, objective(update, temperature=temperature, ensemble=ensemble), epochs=epochs,
        optimizer=_optimizer(optimizer, parameters, lr, weight_decay, betas), schedule=schedule,
        evaluate=evaluate, device=where, progress=progress, desc=desc, checkpoint=checkpoint, resume=resume,
        val=val, validate=_cohort_val(val) if val is not None else None, log=log, tensorboard=tensorboard,
        callbacks=callbacks,
    )
    return students, history


def _cohort_val(val: Tensors) -> Evaluate:
    """:func:`evaluation` on ``val`` every epoch, with ``val_error``: the students' mean, which chooses
    the epoch :func:`~kdlab.train.fit` returns."""
    scores = evaluation(val, prefix="val")

    def validate(students: nn.Module) -> dict[str, float]:
        row = scores(students)
        return {"val_error": row["val_error/mean"], **row}

    return validate


@recipe("dml", factories=("students",), not_keyed=RUN_KNOBS_NOT_KEYED)
def train(
    students: Sequence[ModelOrFactory],
    train: Tensors,
    *,
    seed: int = 0,
    cache: bool = False,
    **knobs: Any,
) -> Plan:
    """Seed with ``seed``, build one student per entry of ``students`` (a factory, so each starts
    from its own random weights, or a module whose copy starts from its weights) and train them as
    a cohort with :func:`fit_cohort` (``knobs``: ``epochs``, ``test``, ``update``, ``lr``,
    ``betas``, ``schedule``...). ``[make] * K`` gives a cohort of K students of one architecture.
    Returns the :class:`~kdlab.methods.common.Result` ``(cohort, History)``; with ``cache=True``
    trained once per key
    (:func:`kdlab.methods.common.recipe`)."""
    students = list(students)
    if len(students) < 2:
        raise ValueError(f"a cohort needs at least 2 students (K >= 2), got {len(students)}")
    factories = [as_factory(s, f"students[{k}]") for k, s in enumerate(students)]

    def build() -> nn.ModuleList:
        return cohort([make() for make in factories])

    def run(built: nn.ModuleList) -> History:
        return fit_cohort(built, train, seed=seed, **knobs)[1]

    return Plan(build, run)
