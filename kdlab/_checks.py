"""Argument validation shared by the public API.

Every message names the argument, the value it got and what would be valid, so that a
mistake is fixed from the message alone.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class NotANumber(TypeError, ValueError):
    """A value that should be a number is not one: a ``TypeError``, and a ``ValueError`` as these checks
    raised before, so code catching either still does."""


def number(name: str, value: Any) -> float:
    """Reject a value that is not a real number (a string such as ``"4"``, a bool, None)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise NotANumber(f"{name} must be a number, got {value!r} (a {type(value).__name__})")
    return value


def positive(name: str, value: float) -> float:
    """Reject ``value <= 0`` (and NaN); a value that is not a number is a ``TypeError``."""
    number(name, value)
    if not (value > 0 and not math.isnan(value)):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def finite_positive(name: str, value: float) -> float:
    """Reject a value that is not a finite number > 0 (NaN and infinity included)."""
    number(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return positive(name, value)


def in_range(name: str, value: float, low: float, high: float) -> float:
    """Reject values outside the closed interval [low, high]; a non-number is a ``TypeError``."""
    number(name, value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return value


def at_least(name: str, value: int, minimum: int) -> int:
    """Reject integers below ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def choice(name: str, value: Any, valid: Iterable[Any]) -> Any:
    """Reject a value that is not one of ``valid``."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    return value


def float_tensor(
    name: str, tensor: Tensor, shape_doc: str, min_dim: int, max_dim: int | None = None
) -> Tensor:
    """Require a floating tensor with ``min_dim`` to ``max_dim`` dimensions (``shape_doc`` names
    them in the message, e.g. ``"(batch, c, h, w)"``); ``max_dim=None`` sets no upper bound."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() < min_dim or (max_dim is not None and tensor.dim() > max_dim):
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {tensor.dtype}")
    return tensor


def logits(name: str, tensor: Tensor) -> Tensor:
    """Require a floating (batch, classes) tensor."""
    return float_tensor(name, tensor, "(batch, classes)", 2, 2)


def same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Require two tensors of one shape (for example student and teacher logits)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def labels(name: str, tensor: Tensor, batch: int, classes: int) -> Tensor:
    """Require integer class labels of shape (batch,) with values in [0, classes)."""
    if tensor.dim() != 1 or tensor.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},), got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point():
        raise TypeError(f"{name} must hold integer class indices, got dtype {tensor.dtype}")
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= classes):
        raise ValueError(
            f"{name} must lie in [0, {classes - 1}] for {classes} classes, "
            f"got values in [{int(tensor.min())}, {int(tensor.max())}]"
        )
    return tensor


def finite(name: str, tensor: Tensor) -> Tensor:
    """Reject tensors that contain NaN or infinity."""
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")
    return tensor


def finite_rows(name: str, tensor: Tensor, shown: int = 10, within: str = "") -> Tensor:
    """Reject a floating tensor of examples (rows) holding NaN or infinity, naming how many values and
    which rows (the first ``shown``; ``within`` follows them, e.g. ``" of the batch"``):
    ``train.x holds 3 NaN/inf values at rows [4, 9, 17]``."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return tensor
    bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1))
    count = int(bad.sum())
    if count:
        rows = bad.any(dim=1).nonzero().flatten().tolist()
        listed = f"{rows[:shown]}"[:-1] + (", ...]" if len(rows) > shown else "]")
        raise ValueError(
            f"{name} holds {count} NaN/inf value{'s' if count > 1 else ''} at rows {listed}{within}; "
            "clean or drop those examples before training"
        )
    return tensor
