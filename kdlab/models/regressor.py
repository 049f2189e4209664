"""FitNets' regressor r(.): maps the student's guided layer onto the shape of the teacher's hint."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


def _shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(shape)
    if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
        raise ValueError(f"{name} must list positive integers (the shape without the batch), got {shape}")
    return shape


def regressor(student_shape: Sequence[int], teacher_shape: Sequence[int], *, relu: bool = False) -> nn.Module:
    """Romero et al. (2015), sec. 3.1: the regressor r on top of the student's guided layer.

    Shapes are given without the batch dimension: the student's guided layer ``student_shape``
    and the teacher's hint ``teacher_shape``; the returned module maps (batch, *student_shape)
    to (batch, *teacher_shape), ready for :func:`kdlab.losses.features.hint_loss`.

    - Convolutional, when both are maps (c, h, w) and the student's map is at least as large
      in each spatial direction: one conv with kernel k_i = N_{g,i} - N_{h,i} + 1 and no padding
      (the paper's rule, with N_g the guided and N_h the hint sizes), so that each output
      position sees about the image region of the hint's position. Parameters:
      k1 * k2 * c_s * c_t + c_t.
    - Fully connected otherwise: flatten, one linear layer, reshape to the hint's shape.
      Parameters: prod(student_shape) * prod(teacher_shape) + prod(teacher_shape); the paper
      prefers the conv regressor because this count grows with the product of the map sizes.

    FitNets asks that r and u_h have the same non-linearity: pass ``relu=True`` when the
    hint is a ReLU output (as the points ``guided`` of :func:`kdlab.models.vgg.vgg` are).
    """
    student_shape = _shape("student_shape", student_shape)
    teacher_shape = _shape("teacher_shape", teacher_shape)
    convolutional = (
        len(student_shape) == 3
        and len(teacher_shape) == 3
        and all(s >= t for s, t in zip(student_shape[1:], teacher_shape[1:], strict=True))
    )
    if convolutional:
        kernel = (student_shape[1] - teacher_shape[1] + 1, student_shape[2] - teacher_shape[2] + 1)
        layers: list[nn.Module] = [nn.Conv2d(student_shape[0], teacher_shape[0], kernel)]
    else:
        layers = [
            nn.Flatten(),
            nn.Linear(math.prod(student_shape), math.prod(teacher_shape)),
            nn.Unflatten(1, teacher_shape),
        ]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))
