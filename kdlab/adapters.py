"""Turning a user's data and models into kdlab's form, for :mod:`kdlab.api`.

kdlab's recipes train on :class:`~kdlab.data.Tensors` held in memory, with the teacher's outputs
computed once and cached (DESIGN.md, speed rules). A user's data may instead be a
``torch.utils.data.Dataset`` or ``DataLoader`` whose transforms augment every epoch differently;
then cached outputs would be stale, so the teacher runs on each batch, in eval mode under
``torch.inference_mode()`` (:func:`with_teacher`), and training still goes through
:func:`kdlab.train.fit`. A loader is never read whole, so its batches are checked as they arrive
(:class:`CheckedBatches`); tensors in memory are checked once (:func:`check_tensors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from kdlab import _checks, inputs, metrics
from kdlab.data import Tensors
from kdlab.train import Objective

Data = Tensors | tuple[Tensor, Tensor] | tuple[np.ndarray, np.ndarray] | Dataset | DataLoader
Batches = Iterable[tuple[Tensor, ...]]


def logits_of(output: Any, select: Callable[[Any], Tensor] | None = None) -> Tensor:
    """The logits in a model's ``output``: ``output`` itself when it is a tensor (a selector is
    then not called, so one ``select`` serves a teacher and a student of which only one returns
    more than logits); else ``select(output)`` when given; its ``logits`` (a Hugging Face
    ``ModelOutput``, or a mapping with a ``"logits"`` key); or the first tensor of a tuple or list
    (models that return ``(logits, features)``). Anything else is a ``TypeError`` that says what to
    pass."""
    if isinstance(output, Tensor):
        return output
    found = select(output) if select is not None else output
    if select is None and not isinstance(found, Tensor):
        if isinstance(found, Mapping) and "logits" in found:
            found = found["logits"]
        elif not isinstance(found, Mapping) and isinstance(getattr(found, "logits", None), Tensor):
            found = found.logits
        elif isinstance(found, (tuple, list)):
            found = next((item for item in found if isinstance(item, Tensor)), found)
    if not isinstance(found, Tensor):
        what = "output selector" if select is not None else "model"
        raise TypeError(
            f"the {what} must give the logits as a tensor (batch, classes), got {type(found).__name__}; "
            "a model returning a dict or ModelOutput needs a 'logits' entry, a tuple a tensor first, or pass "
            "output=<a function from the model's output to its logits>"
        )
    return found


def _logits_hook(select: Callable[[Any], Tensor] | None) -> Callable[..., Tensor]:
    def hook(module: nn.Module, args: Any, output: Any) -> Tensor:
        return logits_of(output, select)

    hook.kdlab_logits = True  # type: ignore[attr-defined]
    return hook


def select_logits(model: nn.Module, select: Callable[[Any], Tensor] | None = None) -> nn.Module:
    """Make ``model`` return :func:`logits_of` its output, through a forward hook, so kdlab's
    recipes see a tensor of logits from a model that returns a ``ModelOutput``, a dict or a tuple
    (Hugging Face transformers, timm's feature models); its layers keep their names, so hints and
    FSP pairs still name the model's own layers. Returns ``model``; :func:`restore_output` undoes it."""
    if not any(getattr(h, "kdlab_logits", False) for h in model._forward_hooks.values()):
        model.register_forward_hook(_logits_hook(select))
    return model


def restore_output(model: nn.Module) -> nn.Module:
    """Remove the hook of :func:`select_logits` from ``model``: it returns its own outputs again."""
    for key, hook in list(model._forward_hooks.items()):
        if getattr(hook, "kdlab_logits", False):
            del model._forward_hooks[key]
    return model


def as_tensors(data: Any, name: str = "train") -> Tensors | None:
    """``data`` as :class:`~kdlab.data.Tensors` when it already is tensors in memory, else ``None``.

    ``Tensors`` (a :class:`~kdlab.data.Split` part), an ``(x, y)`` pair of tensors or NumPy arrays
    (converted with ``torch.from_numpy``, dtypes kept), a dict of tensors read as one dict batch
    (:func:`kdlab.inputs.read`: ``{"input_ids": ..., "attention_mask": ..., "labels": ...}``) or a
    plain ``TensorDataset`` of two tensors count as tensors (nothing can augment them); any other
    ``Dataset`` or a ``DataLoader`` returns ``None`` (it is read batch by batch).
    """
    if isinstance(data, Tensors):
        return data
    if isinstance(data, Mapping):
        return Tensors(*inputs.read(data, name))
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return Tensors(*data.tensors)
    if isinstance(data, list) and data and isinstance(data[0], (tuple, list, Mapping)):
        return None  # a list of examples, (x, y) or dicts: a map-style dataset, read batch by batch
    if isinstance(data, (tuple, list)):
        kinds = [type(t).__name__ for t in data]
        if len(data) != 2 or not all(isinstance(t, (Tensor, np.ndarray)) for t in data):
            raise TypeError(
                f"{name} as a tuple must be (x, y), two tensors or NumPy arrays, got {len(data)} item(s) "
                f"of types {kinds}"
            )
        x, y = (torch.from_numpy(t) if isinstance(t, np.ndarray) else t for t in data)
        return Tensors(x, y)
    if isinstance(data, (Dataset, DataLoader)):
        return None
    raise TypeError(
        f"{name} must be kdlab Tensors (a Split part), an (x, y) pair of tensors, a dict of tensors "
        f"({{'input_ids': ..., 'labels': ...}}), a torch Dataset or a DataLoader, got {type(data).__name__}"
    )


def as_loader(data: Dataset | DataLoader, batch_size: int, seed: int) -> DataLoader:
    """A ``DataLoader`` over ``data``: itself when it is one, else shuffled batches drawn by ``seed``."""
    if isinstance(data, DataLoader):
        return data
    _checks.at_least("batch_size", batch_size, 1)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)


