"""FitNets' hint loss and the FSP matrices and loss, against hand values and naive loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdlab.losses.features import fsp_distance, fsp_loss, fsp_matrix, hint_loss


def naive_fsp(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Yim et al.'s eq. 1 written as loops over examples, channel pairs and positions."""
    batch, c1, h, w = first.shape
    c2 = second.shape[1]
    out = torch.zeros(batch, c1, c2, dtype=torch.float64)
    for n in range(batch):
        for i in range(c1):
            for j in range(c2):
                total = 0.0
                for s in range(h):
                    for t in range(w):
                        total += float(first[n, i, s, t]) * float(second[n, j, s, t])
                out[n, i, j] = total / (h * w)
    return out


# --- hint_loss ---------------------------------------------------------------------------------


def test_hint_loss_by_hand():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # Example 1: (1 + 4) / 2 = 2.5; example 2: (4 + 9) / 2 = 6.5; batch mean 4.5.
    assert hint_loss(student, teacher).item() == pytest.approx(4.5)


def test_hint_loss_on_maps_is_half_summed_squares_per_example():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(3, 4, 5, 5, generator=gen)
    teacher = torch.randn(3, 4, 5, 5, generator=gen)
    per_example = [0.5 * float(((student[n] - teacher[n]) ** 2).sum()) for n in range(3)]
    assert hint_loss(student, teacher).item() == pytest.approx(sum(per_example) / 3, rel=1e-6)
    # The element mean that nn.MSELoss takes differs by the factor 2 / (c * h * w).
    mse = F.mse_loss(student, teacher).item()
    assert hint_loss(student, teacher).item() == pytest.approx(mse * 4 * 5 * 5 / 2, rel=1e-6)


def test_hint_loss_gradient_is_difference_over_batch():
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(4, 6, generator=gen, requires_grad=True)
    teacher = torch.randn(4, 6, generator=gen)
    hint_loss(student, teacher).backward()
    torch.testing.assert_close(student.grad, (student.detach() - teacher) / 4)


def test_hint_loss_zero_when_equal():
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    assert hint_loss(x, x.clone()).item() == 0.0


def test_hint_loss_errors():
    with pytest.raises(ValueError, match=r"\(2, 64, 8, 8\) and \(2, 128, 8, 8\)"):
        hint_loss(torch.zeros(2, 64, 8, 8), torch.zeros(2, 128, 8, 8))
    with pytest.raises(ValueError, match="student_features must have shape"):
        hint_loss(torch.zeros(5), torch.zeros(5))
    with pytest.raises(TypeError, match="teacher_features must be a floating tensor"):
        hint_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="student_features must be a torch.Tensor"):
        hint_loss([[1.0]], torch.zeros(1, 1))


# --- fsp_matrix --------------------------------------------------------------------------------


def test_fsp_matrix_matches_naive_loops():
    gen = torch.Generator().manual_seed(3)
    first = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    second = torch.randn(2, 4, 4, 5, generator=gen, dtype=torch.float64)
    got = fsp_matrix(first, second)
    assert got.shape == (2, 3, 4)
    torch.testing.assert_close(got.double(), naive_fsp(first, second), rtol=1e-5, atol=1e-6)


def test_fsp_matrix_of_constant_maps_is_product_of_constants():
    first = torch.full((1, 2, 3, 3), 2.0)
    first[0, 1] = -1.0
    second = torch.full((1, 1, 3, 3), 5.0)
    # The mean over positions of a constant product is that product.
    torch.testing.assert_close(fsp_matrix(first, second), torch.tensor([[[10.0], [-5.0]]]))


def test_fsp_matrix_pool_max_pools_the_larger_map():
    gen = torch.Generator().manual_seed(4)
    large = torch.randn(2, 3, 8, 8, generator=gen)
    small = torch.randn(2, 5, 4, 4, generator=gen)
    # 8 -> 4 adaptive max pooling is a max over disjoint 2x2 windows.
    pooled = large.reshape(2, 3, 4, 2, 4, 2).amax(dim=(3, 5))
    expected = naive_fsp(pooled, small).float()
    torch.testing.assert_close(fsp_matrix(large, small, pool=True), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        fsp_matrix(small, large, pool=True), expected.transpose(1, 2), rtol=1e-5, atol=1e-6
    )


def test_fsp_matrix_errors():
    with pytest.raises(ValueError, match=r"\(8, 8\) and \(4, 4\).*pool=True"):
        fsp_matrix(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="one batch size, got 2 and 3"):
        fsp_matrix(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))
    with pytest.raises(
        ValueError, match=r"second must have shape \(batch, c2, h, w\), got shape \(2, 3, 4\)"
    ):
        fsp_matrix(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="first must be a floating tensor"):
        fsp_matrix(torch.zeros(2, 3, 4, 4, dtype=torch.int64), torch.zeros(2, 3, 4, 4))


# --- fsp_loss ----------------------------------------------------------------------------------


