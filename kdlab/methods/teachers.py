"""The book's shared teachers: trained once on a data set and loaded by every chapter that uses them.

Chapters that call :func:`teacher` with the same split and knobs share one cache entry, so the
whole book trains each teacher once (the budget is the book's, not each chapter's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kdlab import _checks, data, models, published
from kdlab.augment import JITTER, Augment
from kdlab.data import Split
from kdlab.methods.common import Result, train_model


def _hinton_mlp() -> nn.Module:
    # Hinton et al. (2015), sec. 3: 784-1200-1200-10, dropout on the hidden units and 20 % on the
    # inputs, max-norm on the incoming weights (Srivastava et al. 2014 use c between 3 and 4).
    return models.mlp((784, 1200, 1200, 10), dropout=0.5, input_dropout=0.2, max_norm=3.5)


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "lenet": lambda: models.lenet(models.TEACHER_WIDTHS),
    # FSP's teacher for the book's student: Yim et al. compare FSP matrices entry by entry, so the
    # teacher keeps the student's conv widths (8-16) and has the book teacher's 512 hidden units.
    "lenet-student-convs": lambda: models.lenet((*models.STUDENT_WIDTHS[:2], models.TEACHER_WIDTHS[2])),
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
    augment: Augment | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Result:
    """A teacher trained with Adam on ``split.train`` (evaluated on ``split.test``), always cached:
    every chapter that asks for the same teacher loads the one entry. ``augment``: shifts of the
    training images (:data:`kdlab.augment.JITTER` is Hinton et al.'s jitter).

    ``"lenet"``: tsneNet's conv net (conv 32-64, fc 512), which converges on MNIST in about
    three epochs; ``"lenet-student-convs"``: the same net with the student's conv widths (conv 8-16,
    fc 512), the teacher FSP can pair with :data:`kdlab.models.STUDENT_WIDTHS`; ``"hinton"``:
    Hinton et al.'s cumbersome 1200-1200 MLP with dropout and max-norm, which needs a long schedule
    (``full`` profiles: ``schedule="cosine"``, hundreds of epochs).
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
        augment=augment,
        seed=seed,
        device=device,
        cache=True,
        desc=f"teacher {architecture}",
    )


# The book's MNIST teacher, per profile: what every chapter that distils from "the book's teacher"
# loads (one cache entry per profile for the whole book). Jitter and a cosine schedule are Hinton et
# al.'s recipe applied to tsneNet's conv net: about 60 test errors of 10,000 after 5 epochs (the
# paper's teacher: 67; measured: 65 after 4 and 58 after 6 epochs of a 6-epoch schedule), about
# 2.5 minutes on a 2-core CPU; `full` trains it longer.
BOOK_TEACHER: dict[str, dict[str, Any]] = {
    "smoke": dict(train_size=2000, test_size=2000, epochs=2, schedule="cosine", augment=JITTER),
    "default": dict(train_size=None, test_size=None, epochs=5, schedule="cosine", augment=JITTER),
    "full": dict(train_size=None, test_size=None, epochs=20, schedule="cosine", augment=JITTER),
}


def book_teacher(
    profile: str, device: str | torch.device | None = None, architecture: str = "lenet"
) -> Result:
    """The book's shared MNIST teacher at ``profile`` (:data:`BOOK_TEACHER`): tsneNet's conv net
    (:data:`kdlab.models.TEACHER_WIDTHS`) trained with Adam (lr 1e-3, batch 128, seed 0) on MNIST's
    training images (all of them, but 2,000 in ``smoke``) and evaluated on its test images, cached.
    Chapters load their own MNIST slice and compute this teacher's outputs on it. Another
    ``architecture`` of :data:`ARCHITECTURES` is trained by the same recipe (the results chapter's
    FSP teacher: ``"lenet-student-convs"``)."""
    _checks.choice("profile", profile, BOOK_TEACHER)
    _checks.choice("architecture", architecture, ARCHITECTURES)
    recipe = dict(BOOK_TEACHER[profile])
    mnist = data.load("mnist", train_size=recipe.pop("train_size"), test_size=recipe.pop("test_size"))
    if device is not None:
        mnist = mnist.to(device)
    return teacher(mnist, architecture, device=device, **recipe)


def hinton_table_teacher(
    kind: str, profile: str, split: Split, *, hinton_epochs: int, device: str | torch.device | None = None
) -> Result:
    """The teacher of Hinton et al.'s MNIST table, shared by the soft-target chapters: ``"book"``,
    :func:`book_teacher` at ``profile``; ``"hinton"``, the paper's 1200-1200 dropout MLP trained on
    ``split`` for ``hinton_epochs`` cosine epochs of images jittered as the paper did (:data:`JITTER`)."""
    _checks.choice("kind", kind, ("book", "hinton"))
    if kind == "book":
        return book_teacher(profile, device=device)
    _checks.at_least("hinton_epochs", hinton_epochs, 1)
    return teacher(split, "hinton", epochs=hinton_epochs, schedule="cosine", augment=JITTER, device=device)


def benchmark_teacher(
    name: str, split: Split, *, epochs: int | None = None, device: str | torch.device | None = None
) -> Result:
    """The CIFAR-100 benchmark's teacher ``name`` (:func:`kdlab.models.create`, e.g. ``"resnet32x4"``)
    trained with the benchmark's recipe (:data:`kdlab.published.CIFAR100_BENCHMARK`: SGD, 240 epochs
    unless ``epochs`` says otherwise, crop and flip) on ``split.train`` with seed 0, evaluated on
    ``split.test``, cached: the ``full`` profiles of the chapters that distil from it share one entry."""
    recipe = {**published.CIFAR100_BENCHMARK, **({"epochs": epochs} if epochs is not None else {})}
    return train_model(
        lambda: models.create(name, num_classes=split.num_classes), split.train, test=split.test, seed=0,
        cache=True, device=device, desc=f"teacher {name}", **recipe,
    )