def materialize(data: Data, name: str = "test", keys: Sequence[str] | None = None) -> Tensors:
    """Every example of ``data`` as one :class:`~kdlab.data.Tensors` (one pass over a loader); dict
    batches must have the input ``keys`` when given (those the models take).

    For a test set, whose transforms should not augment: one pass fixes whatever they drew. Batches
    whose inputs differ in shape (padded each to its own longest) are refused: pad the whole set to
    one length.
    """
    tensors = as_tensors(data, name)
    if tensors is not None:
        if isinstance(data, Mapping):
            inputs.read(data, name, keys)  # the same input keys as training's
        return tensors
    batches = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
    xs, ys = [], []
    for k, batch in enumerate(batches):
        batch = as_pair(batch, name, k, keys)
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]))
        if xs[-1].shape[1:] != xs[0].shape[1:]:
            raise ValueError(
                f"{name} batch {k} has inputs of shape {tuple(xs[-1].shape)}, batch 0 {tuple(xs[0].shape)}: "
                f"kdlab reads {name} once into one tensor, so pad every example to one length (a tokenizer's "
                "padding='max_length')"
            )
    if not xs:
        raise ValueError(f"{name} holds no examples")
    return Tensors(torch.cat(xs), torch.cat(ys))


def as_pair(batch: Any, name: str, k: int, keys: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Batch ``k`` of ``name`` as a tuple ``(x, y, ...)``: a tuple or list as it is, a dict batch
    (``{"pixel_values": x, "labels": y}``, ``{"input_ids": ..., "attention_mask": ..., "labels": ...}``)
    as ``(x, y)`` by :func:`kdlab.inputs.read` (``keys``: the input keys every batch must have)."""
    if isinstance(batch, Mapping):
        return inputs.read(batch, f"{name} batch {k}", keys)
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"{name} must yield (x, y) batches, batch {k} is a {type(batch).__name__}")
    return tuple(batch)


def input_keys(data: Any) -> tuple[str, ...] | None:
    """The input keys of ``data``'s first batch when it is a dict (a dict of tensors, or a ``Dataset`` or
    ``DataLoader`` of dicts), for :func:`kdlab.inputs.keyword_inputs`; ``None`` for tuple batches."""
    if isinstance(data, Mapping):
        return inputs.keys_of(data, "train")[0]
    if not isinstance(data, (Dataset, DataLoader, list)) or isinstance(data, TensorDataset):
        return None
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=2)
    batch = next(iter(loader), None)
    return inputs.keys_of(batch, "train batch 0")[0] if isinstance(batch, Mapping) else None


def check_tensors(tensors: Tensors, name: str) -> Tensors:
    """Refuse an empty set and NaN or infinite inputs, naming ``name`` (``"train"``, ``"test"``) and the
    rows: ``train.x holds 3 NaN/inf values at rows [4, 9, 17]``. Returns ``tensors`` with integer labels
    of another width (int32 from NumPy) as int64, which the losses take."""
    if len(tensors) == 0:
        raise ValueError(f"{name} holds no examples (x has shape {tuple(tensors.x.shape)})")
    _checks.finite_rows(f"{name}.x", tensors.x)
    return Tensors(tensors.x, long_labels(tensors.y))


def long_labels(y: Any) -> Any:
    """Integer labels ``y`` as int64 (the losses' dtype); anything else as it is (checked later)."""
    if isinstance(y, Tensor) and not y.is_floating_point() and y.dtype not in (torch.int64, torch.bool):
        return y.long()
    return y


def check_dtype(name: str, x: Tensor, models: Mapping[str, nn.Module]) -> None:
    """Refuse inputs the models cannot take: uint8 images (convert with ``.float() / 255``) and
    floating inputs of another dtype than a model's parameters (both dtypes named)."""
    if x.dtype == torch.uint8:
        raise TypeError(
            f"{name} has dtype torch.uint8 (raw image bytes?), which the models cannot take; convert it "
            "to floats in [0, 1] with x.float() / 255"
        )
    for role, model in models.items():
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        if x.is_floating_point() and dtype is not None and x.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the {role}'s parameters are {dtype}; convert the data "
                f"with x.to({dtype}) (or the {role} with .to({x.dtype}))"
            )


