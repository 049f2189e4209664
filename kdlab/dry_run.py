"""Dry runs: a chapter's ``full`` path end to end on a CPU in minutes, and what the real run would take.

With ``KDLAB_DRY_RUN=1`` in the environment (:func:`active`), kdlab runs the same code on a
miniature of the work, and nothing else changes: the real architectures, classes, image shapes,
knobs, stages and code paths.

- :func:`kdlab.data.load` keeps a class-stratified miniature of every part (:func:`train_rows`,
  :func:`test_rows`), and a data set that cannot be had (no files; a dry run never downloads)
  becomes synthetic data of the real shape and class count; ``Tensors.subset(size)`` keeps
  :func:`train_rows` of ``size`` in proportion to what the set holds. Each set made so is
  remembered as standing for its real number of examples (:func:`remember`).
- :func:`kdlab.train.fit` runs :data:`EPOCHS` epoch(s) of at most :data:`STEPS_PER_EPOCH` steps
  (the History row, the evaluation and the checkpoint all still happen; the History then repeats
  that row up to the requested epochs) and records a :class:`Measurement`: examples per second on
  this machine, the requested epochs and the examples of a real epoch. With
  ``KDLAB_DRY_RUN_REPORT`` naming a file, each measurement is appended to it as one JSON line;
  :func:`summary` adds them up into the projected wall time of the real run.
- :func:`kdlab.cache.key` holds ``"dry_run": True``, so a model trained for two steps never
  answers a real run's key (a wrong hit is worse than a miss).

**What is approximate.** The projection covers the optimiser steps only (evaluations, teacher
passes over the data, P matrices, trees and plots are not in it). Each fit is timed on the
fastest of its two steps (the first one usually pays for warming up), and the fits of one
configuration (the same model, objective and batch, e.g. one per seed) share the best speed any
of them measured: on a machine that others share, a step is timed slow, never fast, and a
configuration measured once can still be much slower than the machine is. Steps run at the
dry run's batch, which is the real batch unless the miniature holds fewer examples; time per
example is taken not to change with the size of the data. The examples of a real epoch are
those of the set the loader was made from: exact for a set that ``load`` or ``subset`` made, in
proportion for a set made from one (a slice, fixed batches, a set less a class), and estimated
from the latest training set of the same example shape for any other (a synthetic transfer set,
a ``DataLoader``): see :func:`real_examples`. Numbers a dry run prints (errors, accuracies,
claims' verdicts) mean nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

ENV = "KDLAB_DRY_RUN"
REPORT_ENV = "KDLAB_DRY_RUN_REPORT"
STEPS_ENV = "KDLAB_DRY_RUN_STEPS"
STEPS_PER_EPOCH = 2
EPOCHS = 1
# A training set keeps all of its examples up to TRAIN_ROWS, and then only a few more as it grows
# (train_rows); a test set keeps at most TEST_ROWS (every evaluation runs on it).
TRAIN_ROWS = 512
TEST_ROWS = 128
_GROWTH = 20


def active() -> bool:
    """True when ``KDLAB_DRY_RUN`` is set to ``1`` (or ``true``, ``yes``)."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


def steps_per_epoch() -> int:
    """The steps each epoch of a dry run takes: ``KDLAB_DRY_RUN_STEPS`` when set (a GPU check times
    more of them, past the warm-up), else :data:`STEPS_PER_EPOCH`."""
    value = os.environ.get(STEPS_ENV, "").strip()
    if not value:
        return STEPS_PER_EPOCH
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{STEPS_ENV} must be a whole number >= 1, got {value!r}")
    return int(value)


def train_rows(real: int) -> int:
    """The examples a dry run keeps of a training set of ``real`` examples: all of them up to
    :data:`TRAIN_ROWS`, then ``TRAIN_ROWS + round(20 ln(real / TRAIN_ROWS))`` (60,000 -> 607).

    The slow growth keeps sets of different real sizes apart and in the same order (a subset
    stays smaller than its set), and a whole-set pass (teacher logits, P matrices) to a few
    hundred examples.
    """
    if real <= TRAIN_ROWS:
        return real
    return TRAIN_ROWS + round(_GROWTH * math.log(real / TRAIN_ROWS))


def test_rows(real: int) -> int:
    """The examples a dry run keeps of a test set of ``real`` examples: at most :data:`TEST_ROWS`."""
    return min(real, TEST_ROWS)


