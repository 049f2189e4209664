"""The one training loop. Every method is an *objective* handed to :func:`fit`.

An objective is ``objective(model, batch) -> terms``: ``batch`` is the tuple of tensors the
loader yields (e.g. ``(x, y)`` or ``(x, y, teacher_logits)``), and ``terms`` a dict of named
scalar tensors whose key ``"loss"`` is minimised; every other key is logged as it is (pass the
weighted parts, or detached diagnostics). An objective may instead *yield* several such dicts:
each gets its own optimiser step, in turn, before the next is computed (Deep Mutual Learning's
alternating updates).
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from kdlab import _checks, checkpoints, distributed, dry_run, loggers, metrics, runtime
from kdlab.data import TensorLoader, Tensors

Terms = Mapping[str, Tensor]
Objective = Callable[[nn.Module, tuple[Tensor, ...]], Terms | Iterator[Terms]]
Evaluate = Callable[[nn.Module], Mapping[str, float]]

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd_momentum")
SCHEDULES = (None, "cosine")


class Steps(tuple):
    """A multi-step learning-rate schedule: the rate times ``gamma`` at each of the epoch
    ``milestones``, after an optional linear warm-up over the first ``warmup_epochs`` epochs.

    ``Steps((150, 180, 210), 0.1)`` is the standard CIFAR-100 recipe's decay (x 0.1 at epochs 150,
    180 and 210 of 240; Tian et al. 2020, CRD): epoch ``e`` (counted from 0) trains at
    ``lr * gamma ** (number of milestones <= e)``, so with 240 epochs, epochs 0-149 use ``lr``
    and the last 30 use ``lr * 0.001``. With ``warmup_epochs=w``, step ``s`` (counted from 0)
    of the first ``w`` epochs is scaled by ``(s + 1) / (w * steps_per_epoch)``, reaching the full
    rate at the last step of epoch ``w - 1``.

    It is a tuple, equal to ``("step", milestones, gamma, warmup_epochs)``, so it is keyed,
    hashed and written to JSON by value (e.g. by :mod:`kdlab.cache`); :func:`fit` also takes that
    plain tuple (or list), with or without ``warmup_epochs``.
    """

    __slots__ = ()

    def __new__(cls, milestones: Iterable[int], gamma: float = 0.1, warmup_epochs: int = 0) -> Steps:
        valid = "milestones must be strictly increasing integer epochs >= 1, got "
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise ValueError(f"{valid}{milestones!r}")
        marks = tuple(milestones)
        if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in marks) or any(
            a >= b for a, b in itertools.pairwise(marks)
        ):
            raise ValueError(f"{valid}{marks!r}")
        if isinstance(gamma, bool):
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        _checks.positive("gamma", gamma)
        _checks.at_least("warmup_epochs", warmup_epochs, 0)
        return super().__new__(cls, ("step", marks, float(gamma), warmup_epochs))

    def __getnewargs__(self) -> tuple[tuple[int, ...], float, int]:  # pickle and copy
        return self.milestones, self.gamma, self.warmup_epochs

    @property
    def milestones(self) -> tuple[int, ...]:
        return self[1]

    @property
    def gamma(self) -> float:
        return self[2]

    @property
    def warmup_epochs(self) -> int:
        return self[3]

    def __repr__(self) -> str:
        return (
            f"Steps(milestones={self.milestones!r}, gamma={self.gamma!r}, "
            f"warmup_epochs={self.warmup_epochs!r})"
        )

    def factor(self, step: int, steps_per_epoch: int) -> float:
        """The multiplier of the base rate at optimiser step ``step`` (from 0)."""
        epoch = step // steps_per_epoch
        value = self.gamma ** bisect.bisect_right(self.milestones, epoch)
        warmup_steps = self.warmup_epochs * steps_per_epoch
        if step < warmup_steps:
            value *= (step + 1) / warmup_steps
        return value


def _as_schedule(schedule: object) -> str | Steps | None:
    """``schedule`` checked: ``None``, ``"cosine"``, a :class:`Steps`, or its plain form
    ``("step", milestones, gamma[, warmup_epochs])`` (tuple or list) made a :class:`Steps`."""
    if isinstance(schedule, Steps):
        return schedule
    if isinstance(schedule, (tuple, list)) and len(schedule) in (3, 4) and schedule[0] == "step":
        return Steps(*schedule[1:])
    if schedule is None or isinstance(schedule, str):
        if schedule in SCHEDULES:
            return schedule
    raise ValueError(
        f"schedule must be one of {list(SCHEDULES)} or a kdlab.train.Steps(milestones, gamma, "
        f"warmup_epochs) (or the tuple ('step', milestones, gamma[, warmup_epochs])), got {schedule!r}"
    )


@dataclass
class History:
    """Every logged term and test metric, one dict per finished epoch; ``best_epoch`` (from 1) is
    the epoch whose weights :func:`fit` kept when it selected on a ``val`` split (else ``None``)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None

    def __getitem__(self, key: str) -> list[float]:
        if self.epochs and key not in self.epochs[-1]:
            raise KeyError(f"history has no {key!r}; it has {sorted(self.epochs[-1])}")
        return [row.get(key, math.nan) for row in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    def last(self, key: str) -> float:
        """The value of ``key`` at the last epoch (kdlab reports last-epoch metrics)."""
        if not self.epochs:
            raise ValueError("history is empty: no epoch has finished")
        return self[key][-1]

    def best(self, key: str) -> float:
        """The value of ``key`` at the epoch selected on ``val`` (:attr:`best_epoch`), whose weights
        the model holds; label it as such next to :meth:`last` (kdlab reports last-epoch metrics)."""
        if self.best_epoch is None:
            raise ValueError("no epoch was selected: fit(val=...) selects one")
        return self[key][self.best_epoch - 1]

    def peak(self, key: str, lower: bool = False) -> float:
        """The best value of ``key`` over the epochs, the highest (the lowest with ``lower``): chosen by
        looking at ``key`` itself, so for a test metric it is the test-selected number that the
        CIFAR-100 benchmark's code reports (its best test accuracy), optimistic; label it as such
        beside :meth:`last`, and select on a ``val`` split (:meth:`best`) for a fair one."""
        values = [v for v in self[key] if not math.isnan(v)]
        if not values:
            raise ValueError(f"history has no value of {key!r}: no epoch has finished, or none logged it")
        return min(values) if lower else max(values)

    def keys(self) -> list[str]:
        return list(self.epochs[-1]) if self.epochs else []

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epochs": [dict(row) for row in self.epochs]}
        if self.best_epoch is not None:
            state["best_epoch"] = self.best_epoch
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> History:
        return cls([dict(row) for row in state["epochs"]], state.get("best_epoch"))

    def frame(self):
        """The history as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self.epochs)


def cross_entropy(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """The plain objective: cross-entropy with the labels, ``batch = (x, y, ...)``."""
    loss = F.cross_entropy(model(batch[0]).float(), batch[1])
    return {"loss": loss}


def classification(
    test: Tensors | tuple[Tensor, Tensor], batch_size: int = 1000, prefix: str = "test"
) -> Evaluate:
    """The default evaluation: error count, accuracy and cross-entropy on ``test``, named
    ``{prefix}_error``, ``{prefix}_accuracy``, ``{prefix}_loss``."""
    x, y = test.tensors if isinstance(test, Tensors) else test

    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        logits = metrics.predict(model, x.to(device), batch_size)
        labels = y.to(device)
        errors = metrics.error_count(logits, labels)
        return {
            f"{prefix}_error": float(errors),
            f"{prefix}_accuracy": 1.0 - errors / len(labels),
            f"{prefix}_loss": float(F.cross_entropy(logits, labels)),
        }

    return evaluate


def make_optimizer(
    name: str,
    parameters: Iterable[Tensor],
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = True,
) -> torch.optim.Optimizer:
    """``adam``, ``adamw``, ``sgd`` or ``sgd_momentum`` over ``parameters``. ``sgd`` uses
    ``momentum`` (0.9) with Nesterov's form by default (as Deep Mutual Learning); ``nesterov=False``,
    or the name ``sgd_momentum`` (which a recipe's ``optimizer`` knob can name), gives plain momentum
    (the CIFAR-100 benchmark recipe of Tian et al. 2020, CRD). ``nesterov`` is ignored by Adam."""
    _checks.choice("optimizer", name, OPTIMIZERS)
    _checks.positive("lr", lr)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(
        parameters, lr=lr, momentum=momentum, nesterov=nesterov and name == "sgd", weight_decay=weight_decay
    )


def _steps(objective: Objective, model: nn.Module, batch: tuple[Tensor, ...]) -> Iterator[Terms]:
    out = objective(model, batch)
    if isinstance(out, Mapping):
        yield out
    else:
        yield from out


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get("KDLAB_PROGRESS", "1") not in ("0", "false", "no")


def fit(
    model: nn.Module,
    train: TensorLoader | Iterable[tuple[Tensor, ...]],
    objective: Objective = cross_entropy,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str | torch.optim.Optimizer = "adam",
    weight_decay: float = 0.0,
    schedule: str | Steps | tuple | None = None,
    test: Tensors | tuple[Tensor, Tensor] | None = None,
    evaluate: Evaluate | None = None,
    device: str | torch.device | None = None,
    amp: bool = True,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | None = None,
    desc: str = "train",
    after_step: Callable[[nn.Module], None] | None = None,
    val: Tensors | tuple[Tensor, Tensor] | None = None,
    log: str | os.PathLike | None = None,
    tensorboard: str | os.PathLike | None = None,
    validate: Evaluate | None = None,
    callbacks: Sequence[loggers.Callback] | loggers.Callback = (),
) -> History:
    """Train ``model`` in place for ``epochs`` epochs over ``train``, minimising ``objective``.

    - ``train``: a :class:`~kdlab.data.TensorLoader` (its tensors are moved to the device once) or
      any iterable of batches (a ``DataLoader``: each batch is moved to the device).
    - ``optimizer``: ``"adam"``, ``"adamw"``, ``"sgd"`` (built over the trainable parameters of
      ``model`` with ``lr`` and ``weight_decay``), or a ready optimiser. ``schedule="cosine"``
      anneals the rate to zero over all steps; ``schedule=Steps((150, 180, 210), 0.1)`` (see
      :class:`Steps`) multiplies it by 0.1 at each of those epochs, after an optional warm-up.
    - ``after_step(model)``, if given, is called with ``model`` itself (never its
      DistributedDataParallel wrapper) after every optimiser step, e.g.
      :func:`kdlab.models.constrain_` for Hinton et al.'s max-norm constraint. ``None``: no hook.
    - After each epoch: ``evaluate(model)`` (default: test error, accuracy and loss on ``test``) is
      logged with each term's epoch mean, the seconds the epoch took and the learning rate; then,
      if ``checkpoint`` is a path, everything needed to continue (weights, optimiser, schedule,
      loader and RNG states, history) is written atomically. ``resume=True`` continues from that
      file, and on CPU reaches the same final weights as an uninterrupted run; a file written by
      another run (another kdlab objective, data, epochs, optimiser or schedule) is refused, naming
      what differs (:mod:`kdlab.checkpoints`), and a missing file starts the run afresh.
    - ``val`` (a validation split, kept apart from ``test``): evaluated after each epoch as
      ``val_error``, ``val_accuracy``, ``val_loss``; the weights of the epoch with the fewest val
      errors (the first on ties) are kept and loaded back at the end, and ``History.best_epoch``
      names it (every epoch's row stays, so ``history.last(k)`` and ``history.best(k)`` both read).
      The selection looks at ``val`` only, never at ``test``. ``validate(model)``, if given, scores
      ``val`` instead (its row must hold ``val_error``, the number the epoch is chosen by), e.g. a
      cohort's (:func:`kdlab.methods.mutual.fit_cohort`).
    - ``log`` (a CSV path): each epoch's row is appended as it finishes (header from the first
      row); a fresh run starts the file anew, a resumed one rewrites the rows it restored.
      ``tensorboard`` (a folder): each epoch's row as TensorBoard scalars, step = epoch (needs the
      ``tensorboard`` package; without it, an error before any training; :mod:`kdlab.loggers`).
      ``callbacks``: functions called as ``callback(row, model)`` after each epoch, with its row
      (the History's) and ``model``, after it is checkpointed; they watch (metrics elsewhere, early
      warnings), so they should not change ``model``. Under ``torchrun``, all three on rank 0 only.
    - A non-finite term stops the run with ``FloatingPointError`` naming the epoch and the term;
      the checkpoint of the last good epoch is kept.
    - On CUDA with ``amp``, the objective runs under bf16 autocast.
    - In a dry run (``KDLAB_DRY_RUN=1``, :mod:`kdlab.dry_run`) it runs 1 epoch of at most 2 steps
      (logged, evaluated and checkpointed as any epoch; the schedule is still laid out over
      ``epochs``), repeats that epoch's row in the History up to ``epochs`` rows, and records the
      steps' speed and the size of the real run.
    - Under ``torchrun`` (several processes), the model is trained with DistributedDataParallel
      on shards of each global batch; see :mod:`kdlab.distributed`. An objective that yields
      several steps per batch cannot be used there.
    """
    _checks.at_least("epochs", epochs, 1)
    schedule = _as_schedule(schedule)
    ctx, where = distributed.context(runtime.device(device))
    model.to(where)
    _place(train, ctx, where)
    trained = distributed.wrap(model, ctx, where)
    optimizer = _optimizer(optimizer, model, lr, weight_decay)
    steps_per_epoch = len(train)  # type: ignore[arg-type]
    scheduler = _schedule(optimizer, schedule, epochs * steps_per_epoch, steps_per_epoch)
    if evaluate is None and test is not None:
        evaluate = classification(test)
    if val is None:
        validate = None
    elif validate is None:
        validate = classification(val, prefix="val")
    history = History()
    best = _Best()
    path = Path(checkpoint) if checkpoint is not None else None
    run = {} if path is None else checkpoints.signature(
        objective, train, epochs, steps_per_epoch, optimizer, schedule
    )
    start_epoch = 0
    if resume and path is not None and path.exists():
        state = checkpoints.load(path, model, where, run)
        start_epoch = _restore(state, optimizer, scheduler, train, history, best)
    watchers = _callbacks(callbacks, log, tensorboard, history) if ctx.is_main else []
    step = _Step(trained, model, optimizer, _autocast(where, amp), ctx, after_step)
    cut = dry_run.cut()  # every epoch and batch, unless this is a dry run
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=desc,
        leave=False,
        disable=not (_progress_enabled(progress) and ctx.is_main),
    )
    try:
        for epoch in range(start_epoch, cut.epochs(epochs)):
            model.train()
            started = time.perf_counter()
            totals = _Totals()
            for batch in cut.batches(train):
                step.run(objective, tuple(t.to(where, non_blocking=True) for t in batch), totals)
                if scheduler is not None:
                    scheduler.step()
                bar.update(1)
            row = _epoch_row(epoch, totals, ctx, path)
            row["seconds"] = time.perf_counter() - started
            row["lr"] = optimizer.param_groups[0]["lr"]
            if evaluate is not None:
                row.update(evaluate(model))
            if validate is not None:
                row.update(validate(model))
                best.offer(epoch + 1, row["val_error"], model)
            history.epochs.append(row)
            bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("loss", "test_error")})
            if path is not None and ctx.is_main:
                state = _state(model, optimizer, scheduler, train, history, epoch + 1, best)
                checkpoints.save(path, state, run)
            for watch in watchers:
                watch(row, model)
            distributed.barrier(ctx)
        cut.finish(history, epochs, desc, train, model, objective)
    finally:
        bar.close()
        for watch in watchers:
            if hasattr(watch, "close"):
                watch.close()
    if validate is not None and best.state is not None:
        model.load_state_dict(best.state)
        history.best_epoch = best.epoch
    return history


def _callbacks(
    given: Sequence[loggers.Callback] | loggers.Callback,
    log: str | os.PathLike | None,
    tensorboard: str | os.PathLike | None,
    history: History,
) -> list[loggers.Callback]:
    """The CSV log, the TensorBoard events and the user's ``given`` callbacks (a list, or one function),
    checked before training."""
    given = [given] if callable(given) else list(given)
    for k, callback in enumerate(given):
        if not callable(callback):
            raise TypeError(
                f"callbacks[{k}] must be a function called as callback(row, model) after each epoch, got "
                f"{type(callback).__name__}"
            )
    made: list[loggers.Callback] = [loggers.CSV(log, history.epochs)] if log is not None else []
    if tensorboard is not None:
        made.append(loggers.TensorBoard(tensorboard))
    return [*made, *given]


@dataclass
class _Best:
    """The epoch (from 1) with the fewest val errors so far (the first on ties), and its weights."""

    epoch: int | None = None
    error: float = math.inf
    state: dict[str, Tensor] | None = None

    def offer(self, epoch: int, error: float, model: nn.Module) -> None:
        if error < self.error:
            self.epoch, self.error, self.state = epoch, error, copy.deepcopy(model.state_dict())


def _place(train: object, ctx: distributed.Context, where: torch.device) -> None:
    """Move a :class:`~kdlab.data.TensorLoader`'s tensors to ``where`` once and give it this
    process's shard; any other iterable is left alone (its batches are moved one by one)."""
    if isinstance(train, TensorLoader):
        if train.device != where:
            train.tensors = tuple(t.to(where) for t in train.tensors)
        train.shard(ctx.rank, ctx.world_size)


def _optimizer(
    optimizer: str | torch.optim.Optimizer, model: nn.Module, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """A ready optimiser as it is, or the named one over the trainable parameters of ``model``."""
    if not isinstance(optimizer, str):
        return optimizer
    return make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad], lr, weight_decay)


