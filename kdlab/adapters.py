"""Turning a user's data and models into kdlab's form, for :mod:`kdlab.api`.

kdlab's recipes train on :class:`~kdlab.data.Tensors` held in memory, with the teacher's outputs
computed once and cached (DESIGN.md, speed rules). A user's data may instead be a
``torch.utils.data.Dataset`` or ``DataLoader`` whose transforms augment every epoch differently;
then cached outputs would be stale, so the teacher runs on each batch, in eval mode under
``torch.inference_mode()`` (:func:`with_teacher`), and training still goes through
:func:`kdlab.train.fit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from kdlab import _checks, metrics
from kdlab.data import Tensors
from kdlab.train import Objective

Data = Tensors | tuple[Tensor, Tensor] | Dataset | DataLoader
Batches = Iterable[tuple[Tensor, ...]]


def as_tensors(data: Any, name: str = "train") -> Tensors | None:
    """``data`` as :class:`~kdlab.data.Tensors` when it already is tensors in memory, else ``None``.

    ``Tensors`` (a :class:`~kdlab.data.Split` part), an ``(x, y)`` pair of tensors, or a plain
    ``TensorDataset`` of two tensors count as tensors (nothing can augment them); any other
    ``Dataset`` or a ``DataLoader`` returns ``None`` (it is read batch by batch).
    """
    if isinstance(data, Tensors):
        return data
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return Tensors(*data.tensors)
    if isinstance(data, (tuple, list)):
        if len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
            raise TypeError(f"{name} as a tuple must be (x, y), two tensors, got {len(data)} item(s)")
        return Tensors(data[0], data[1])
    if isinstance(data, (Dataset, DataLoader)):
        return None
    raise TypeError(
        f"{name} must be kdlab Tensors (a Split part), an (x, y) pair of tensors, a torch Dataset or a "
        f"DataLoader, got {type(data).__name__}"
    )


def as_loader(data: Dataset | DataLoader, batch_size: int, seed: int) -> DataLoader:
    """A ``DataLoader`` over ``data``: itself when it is one, else shuffled batches drawn by ``seed``."""
    if isinstance(data, DataLoader):
        return data
    _checks.at_least("batch_size", batch_size, 1)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)


def materialize(data: Data, name: str = "test") -> Tensors:
    """Every example of ``data`` as one :class:`~kdlab.data.Tensors` (one pass over a loader).

    For a test set, whose transforms should not augment: one pass fixes whatever they drew.
    """
    tensors = as_tensors(data, name)
    if tensors is not None:
        return tensors
    batches = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
    xs, ys = [], []
    for k, batch in enumerate(batches):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError(f"{name} must yield (x, y) batches, batch {k} is a {type(batch).__name__}")
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]))
    if not xs:
        raise ValueError(f"{name} holds no examples")
    return Tensors(torch.cat(xs), torch.cat(ys))


def num_classes(model: nn.Module, example: Tensor, role: str) -> int:
    """The number of classes ``model`` predicts on ``example`` (a small batch), in eval mode."""
    logits = metrics.predict(model, example)
    if logits.dim() != 2:
        raise ValueError(
            f"the {role} must return logits of shape (batch, classes), got shape {tuple(logits.shape)}"
        )
    return int(logits.shape[1])


def check_classes(teacher: nn.Module, student: nn.Module, example: Tensor) -> int:
    """The shared class count of ``teacher`` and ``student`` on ``example``; ``ValueError`` if they differ."""
    teacher_classes = num_classes(teacher, example, "teacher")
    student_classes = num_classes(student, example, "student")
    if teacher_classes != student_classes:
        raise ValueError(
            f"teacher and student must predict the same number of classes, got {teacher_classes} "
            f"(teacher) and {student_classes} (student)"
        )
    return teacher_classes


def first_batch(data: Tensors | DataLoader | Dataset) -> tuple[Tensor, Tensor]:
    """Two examples ``(x, y)`` of ``data``, to probe models (shapes, class counts)."""
    if isinstance(data, Tensors):
        return data.x[:2], data.y[:2]
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=2)
    batch = next(iter(loader), None)
    if batch is None:
        raise ValueError("train holds no examples")
    return torch.as_tensor(batch[0])[:2], torch.as_tensor(batch[1])[:2]


def with_teacher(teacher: nn.Module, objective: Objective, classes: int, labels: bool = True) -> Objective:
    """An objective on plain ``(x, y)`` batches that computes the teacher's logits per batch and hands
    ``(x, y, teacher_logits)`` (or ``(x, teacher_logits)`` with ``labels=False``) to ``objective``.

    The teacher runs in eval mode (its batch-norm statistics and dropout stay fixed) under
    ``torch.inference_mode()``: for augmented data, where caching would be wrong. Each batch's
    labels are checked against ``classes``. Shapes: x (batch, ...), y (batch,) -> teacher_logits
    (batch, classes).
    """
    def distil(model: nn.Module, batch: tuple[Tensor, ...]) -> Any:
        x, y = batch[0], batch[1]
        _checks.labels("train labels", y, x.shape[0], classes)
        teacher.to(x.device).eval()
        with torch.inference_mode():
            teacher_logits = teacher(x).float()
        # An inference tensor cannot be saved for backward; a clone outside the mode is an ordinary one.
        teacher_logits = teacher_logits.clone()
        return objective(model, (x, y, teacher_logits) if labels else (x, teacher_logits))

    return distil


class CheckedLabels:
    """A loader whose ``(x, y, ...)`` batches have their labels checked to lie in ``[0, classes)`` as
    they arrive (a loader is never read whole); its length is the loader's."""

    def __init__(self, loader: Iterable[tuple[Tensor, ...]], classes: int) -> None:
        self.loader = loader
        self.classes = classes

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Any:
        for batch in self.loader:
            _checks.labels("train labels", batch[1], batch[0].shape[0], self.classes)
            yield batch
