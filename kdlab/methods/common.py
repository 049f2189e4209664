"""What every recipe does: seed, build, batch, fit, and (optionally) cache the trained model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import cache, runtime, train
from kdlab.data import TensorLoader, Tensors
from kdlab.train import History, Objective


def train_model(
    make_model: Callable[[], nn.Module],
    tensors: Tensors | tuple[Tensor, ...],
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
    """Seed with ``seed``, build ``make_model()``, batch ``tensors`` and :func:`~kdlab.train.fit`.

    ``tensors`` are the loader's tensors, ``(x, y)`` or ``(x, y, teacher_logits, ...)``, shuffled
    together. With ``cache_parts`` (a dict describing the objective's knobs), the trained model
    comes from :func:`kdlab.cache.trained`: keyed by the model's architecture (its ``repr``), the
    content of every tensor, every knob here and ``cache_parts``.
    """
    where = runtime.device(device)
    tensors = tensors.tensors if isinstance(tensors, Tensors) else tuple(tensors)

    def build() -> nn.Module:
        runtime.seed_everything(seed)
        return make_model()

    def run(model: nn.Module) -> History:
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
        "data": [cache.tensor_digest(t) for t in tensors],
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