# id(x) -> (a weak reference to x, the real examples x stands for), for the inputs of every set
# that load() or subset() made in this process; the digests of their rows, when asked for once;
# and, per example shape, the real examples per row of the latest such training set.
_REAL: dict[int, tuple[weakref.ref, int]] = {}
_ROWS: dict[int, frozenset[bytes]] = {}
_LATEST: dict[tuple[int, ...], float] = {}


def _forget(key: int) -> None:
    _REAL.pop(key, None)
    _ROWS.pop(key, None)


def remember(x: Tensor, real: int, latest: bool = True) -> None:
    """Note that the dry-run inputs ``x`` (one row per example) stand for ``real`` examples; with
    ``latest``, ``x`` is also the set that :func:`estimate` goes by for its example shape."""
    key = id(x)
    _forget(key)
    _REAL[key] = (weakref.ref(x, lambda _: _forget(key)), real)
    if latest:
        _LATEST[tuple(x.shape[1:])] = real / max(len(x), 1)


def exact(x: Tensor) -> int | None:
    """The real examples that :func:`remember`-ed inputs ``x`` stand for, else ``None``."""
    entry = _REAL.get(id(x))
    return entry[1] if entry is not None and entry[0]() is x else None


def real_examples(x: Tensor) -> int:
    """The examples of the real run that the dry-run inputs ``x`` (one row per example) stand for.

    Exact for inputs that :func:`remember` saw. Otherwise in proportion to the set they came from:
    the one they are a view of (a slice), else the smallest remembered set that holds every one of
    their rows (fixed batches, a set less a class); for rows that no set holds (a synthetic
    transfer set), :func:`estimate`.
    """
    if exact(x) is not None:
        return exact(x)
    source = getattr(x, "_base", None)
    if source is None or exact(source) is None:
        source = _holding(x)
    if source is not None:
        return max(1, round(len(x) * exact(source) / max(len(source), 1)))
    return estimate(tuple(x.shape[1:]), len(x))


def _digests(x: Tensor) -> frozenset[bytes]:
    rows = x.detach().cpu().reshape(len(x), -1).contiguous().numpy()
    return frozenset(hashlib.blake2b(row.tobytes(), digest_size=12).digest() for row in rows)


def _holding(x: Tensor) -> Tensor | None:
    """The smallest remembered set of ``x``'s example shape that holds every row of ``x``."""
    shape, candidates = tuple(x.shape[1:]), []
    for key, (ref, _) in list(_REAL.items()):
        source = ref()
        if source is not None and tuple(source.shape[1:]) == shape and len(source) >= len(x):
            candidates.append((len(source), key, source))
    if not candidates:
        return None
    rows = _digests(x)
    for _, key, source in sorted(candidates, key=lambda c: c[:2]):
        if key not in _ROWS:
            _ROWS[key] = _digests(source)
        if rows <= _ROWS[key]:
            return source
    return None


def estimate(shape: Iterable[int], rows: int) -> int:
    """The real examples that ``rows`` dry-run examples of ``shape`` stand for when nothing else is
    known: in the proportion of the latest training set of that shape that ``load`` or ``subset``
    made, usually the one they were made from; ``rows`` itself when there is none."""
    return max(1, round(rows * _LATEST.get(tuple(shape), 1.0)))


@dataclass(frozen=True)
class Measurement:
    """What one :func:`kdlab.train.fit` call measured in a dry run, and the real run it stands for.

    ``desc``: the call's label; ``config``: what its speed depends on (the model's class and
    parameter count, the objective, the batch and the example shape), so that the fits of one
    configuration (e.g. one per seed) can share their best speed; ``epochs``: the epochs the call
    asked for (the real run's); ``batch_size``: examples per step; ``steps`` and ``seconds``: the
    steps the dry run took and their time; ``step_seconds`` and ``step_examples``: the fastest of
    those steps per example (the first one usually pays for warming up); ``examples_per_epoch``
    and ``steps_per_epoch``: an epoch of the real run; ``device``: where the steps ran;
    ``peak_memory``: the most bytes of CUDA memory allocated during the steps (``None`` off CUDA).
    """

    desc: str
    config: str
    epochs: int
    batch_size: int
    steps: int
    seconds: float
    step_seconds: float
    step_examples: int
    examples_per_epoch: int
    steps_per_epoch: int
    device: str = "cpu"
    peak_memory: int | None = None

    @property
    def images_per_second(self) -> float:
        """Training examples per second on this machine (the fastest step)."""
        return self.step_examples / self.step_seconds if self.step_seconds > 0 else math.inf

    @property
    def examples(self) -> int:
        """The training examples of the real run: every epoch's."""
        return self.epochs * self.examples_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def configuration(model: Any, objective: Any, batch_size: int, shape: tuple[int, ...]) -> str:
    """What a step's speed depends on, in words: the model's class and size, the objective, the
    batch and the shape of one example."""
    parameters = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else 0
    name = getattr(objective, "__qualname__", type(objective).__name__).replace(".<locals>", "")
    return (f"{type(model).__name__} of {parameters:,} parameters, {name}, batches of {batch_size} "
            f"x {tuple(shape)}")


