"""Feature-level distillation: FitNets' hints (Romero et al. 2015) and FSP matrices (Yim et al. 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdlab import _checks


def _paired(student_name: str, student: list, teacher_name: str, teacher: list, one: str, many: str) -> None:
    # The student's and the teacher's lists of FSP sections: at least one, and as many of each.
    if not student:
        raise ValueError(f"{student_name} must hold at least one {one}, got none")
    if len(student) != len(teacher):
        raise ValueError(
            f"{student_name} and {teacher_name} must hold the same number of {many}, "
            f"got {len(student)} and {len(teacher)}"
        )


def hint_loss(student_features: Tensor, teacher_features: Tensor) -> Tensor:
    """Romero et al. (2015), eq. 3 (the hint stage): 1/2 ||u_h(x) - r(v_g(x))||^2, batch mean.

    ``teacher_features`` is the teacher's hint u_h(x); ``student_features`` is the output of the
    regressor r on the student's guided layer v_g(x) (see :func:`kdlab.models.regressor.regressor`):
    the caller applies the regressor, so both tensors have one shape.

    Normalisation: half the squared L2 norm of each example's difference, summed over every
    feature entry, then averaged over the batch. The sum is the paper's per-example norm (and
    :func:`kdlab.losses.soft.logit_mse` reads Ba & Caruana's equation the same way); the batch
    mean keeps the loss, and so the learning rate, independent of the batch size. ``nn.MSELoss``,
    which many libraries use, averages over the entries too: it equals this loss times
    ``2 / (c * h * w)``. Pass the teacher's features detached.

    Shapes: (batch, ...), (batch, ...) of one shape, e.g. (batch, c, h, w) -> scalar.
    """
    _checks.float_tensor("student_features", student_features, "(batch, ...) with >= 2 dimensions", 2)
    _checks.float_tensor("teacher_features", teacher_features, "(batch, ...) with >= 2 dimensions", 2)
    _checks.same_shape("student_features", student_features, "teacher_features", teacher_features)
    diff = student_features.float() - teacher_features.float()
    return 0.5 * diff.pow(2).flatten(1).sum(dim=1).mean()


def fsp_matrix(first: Tensor, second: Tensor, *, pool: bool = False) -> Tensor:
    """Yim et al. (2017), eq. 1: G_ij = sum_{s,t} F1_i(s, t) * F2_j(s, t) / (h * w).

    The "flow of solution procedure" between two feature maps of one section: the inner
    product of channel i of ``first`` with channel j of ``second`` over the h * w positions,
    divided by h * w (a mean over positions), for every example. One batched matrix product.

    The paper takes both maps from a section that keeps one spatial size, so different sizes
    are an error. ``pool=True`` instead adaptive-max-pools each map to the smaller height and
    width (the larger map shrinks, the smaller is unchanged), for pairs that span a
    down-sampling; the paper does not do this.

    Shapes: (batch, c1, h, w), (batch, c2, h, w) -> (batch, c1, c2).
    """
    _checks.float_tensor("first", first, "(batch, c1, h, w)", 4, 4)
    _checks.float_tensor("second", second, "(batch, c2, h, w)", 4, 4)
    if first.shape[0] != second.shape[0]:
        raise ValueError(
            f"first and second must have one batch size, got {first.shape[0]} and {second.shape[0]}"
        )
    size_1, size_2 = tuple(first.shape[2:]), tuple(second.shape[2:])
    if size_1 != size_2:
        if not pool:
            raise ValueError(
                f"first and second must have the same spatial size (h, w), got {size_1} and {size_2}; "
                "take both maps from one section or pass pool=True"
            )
        size = (min(size_1[0], size_2[0]), min(size_1[1], size_2[1]))
        first, second = F.adaptive_max_pool2d(first, size), F.adaptive_max_pool2d(second, size)
    h, w = first.shape[2:]
    # Autocast would run bmm in bf16/fp16; the h * w-term sums are kept in float32 instead.
    with torch.autocast(device_type=first.device.type, enabled=False):
        return torch.bmm(first.float().flatten(2), second.float().flatten(2).transpose(1, 2)) / (h * w)


def fsp_loss(
    student_pairs: Sequence[tuple[Tensor, Tensor]],
    teacher_pairs: Sequence[tuple[Tensor, Tensor]],
    weights: Sequence[float] | None = None,
    *,
    pool: bool = False,
) -> Tensor:
    """Yim et al. (2017), eq. 2: (1/N) sum_x sum_i lambda_i ||G_i^T(x) - G_i^S(x)||_2^2.

    Each pair is ``(first, second)``, the feature maps at the start and the end of section i;
    the FSP matrices G_i are computed here with :func:`fsp_matrix` (pass feature maps, not
    matrices). Pair i of the student is compared with pair i of the teacher, so their channel
    counts must agree. ``weights`` are the lambda_i, all 1 by default ("the same for all loss
    terms", source 003).

    Normalisation: the squared L2 norm of each matrix difference is summed over its c1 * c2
    entries, weighted, summed over the sections, then averaged over the N examples of the
    batch, as in the paper's equation. Libraries disagree here: some average over the matrix
    entries (``F.mse_loss``), which divides section i by c1 * c2 and so reweights the sections
    and shrinks the gradients; others (torchdistill) take the *unsquared* norm, which is not a
    rescaling of the paper's loss at all (its gradient weighs each section by 1 / its distance);
    kdlab keeps the paper's squared sum so that lambda_i means what it says.
    Pass the teacher's maps detached.

    Shapes: per pair (batch, c1, h, w), (batch, c2, h, w) -> scalar.
    """
    student_pairs, teacher_pairs = list(student_pairs), list(teacher_pairs)
    _paired("student_pairs", student_pairs, "teacher_pairs", teacher_pairs, "(first, second) pair", "pairs")
    student_matrices = [_pair_matrix(f"student_pairs[{i}]", p, pool) for i, p in enumerate(student_pairs)]
    teacher_matrices = [_pair_matrix(f"teacher_pairs[{i}]", p, pool) for i, p in enumerate(teacher_pairs)]
    return fsp_distance(student_matrices, teacher_matrices, weights)


def fsp_distance(
    student_matrices: Sequence[Tensor],
    teacher_matrices: Sequence[Tensor],
    weights: Sequence[float] | None = None,
) -> Tensor:
    """Yim et al. (2017), eq. 2 on FSP matrices already computed (:func:`fsp_matrix`).

    The same sum as :func:`fsp_loss` (squared L2 norm over the c1 * c2 entries of each matrix
    difference, weighted by lambda_i, summed over sections, mean over the batch), for callers
    that compute the teacher's matrices once and keep them (they do not depend on the student).

    Shapes: per section (batch, c1, c2) -> scalar.
    """
    student_matrices, teacher_matrices = list(student_matrices), list(teacher_matrices)
    _paired(
        "student_matrices", student_matrices, "teacher_matrices", teacher_matrices, "FSP matrix", "matrices"
    )
    if weights is None:
        weights = [1.0] * len(student_matrices)
    weights = list(weights)
    if len(weights) != len(student_matrices):
        count = len(student_matrices)
        raise ValueError(f"weights must hold one weight per pair ({count}), got {len(weights)}")
    for i, weight in enumerate(weights):
        _checks.in_range(f"weights[{i}]", weight, 0.0, math.inf)
    total = None
    for i, (student_g, teacher_g, weight) in enumerate(
        zip(student_matrices, teacher_matrices, weights, strict=True)
    ):
        _checks.same_shape(
            f"student FSP matrix {i} (batch, c1, c2)", student_g, f"teacher FSP matrix {i}", teacher_g
        )
        term = weight * (teacher_g.float() - student_g.float()).pow(2).sum(dim=(1, 2))
        total = term if total is None else total + term
    return total.mean()


def _pair_matrix(name: str, pair: tuple[Tensor, Tensor], pool: bool) -> Tensor:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a (first, second) pair of feature maps, got {type(pair).__name__}")
    try:
        return fsp_matrix(pair[0], pair[1], pool=pool)
    except (TypeError, ValueError) as error:
        # Name the offending pair: fsp_matrix alone can only say "first" and "second".
        raise type(error)(f"{name}: {error}") from None