def test_fsp_loss_by_hand():
    # 1x1 maps make each FSP matrix an outer product of the channel values.
    def maps(*values):
        return torch.tensor(values, dtype=torch.float32).reshape(len(values), -1, 1, 1)

    student = [(maps([1.0, 2.0], [0.0, 1.0]), maps([3.0], [2.0]))]  # G^S: [[3], [6]] and [[0], [2]]
    teacher = [(maps([1.0, 0.0], [1.0, 1.0]), maps([1.0], [2.0]))]  # G^T: [[1], [0]] and [[2], [2]]
    # Example 1: (1 - 3)^2 + (0 - 6)^2 = 40; example 2: (2 - 0)^2 + (2 - 2)^2 = 4; batch mean 22.
    assert fsp_loss(student, teacher).item() == pytest.approx(22.0)
    assert fsp_loss(student, teacher, weights=[0.5]).item() == pytest.approx(11.0)


def test_fsp_loss_sums_weighted_sections_and_averages_examples():
    gen = torch.Generator().manual_seed(5)

    def pair(c1, c2, size):
        return (torch.randn(3, c1, size, size, generator=gen), torch.randn(3, c2, size, size, generator=gen))

    student = [pair(2, 2, 4), pair(3, 4, 2)]
    teacher = [pair(2, 2, 4), pair(3, 4, 2)]
    weights = [1.0, 0.25]
    expected = 0.0
    for n in range(3):
        for (s1, s2), (t1, t2), lam in zip(student, teacher, weights, strict=True):
            g_s = naive_fsp(s1[n : n + 1], s2[n : n + 1])
            g_t = naive_fsp(t1[n : n + 1], t2[n : n + 1])
            expected += lam * float(((g_t - g_s) ** 2).sum())
    expected /= 3
    assert fsp_loss(student, teacher, weights).item() == pytest.approx(expected, rel=1e-5)
    # Default weights are all 1.
    assert fsp_loss(student, teacher).item() == pytest.approx(
        fsp_loss(student, teacher, [1.0, 1.0]).item(), rel=1e-6
    )


def test_fsp_loss_is_a_batch_mean():
    gen = torch.Generator().manual_seed(6)
    student = [(torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen))]
    teacher = [(torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen))]
    doubled_student = [tuple(torch.cat([m, m]) for m in student[0])]
    doubled_teacher = [tuple(torch.cat([m, m]) for m in teacher[0])]
    assert fsp_loss(doubled_student, doubled_teacher).item() == pytest.approx(
        fsp_loss(student, teacher).item(), rel=1e-6
    )


def test_fsp_loss_errors():
    a = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="student_pairs must hold at least one"):
        fsp_loss([], [])
    with pytest.raises(ValueError, match="same number of pairs, got 1 and 2"):
        fsp_loss([(a, a)], [(a, a), (a, a)])
    with pytest.raises(ValueError, match=r"one weight per pair \(1\), got 2"):
        fsp_loss([(a, a)], [(a, a)], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"weights\[0\] must be in \[0.0, inf\], got -1.0"):
        fsp_loss([(a, a)], [(a, a)], weights=[-1.0])
    with pytest.raises(ValueError, match=r"teacher_pairs\[0\]: first and second must have the same spatial"):
        fsp_loss([(a, a)], [(a, torch.zeros(2, 3, 2, 2))])
    with pytest.raises(ValueError, match=r"student FSP matrix 0 .* \(2, 3, 3\) and \(2, 5, 3\)"):
        fsp_loss([(a, a)], [(torch.zeros(2, 5, 4, 4), a)])
    with pytest.raises(ValueError, match=r"student_pairs\[0\] must be a \(first, second\) pair"):
        fsp_loss([a], [(a, a)])


def test_fsp_matrix_stays_float32_under_autocast():
    gen = torch.Generator().manual_seed(7)
    first = torch.randn(2, 3, 6, 6, generator=gen)
    second = torch.randn(2, 4, 6, 6, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fsp_matrix(first, second)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, naive_fsp(first, second).float(), rtol=1e-5, atol=1e-6)


# --- fsp_distance ------------------------------------------------------------------------------


def test_fsp_distance_on_matrices_equals_fsp_loss_on_maps():
    gen = torch.Generator().manual_seed(8)
    student = [(torch.randn(3, 2, 5, 5, generator=gen), torch.randn(3, 4, 5, 5, generator=gen)),
               (torch.randn(3, 4, 2, 2, generator=gen), torch.randn(3, 3, 2, 2, generator=gen))]
    teacher = [tuple(torch.randn(m.shape, generator=gen) for m in pair) for pair in student]
    student_g = [naive_fsp(*pair).float() for pair in student]
    teacher_g = [naive_fsp(*pair).float() for pair in teacher]
    weights = [0.5, 2.0]
    # By hand: sum of weighted squared entries of each difference, then the mean over 3 examples.
    expected = sum(
        lam * float(((t - s) ** 2)[n].sum())
        for s, t, lam in zip(student_g, teacher_g, weights, strict=True)
        for n in range(3)
    ) / 3
    assert fsp_distance(student_g, teacher_g, weights).item() == pytest.approx(expected, rel=1e-5)
    assert fsp_loss(student, teacher, weights).item() == pytest.approx(expected, rel=1e-5)


def test_fsp_distance_errors():
    g = torch.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="student_matrices must hold at least one FSP matrix"):
        fsp_distance([], [])
    with pytest.raises(ValueError, match="same number of matrices, got 1 and 2"):
        fsp_distance([g], [g, g])
    with pytest.raises(ValueError, match=r"student FSP matrix 0 .* \(2, 3, 3\) and \(2, 3, 4\)"):
        fsp_distance([g], [torch.zeros(2, 3, 4)])