def _schedule(
    optimizer: torch.optim.Optimizer, schedule: str | Steps | None, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The learning-rate schedule, stepped once per batch: ``None`` (constant), ``"cosine"``
    (annealed from the optimiser's rate to zero over ``total_steps``) or a :class:`Steps` (decayed
    at epoch milestones of ``steps_per_epoch`` steps, after its warm-up)."""
    if isinstance(schedule, Steps):
        per_epoch = max(steps_per_epoch, 1)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule.factor(step, per_epoch))
    if schedule != "cosine":
        return None
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )


def _autocast(where: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA with ``amp``; otherwise a context that does nothing."""
    if amp and where.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class _Totals:
    """The sum and the count of each logged term over one epoch's steps."""

    sums: dict[str, Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, terms: Terms) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.detach().float()
            self.counts[name] = self.counts.get(name, 0) + 1


@dataclass
class _Step:
    """Takes the optimiser steps of one batch: ``trained`` (the model, DDP-wrapped under
    ``torchrun``) is what the objective calls; ``model`` (never wrapped) is what ``after_step`` gets."""

    trained: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    autocast: contextlib.AbstractContextManager
    ctx: distributed.Context
    after_step: Callable[[nn.Module], None] | None

    def run(self, objective: Objective, batch: tuple[Tensor, ...], totals: _Totals) -> None:
        """One optimiser step per dict the objective returns or yields for ``batch``, each computed
        (under autocast) only after the previous step; every term is added to ``totals``."""
        steps = _steps(objective, self.trained, batch)
        for index in itertools.count():
            with self.autocast:
                terms = next(steps, None)
            if terms is None:
                return
            if index and self.ctx.active:
                raise RuntimeError(
                    "an objective that yields several steps per batch cannot run under torchrun"
                )
            if "loss" not in terms:
                raise KeyError(f"the objective must return a 'loss' term, got {sorted(terms)}")
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            self.optimizer.step()
            if self.after_step is not None:
                self.after_step(self.model)
            totals.add(terms)


def _epoch_row(epoch: int, totals: _Totals, ctx: distributed.Context, path: Path | None) -> dict[str, float]:
    """The logged row of ``epoch`` (0-based): its number and each term's mean over the steps (and
    over the processes); a non-finite mean raises ``FloatingPointError`` naming the epoch and the
    term, and where the last good epoch's checkpoint is kept."""
    row: dict[str, float] = {"epoch": float(epoch + 1)}
    for name, total in distributed.mean_over_processes(totals.sums, ctx).items():
        value = float(total) / totals.counts[name]
        if not math.isfinite(value):
            kept = f"; the checkpoint of epoch {epoch} is kept at {path}" if path and epoch else ""
            raise FloatingPointError(f"loss term {name!r} became {value} during epoch {epoch + 1}{kept}")
        row[name] = value
    return row


def _state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR | None,
    train: object,
    history: History,
    epochs_done: int,
    best: _Best,
) -> dict[str, Any]:
    """All that a resumed :func:`fit` needs after ``epochs_done`` epochs (:mod:`kdlab.checkpoints`)."""
    return {
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "loader": train.state_dict() if hasattr(train, "state_dict") else None,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "history": history.to_dict(),
        "best": vars(best),
    }


def _restore(
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR | None,
    train: object,
    history: History,
    best: _Best,
) -> int:
    """Load a checkpoint's ``state`` (its weights already in the model) into all of these; the number
    of epochs it had finished."""
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state["loader"] is not None and hasattr(train, "load_state_dict"):
        train.load_state_dict(state["loader"])
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
    history.epochs[:] = History.from_dict(state["history"]).epochs
    if state.get("best") is not None:
        vars(best).update(state["best"])
    return int(state["epochs_done"])
