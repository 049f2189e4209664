"""The book's shared teachers: trained once on a data set and loaded by every chapter that uses them.

Chapters that call :func:`teacher` with the same split and knobs share one cache entry, so the
whole book trains each teacher once (the budget is the book's, not each chapter's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kdlab import _checks, models
from kdlab.data import Split
from kdlab.methods.common import Result, train_model


def _hinton_mlp() -> nn.Module:
    # Hinton et al. (2015), sec. 3: 784-1200-1200-10, dropout on the hidden units and 20 % on the
    # inputs, max-norm on the incoming weights (Srivastava et al. 2014 use c between 3 and 4).
    return models.mlp((784, 1200, 1200, 10), dropout=0.5, input_dropout=0.2, max_norm=3.5)


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "lenet": lambda: models.lenet(models.TEACHER_WIDTHS),
    "hinton": _hinton_mlp,
}


def teacher(
    split: Split,
    architecture: str = "lenet",
    *,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    schedule: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Result:
    """A teacher trained with Adam on ``split.train`` (evaluated on ``split.test``), always cached:
    every chapter that asks for the same teacher loads the one entry.

    ``"lenet"``: tsneNet's conv net (conv 32-64, fc 512), which converges on MNIST in about
    three epochs; ``"hinton"``: Hinton et al.'s cumbersome 1200-1200 MLP with dropout and
    max-norm, which needs a long schedule (``full`` profiles: ``schedule="cosine"``, hundreds of
    epochs).
    """
    _checks.choice("architecture", architecture, ARCHITECTURES)
    return train_model(
        ARCHITECTURES[architecture],
        split.train,
        test=split.test,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule=schedule,
        seed=seed,
        device=device,
        cache=True,
        desc=f"teacher {architecture}",
    )
