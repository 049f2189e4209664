"""Augmentation on the device: random shifts with zero padding and horizontal flips, per example.

One batch ``x`` of shape (batch, channels, height, width) is augmented at once with tensor ops on
``x``'s device (one zero pad and one gather): no per-image Python, no worker processes
(DESIGN.md, speed rules). Every random number comes from the ``torch.Generator`` passed, so a
seed fixes the sequence; :class:`kdlab.data.TensorLoader` passes its own generator, whose state
is saved in checkpoints, so a resumed run sees the same augmented batches.

- :data:`CIFAR`: the standard CIFAR augmentation (He et al. 2016, "Deep residual learning",
  section 4.2; used by the CIFAR-100 distillation benchmark of Tian et al. 2020, CRD): pad 4
  pixels on each side, take a random 32x32 crop, flip horizontally with probability 0.5.
- :data:`JITTER`: Hinton, Vinyals and Dean 2015 ("Distilling the knowledge in a neural
  network", section 3, MNIST): input images "jittered by up to two pixels in any direction";
  no flip (digits are not mirror-symmetric).

A random crop of size (H, W) from an image padded by ``pad`` is a shift of the image by
(dy, dx), each in [-pad, pad], with zeros shifted in: ``out[c, r, k] = x[c, r + dy, k + dx]``
(0 where ``r + dy`` or ``k + dx`` falls outside the image), then mirrored along the width where
the example is flipped. Zero padding means 0 in the tensor's own units: for MNIST in [0, 1] it is
black, as in the papers; for kdlab's CIFAR tensors, which :func:`kdlab.data.load` standardises
per channel, 0 is the channel mean, whereas torchvision's pipeline (crop, then ``ToTensor`` and
``Normalize``) pads with black before standardising.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab import _checks

__all__ = ["CIFAR", "JITTER", "Augment", "Draws", "apply", "sample", "shift_flip"]


@dataclass(frozen=True)
class Augment:
    """What to draw per example: a shift of up to ``pad`` pixels along each axis (dy and dx
    uniform in [-pad, pad], independently; zeros shifted in), then a horizontal flip with
    probability ``flip``. ``Augment()`` (pad 0, flip 0) is the identity and draws nothing."""

    pad: int = 0
    flip: float = 0.0

    def __post_init__(self) -> None:
        _checks.at_least("pad", self.pad, 0)
        if isinstance(self.flip, bool):
            raise ValueError(f"flip must be a probability in [0.0, 1.0], got {self.flip!r}")
        _checks.in_range("flip", self.flip, 0.0, 1.0)

    @property
    def active(self) -> bool:
        """False when this augmentation is the identity (no shift and no flip)."""
        return self.pad > 0 or self.flip > 0


CIFAR = Augment(pad=4, flip=0.5)
"""Random 32x32 crop of the image padded by 4 pixels, and horizontal flip with probability 0.5."""

JITTER = Augment(pad=2, flip=0.0)
"""Hinton et al. 2015's MNIST jitter: shifts of up to 2 pixels in any direction, no flip."""


@dataclass(frozen=True)
class Draws:
    """The random draws of one batch: ``dy``, ``dx`` (int64, shape (batch,), in [-pad, pad]) and
    ``flip`` (bool, shape (batch,)), on the generator's device; ``pad`` bounds the offsets."""

    dy: Tensor
    dx: Tensor
    flip: Tensor
    pad: int

    def __len__(self) -> int:
        return self.dy.shape[0]

    def __getitem__(self, index: slice | Tensor) -> Draws:
        """The draws of some examples (e.g. one process's share of a global batch)."""
        return Draws(self.dy[index], self.dx[index], self.flip[index], self.pad)


def sample(batch: int, augment: Augment, generator: torch.Generator) -> Draws:
    """Draw shifts and flips for ``batch`` examples from ``generator`` (on its device).

    The offsets are drawn first (one ``randint`` of shape (2, batch), only when ``pad > 0``), then
    the flips (one ``rand`` of shape (batch,), only when ``flip > 0``): a seed fixes the sequence,
    and an inactive part consumes no random numbers.
    """
    _checks.at_least("batch", batch, 0)
    _check_augment(augment)
    _check_generator(generator)
    device = generator.device
    if augment.pad > 0:
        dy, dx = torch.randint(-augment.pad, augment.pad + 1, (2, batch), generator=generator, device=device)
    else:
        dy = dx = torch.zeros(batch, dtype=torch.int64, device=device)
    if augment.flip > 0:
        flip = torch.rand(batch, generator=generator, device=device) < augment.flip
    else:
        flip = torch.zeros(batch, dtype=torch.bool, device=device)
    return Draws(dy, dx, flip, augment.pad)


def shift_flip(x: Tensor, draws: Draws) -> Tensor:
    """Apply ``draws`` to the batch ``x`` (batch, channels, height, width) on ``x``'s device.

    ``out[i, c, r, k] = x[i, c, r + dy[i], k' + dx[i]]`` with ``k' = width - 1 - k`` where
    ``flip[i]`` else ``k``, and 0 where the source pixel lies outside the image. One zero pad by
    ``draws.pad`` and one gather with an index built from ``arange`` and the offsets; returns a
    new tensor of ``x``'s shape and dtype.
    """
    _check_batch(x)
    if not isinstance(draws, Draws):
        raise TypeError(f"draws must be a kdlab.augment.Draws (from sample), got {type(draws).__name__}")
    if len(draws) != x.shape[0]:
        raise ValueError(f"draws must hold one draw per example: x has {x.shape[0]}, draws has {len(draws)}")
    batch, channels, height, width = x.shape
    p = draws.pad
    device = x.device
    # The three small index tensors travel to x's device in one copy.
    drawn = torch.stack([draws.dy, draws.dx, draws.flip.long()]).to(device, non_blocking=True)
    top, left, flip = drawn[0] + p, drawn[1] + p, drawn[2].bool()
    padded = F.pad(x, (p, p, p, p)) if p else x
    rows = top[:, None] + torch.arange(height, device=device)  # (batch, height), in the padded image
    columns = torch.arange(width, device=device)
    columns = left[:, None] + torch.where(flip[:, None], columns.flip(0), columns)  # (batch, width)
    index = rows[:, :, None] * (width + 2 * p) + columns[:, None, :]  # (batch, height, width)
    index = index.view(batch, 1, height * width).expand(batch, channels, height * width)
    out = padded.reshape(batch, channels, -1).gather(2, index)
    return out.view(batch, channels, height, width)


def apply(x: Tensor, augment: Augment, generator: torch.Generator) -> Tensor:
    """Augment the batch ``x`` (batch, channels, height, width), each example with its own draws.

    The shifts and flips are drawn from ``generator`` (see :func:`sample`; a CPU generator works
    for a batch on any device: the drawn indices are moved to ``x``'s device) and applied to the
    whole batch at once by :func:`shift_flip`. An inactive ``augment`` (pad 0, flip 0) returns
    ``x`` itself and draws nothing.
    """
    _check_batch(x)
    _check_augment(augment)
    _check_generator(generator)
    if not augment.active:
        return x
    return shift_flip(x, sample(x.shape[0], augment, generator))


def _check_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (batch, channels, height, width), got shape {tuple(x.shape)}")


def _check_augment(augment: Augment) -> None:
    if not isinstance(augment, Augment):
        raise TypeError(f"augment must be a kdlab.augment.Augment, got {type(augment).__name__}")


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
