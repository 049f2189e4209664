"""What every recipe does: seed, build, batch, fit, and (optionally) cache the trained model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import cache, runtime, train
from kdlab.data import TensorLoader, Tensors
from kdlab.train import History, Objective


def train_model(
    make_model: Callable[[], nn.Module],
    data: Tensors | tuple[Tensor, ...] | Iterable[tuple[Tensor, ...]],
    objective: Objective = train.cross_entropy,
    *,
    test: Tensors | tuple[Tensor, Tensor] | None = None,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    schedule: str | None = None,
    device: str | torch.device | None = None,
    cache_parts: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    desc: str = "train",
) -> tuple[nn.Module, History]:
    """Seed with ``seed``, build ``make_model()``, batch ``data`` and :func:`~kdlab.train.fit`.

    ``data`` is the loader's tensors, ``Tensors``, ``(x, y)`` or ``(x, y, teacher_logits, ...)``,
    shuffled together into a :class:`~kdlab.data.TensorLoader` of ``batch_size``; or a loader
    already made (a ``DataLoader``, or any iterable of batches), used as it is. With
    ``cache_parts`` (a dict describing the objective's knobs), the trained model comes from
    :func:`kdlab.cache.trained`: keyed by the model's architecture (its ``repr``), the content of
    every tensor, every knob here and ``cache_parts`` (so it needs tensors, not a loader).
    """
    where = runtime.device(device)
    tensors: tuple[Tensor, ...] | None = None
    if isinstance(data, Tensors):
        tensors = data.tensors
    elif isinstance(data, (tuple, list)):
        tensors = tuple(data)
    elif cache_parts is not None:
        raise ValueError(
            f"cache_parts needs the training data as tensors (the cache key holds their content), got a "
            f"{type(data).__name__}; pass Tensors or a tuple of tensors, or leave cache_parts None"
        )

    def build() -> nn.Module:
        runtime.seed_everything(seed)
        return make_model()

    def run(model: nn.Module) -> History:
        if tensors is None:
            loader = data
        else:
            loader = TensorLoader(*tensors, batch_size=batch_size, seed=seed, device=where)
        return train.fit(
            model,
            loader,
            objective,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            schedule=schedule,
            test=test,
            device=where,
            progress=progress,
            desc=desc,
        )

    if cache_parts is None:
        model = build()
        return model, run(model)
    parts = {
        "architecture": repr(build()),
        "data": cache.data_digest(tensors),
        "test": cache.data_digest(test),
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "schedule": schedule,
        **cache_parts,
    }
    model, history = cache.trained(build, run, name="model", **parts)
    return model.to(where), history