def num_classes(model: nn.Module, example: Tensor, role: str) -> int:
    """The number of classes ``model`` predicts on ``example`` (a small batch), in eval mode."""
    logits = metrics.predict(model, example)
    if logits.dim() != 2:
        raise ValueError(
            f"the {role} must return logits of shape (batch, classes), got shape {tuple(logits.shape)}"
        )
    return int(logits.shape[1])


def first_batch(data: Tensors | DataLoader | Dataset) -> tuple[Tensor, Tensor]:
    """Two examples ``(x, y)`` of ``data``, to probe models (shapes, class counts)."""
    if isinstance(data, Tensors):
        return data.x[:2], data.y[:2]
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=2)
    batch = next(iter(loader), None)
    if batch is None:
        raise ValueError("train holds no examples")
    batch = as_pair(batch, "train", 0)
    return torch.as_tensor(batch[0])[:2], torch.as_tensor(batch[1])[:2]


def with_teacher(teacher: nn.Module, objective: Objective, classes: int, labels: bool = True) -> Objective:
    """An objective on plain ``(x, y)`` batches that computes the teacher's logits per batch and hands
    ``(x, y, teacher_logits)`` (or ``(x, teacher_logits)`` with ``labels=False``) to ``objective``.

    The teacher runs in eval mode (its batch-norm statistics and dropout stay fixed) under
    ``torch.inference_mode()``: for augmented data, where caching would be wrong; its own mode is
    restored after each batch. Each batch's labels are checked against ``classes``; with
    ``labels=False`` a batch may be ``(x,)`` alone (a transfer set without labels). Shapes: x
    (batch, ...), y (batch,) -> teacher_logits (batch, classes).
    """
    def distil(model: nn.Module, batch: tuple[Tensor, ...]) -> Any:
        x = batch[0]
        if labels:
            _checks.labels("train labels", batch[1], x.shape[0], classes)
        (teacher_logits,) = metrics.frozen_outputs(teacher.to(x.device), lambda t: [t(x)])
        return objective(model, (x, batch[1], teacher_logits) if labels else (x, teacher_logits))

    return distil


class CheckedBatches:
    """A loader whose batches are checked as they arrive (a loader is never read whole): each is an
    ``(x, y, ...)`` tuple, or a dict batch read as ``(x, y)`` (:func:`as_pair`, with the input ``keys``
    the models take), its ``x`` holds no
    NaN or infinity (``train batch 3: x holds 2 NaN/inf values at rows [0, 5] of the batch``) and its
    labels lie in ``[0, classes)``. Its length
    is the loader's."""

    def __init__(
        self, loader: Iterable[tuple[Tensor, ...]], classes: int, name: str = "train",
        keys: Sequence[str] | None = None,
    ) -> None:
        self.loader = loader
        self.classes = classes
        self.name = name
        self.keys = keys

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        for k, batch in enumerate(self.loader):
            batch = as_pair(batch, self.name, k, self.keys)
            x = torch.as_tensor(batch[0])
            _checks.finite_rows(f"{self.name} batch {k}: x", x, within=" of the batch")
            _checks.labels(f"{self.name} labels", batch[1], x.shape[0], self.classes)
            yield (batch[0], long_labels(torch.as_tensor(batch[1])), *batch[2:])


# The name of CheckedBatches before it checked more than labels.
CheckedLabels = CheckedBatches


class ExportedModule(nn.Module):
    """A ``torch.export`` program's module (``torch.export.load(path).module()``) as an ordinary
    module, usable as a teacher: such a module refuses ``train()`` and ``eval()`` (its mode was fixed
    when it was exported, as eval mode for :func:`kdlab.export.export_program`), so here both are
    no-ops. Its layers are ``program``'s, named ``program.<name>``; forward hooks on them do not
    fire (the program is one flat graph), so it cannot give intermediate features."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program
        self.training = False

    def train(self, mode: bool = True) -> ExportedModule:
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.program(x)


def as_teacher(teacher: Any) -> nn.Module:
    """``teacher`` as a module: a ``torch.export.ExportedProgram``, or the module it gives (whose
    ``train()``/``eval()`` refuse), becomes an :class:`ExportedModule`; another module is itself."""
    if isinstance(teacher, torch.export.ExportedProgram):
        teacher = teacher.module()
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
    # ExportedProgram.module() replaces train/eval on the instance by methods that raise.
    if "train" in vars(teacher) or "eval" in vars(teacher):
        return ExportedModule(teacher)
    return teacher
