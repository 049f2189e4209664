"""The checkpoints of :func:`kdlab.train.fit`: all that a resumed run needs, and what run wrote it.

A checkpoint holds the weights, the optimiser's, schedule's, loader's and random generators'
states and the History after a number of epochs, written atomically. It also holds the run's
*signature*: what determines the run besides its state (the objective with every value it closes
over, the training data by content, the epochs and steps an epoch, the optimiser and its rate, the
schedule). Resuming is only sound into the same run, so a checkpoint whose signature differs, one
written by another method, on other data or for another number of epochs, is refused with the
parts that differ named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdlab import _io

# The signature of a part that cannot be read by content (a user's own objective): never compared.
UNKEYED = "(not compared: the user's own code)"


def signature(objective: Callable[..., Any], train: object, epochs: int, steps_per_epoch: int,
              optimizer: torch.optim.Optimizer, schedule: object) -> dict[str, str]:
    """The parts that make a run, each as a short digest or a value: ``objective`` (a kdlab
    objective by its code and closure, with the teacher and its logits by content; a user's
    function as :data:`UNKEYED`, not compared: its code is not kdlab's to read), ``data`` (a
    TensorLoader's tensors by content; another loader by its type and length), ``epochs``,
    ``steps_per_epoch``, ``optimizer`` (its type, rate and weight decay) and ``schedule``."""
    from kdlab import cache  # kdlab.cache imports kdlab.train, which imports this module

    def digest(value: Any) -> str:
        try:
            return hashlib.sha256(cache.fingerprint(value).encode()).hexdigest()[:16]
        except TypeError:  # a user's function or object: nothing kdlab can compare
            return UNKEYED

    tensors = getattr(train, "tensors", None)
    data = digest(list(tensors)) if tensors is not None else f"{type(train).__qualname__} of {len(train)}"
    group = optimizer.param_groups[0]
    return {
        "objective": digest(objective),
        "data": data,
        "epochs": str(epochs),
        "steps_per_epoch": str(steps_per_epoch),
        "optimizer": f"{type(optimizer).__name__}, lr {group.get('initial_lr', group['lr'])}, "
                     f"weight decay {group.get('weight_decay', 0)}",
        "schedule": repr(schedule),
    }


def save(path: Path, state: dict[str, Any], run: dict[str, str]) -> None:
    """Write ``state`` (see :func:`kdlab.train.fit`) and the run's signature atomically at ``path``."""
    _io.atomic_torch_save({**state, "run": run}, path)


def load(path: Path, model: nn.Module, where: torch.device, run: dict[str, str]) -> dict[str, Any]:
    """The checkpoint at ``path``, its weights loaded into ``model``; a ``RuntimeError`` naming the path
    when it cannot be read or does not fit ``model``, or when it was written by another run than
    ``run`` (the parts that differ named)."""
    try:
        state = torch.load(path, map_location=where, weights_only=False)
        model.load_state_dict(state["model"])
    except Exception as error:
        raise RuntimeError(
            f"checkpoint {str(path)!r} cannot be resumed ({error}); delete it or pass resume=False"
        ) from error
    written = state.get("run") or {}
    differ = [name for name in run if name in written and written[name] != run[name]
              and UNKEYED not in (written[name], run[name])]
    if differ:
        shown = "; ".join(f"{name}: {written[name]} there, {run[name]} here" for name in differ)
        raise RuntimeError(
            f"checkpoint {str(path)!r} was written by another run ({shown}); resuming it would mix two runs: "
            "give this run its own checkpoint path, or delete that file"
        )
    return state
