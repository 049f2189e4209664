"""LeNet-style conv nets: the tsneNet teacher (conv 32-64, fc 512) and student (conv 8-16, fc 32)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

TEACHER_WIDTHS = (32, 64, 512)
STUDENT_WIDTHS = (8, 16, 32)


def lenet(
    widths: Sequence[int] = TEACHER_WIDTHS,
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Two 5x5 conv + ReLU + 2x2 max-pool blocks, one hidden fc layer, then the logits.

    ``widths = (conv1, conv2, fc)``: the tsneNet teacher is ``(32, 64, 512)`` and its student
    ``(8, 16, 32)`` (source 000). Padding 2 keeps the map at 28 -> 14 -> 7 on MNIST (8 -> 4 -> 2 on
    ``digits``). Feature points: ``conv1``, ``conv2`` (after pooling), ``fc`` (the penultimate
    features tsneNet compares) and ``logits``.
    """
    widths = list(widths)
    if len(widths) != 3 or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"widths must be three positive integers (conv1, conv2, fc), got {widths}")
    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two 2x2 poolings), got {image_size}")
    c1, c2, hidden = widths
    side = image_size // 4
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Sequential(nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
            conv2=nn.Sequential(nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
            flatten=nn.Flatten(),
            fc=nn.Sequential(
                nn.Linear(c2 * side * side, hidden), nn.ReLU(), *([nn.Dropout(dropout)] if dropout else [])
            ),
            logits=nn.Linear(hidden, num_classes),
        )
    )