class NoCut:
    """What :func:`kdlab.train.fit` does outside a dry run: every epoch, every batch, no record."""

    def epochs(self, requested: int) -> int:
        return requested

    def batches(self, train: Iterable) -> Iterable:
        return train

    def finish(self, history: Any, epochs: int, desc: str, train: object, model: Any = None,
               objective: Any = None) -> Measurement | None:
        return None


class Cut(NoCut):
    """In a dry run, :func:`kdlab.train.fit`'s loop runs :data:`EPOCHS` epoch(s) of
    :func:`steps_per_epoch` batches, timing each step (fetching the batch included; on CUDA the
    device is synchronised around it, so the time is the step's, not its launch's); a loader that
    runs out first starts over, and one that yields nothing ends the epoch. :meth:`finish` then fills
    the History up to the requested epochs and records a :class:`Measurement`."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.shape: tuple[int, ...] = ()
        self.device = "cpu"
        self.peak_memory: int | None = None

    def epochs(self, requested: int) -> int:
        return min(requested, EPOCHS)

    def batches(self, train: Iterable) -> Iterator:
        import torch

        batches, this_pass, taken, steps = iter(train), 0, 0, steps_per_epoch()
        while taken < steps:
            started = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                if this_pass == 0:
                    return
                batches, this_pass = iter(train), 0
                continue
            first = batch[0] if isinstance(batch, (tuple, list)) else batch
            cuda = first.is_cuda
            if cuda and not self.times:
                torch.cuda.reset_peak_memory_stats(first.device)
            yield batch
            if cuda:
                torch.cuda.synchronize(first.device)
                self.peak_memory = int(torch.cuda.max_memory_allocated(first.device))
            self.times.append(time.perf_counter() - started)
            self.sizes.append(int(first.shape[0]))
            self.shape = tuple(first.shape[1:])
            self.device = str(first.device)
            this_pass, taken = this_pass + 1, taken + 1

    def finish(self, history: Any, epochs: int, desc: str, train: object, model: Any = None,
               objective: Any = None) -> Measurement | None:
        """Repeat the last row of ``history`` (a :class:`kdlab.train.History`) up to ``epochs``
        rows, numbered on, so that code reading epoch k of it runs as after the real run; and
        record the :class:`Measurement` of the steps taken (``None`` if none were)."""
        while history.epochs and len(history.epochs) < epochs:
            history.epochs.append({**history.epochs[-1], "epoch": float(len(history.epochs) + 1)})
        if not self.times:
            return None
        batch_size = int(getattr(train, "batch_size", None) or self.sizes[0])
        source = (*getattr(train, "tensors", ()), None)[0]  # the inputs of a TensorLoader, FixedBatches
        if source is not None and tuple(source.shape[1:]) == self.shape:
            examples = real_examples(source)
        elif source is not None and tuple(source.shape[2:]) == self.shape:  # (batches, batch, ...)
            examples = real_examples(source.reshape(-1, *self.shape))
        else:  # any other loader (a DataLoader): its batches, all of them full
            rows = len(train) * batch_size if hasattr(train, "__len__") else sum(self.sizes)
            examples = estimate(self.shape, rows)
        fastest = min(range(len(self.times)), key=lambda i: self.times[i] / self.sizes[i])
        measurement = Measurement(
            desc=desc, config=configuration(model, objective, batch_size, self.shape), epochs=epochs,
            batch_size=batch_size, steps=len(self.times), seconds=sum(self.times),
            step_seconds=self.times[fastest], step_examples=self.sizes[fastest], examples_per_epoch=examples,
            steps_per_epoch=math.ceil(examples / batch_size), device=self.device,
            peak_memory=self.peak_memory,
        )
        _MEASURED.append(measurement)
        report = os.environ.get(REPORT_ENV)
        if report:
            with open(report, "a") as f:
                f.write(json.dumps(measurement.to_dict()) + "\n")
        return measurement


_MEASURED: list[Measurement] = []


def cut() -> NoCut:
    """A :class:`Cut` in a dry run, else a :class:`NoCut`: :func:`kdlab.train.fit` asks it what to run."""
    return Cut() if active() else NoCut()


def measured() -> list[Measurement]:
    """Every measurement this process made, in order."""
    return list(_MEASURED)


def reset() -> None:
    """Forget every remembered set and every measurement of this process (for tests)."""
    _REAL.clear()
    _ROWS.clear()
    _LATEST.clear()
    _MEASURED.clear()


def read(path: str | os.PathLike) -> list[Measurement]:
    """The measurements of a report file (one JSON object a line); none if it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [Measurement(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Configuration:
    """The fits of one configuration (:attr:`Measurement.config`): how many, the first one's label,
    the training examples of their real runs, their best speed here and so their projected time,
    and the most CUDA memory any of them allocated (``None`` off CUDA)."""

    config: str
    desc: str
    fits: int
    examples: int
    images_per_second: float
    peak_memory: int | None = None

    @property
    def projected_seconds(self) -> float:
        return self.examples / self.images_per_second

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "projected_seconds": self.projected_seconds}


@dataclass(frozen=True)
class Summary:
    """A dry run's measurements added up: ``fits`` calls of :func:`kdlab.train.fit` that took
    ``steps`` steps in ``seconds``, and their ``configurations``, the heaviest first, whose
    projected times add up to ``projected_seconds`` of training in the real run."""

    fits: int
    steps: int
    seconds: float
    configurations: tuple[Configuration, ...]
    device: str = "cpu"

    @property
    def projected_seconds(self) -> float:
        return sum(c.projected_seconds for c in self.configurations)

    def to_dict(self) -> dict[str, Any]:
        return {"fits": self.fits, "steps": self.steps, "seconds": self.seconds, "device": self.device,
                "projected_seconds": self.projected_seconds,
                "configurations": [c.to_dict() for c in self.configurations]}


def summary(measurements: Iterable[Measurement] | str | os.PathLike) -> Summary:
    """Add up ``measurements`` (or a report file's). The fits of one configuration share the best
    speed that any of them measured (steps on a machine that others share are timed slow, never
    fast), and the projected time of the real run is every fit's examples at that speed."""
    if isinstance(measurements, (str, os.PathLike)):
        measurements = read(measurements)
    measurements = list(measurements)
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(m.config, []).append(m)
    configurations = [
        Configuration(config=config, desc=group[0].desc, fits=len(group),
                      examples=sum(m.examples for m in group),
                      images_per_second=max(m.images_per_second for m in group),
                      peak_memory=max((m.peak_memory for m in group if m.peak_memory is not None),
                                      default=None))
        for config, group in groups.items()
    ]
    return Summary(
        fits=len(measurements),
        steps=sum(m.steps for m in measurements),
        seconds=sum(m.seconds for m in measurements),
        configurations=tuple(sorted(configurations, key=lambda c: -c.projected_seconds)),
        device=measurements[0].device if measurements else "cpu",
    )


def duration(seconds: float) -> str:
    """``seconds`` for a reader: ``"42 s"``, ``"17 min"``, ``"3.2 h"``, ``"4.5 days"``."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def describe(configuration: Configuration) -> str:
    """One configuration in a line: its first fit, how many fits, its speed here, its projected time."""
    c = configuration
    more = f" and {c.fits - 1} more" if c.fits > 1 else ""
    memory = "" if c.peak_memory is None else f", peak {c.peak_memory / 2**30:.2f} GiB"
    return (f"{c.desc!r}{more} ({c.config}): {c.examples:,} examples at {c.images_per_second:,.0f} "
            f"images/s{memory} -> {duration(c.projected_seconds)}")
