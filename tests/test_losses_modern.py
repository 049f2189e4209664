"""DKD, logit standardisation and DIST, each against an independent computation."""

import math
import statistics

import pytest
import torch

from kdlab import losses


def softmax(z: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def hand_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def hand_dkd(student: list[float], teacher: list[float], label: int, t: float) -> tuple[float, float]:
    """TCKD and NCKD of one example by the paper's definitions, in plain Python (times T^2)."""
    ps, pt = softmax(student, t), softmax(teacher, t)
    binary_s, binary_t = [ps[label], 1 - ps[label]], [pt[label], 1 - pt[label]]
    rest_s = [p / (1 - ps[label]) for k, p in enumerate(ps) if k != label]
    rest_t = [p / (1 - pt[label]) for k, p in enumerate(pt) if k != label]
    return hand_kl(binary_t, binary_s) * t * t, hand_kl(rest_t, rest_s) * t * t


def test_dkd_terms_match_a_hand_computation():
    student = [[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 3.0, 0.2], [2.0, 2.0, 2.0, 2.5]]
    teacher = [[2.0, 1.0, 0.0, 0.3], [1.0, 1.5, 1.0, -2.0], [0.0, 4.0, 1.0, 1.0]]
    labels = [1, 2, 3]
    t = 3.0
    parts = [hand_dkd(s, tr, y, t) for s, tr, y in zip(student, teacher, labels, strict=True)]
    got = losses.dkd_terms(torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), t,
                           tckd_weight=0.5, nckd_weight=6.0)
    tckd, nckd = sum(p[0] for p in parts) / 3, sum(p[1] for p in parts) / 3
    assert got["tckd"].item() == pytest.approx(tckd, rel=1e-5)
    assert got["nckd"].item() == pytest.approx(nckd, rel=1e-5)
    assert got["loss"].item() == pytest.approx(0.5 * tckd + 6.0 * nckd, rel=1e-5)


def test_kd_is_tckd_plus_teacher_uncertainty_times_nckd():
    # Zhao et al. (2022), eq. 5: KD = TCKD + (1 - p_t^teacher) NCKD, example by example.
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 10, generator=generator), 3 * torch.randn(6, 10, generator=generator)
    labels = torch.randint(0, 10, (6,), generator=generator)
    t = 4.0
    for i in range(6):
        s, tr, y = student[i : i + 1], teacher[i : i + 1], labels[i : i + 1]
        parts = losses.dkd_terms(s, tr, y, t)
        p_target = torch.softmax(tr / t, dim=1)[0, y[0]]
        kd = losses.soft_target_loss(s, tr, t)
        torch.testing.assert_close(parts["tckd"] + (1 - p_target) * parts["nckd"], kd)


def test_dkd_is_zero_for_equal_logits_and_finite_for_confident_ones():
    z = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 1.0]])
    y = torch.tensor([0, 2])
    assert losses.dkd_loss(z, z, y, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.tensor([[1e4, 0.0, -1e4], [0.0, 3e3, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-1e4, 1e4, 0.0], [1e4, 0.0, 0.0]])
    loss = losses.dkd_loss(student, teacher, y, 1.0)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(student.grad).all()


def test_dkd_refuses_bad_input():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="labels"):
        losses.dkd_loss(z, z, torch.tensor([0, 3]), 1.0)
    with pytest.raises(ValueError, match="nckd_weight"):
        losses.dkd_loss(z, z, torch.tensor([0, 1]), 1.0, nckd_weight=-1.0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        losses.dkd_loss(torch.zeros(2, 1), torch.zeros(2, 1), torch.tensor([0, 0]), 1.0)


def test_standardize_logits_z_scores_each_row():
    generator = torch.Generator().manual_seed(1)
    z = 5 * torch.randn(4, 7, generator=generator) + 3
    got = losses.standardize_logits(z)
    for row, original in zip(got.tolist(), z.tolist(), strict=True):
        mean, sd = statistics.fmean(original), statistics.pstdev(original)
        assert row == pytest.approx([(v - mean) / sd for v in original], rel=1e-4, abs=1e-5)
    # Invariant to each row's scale and shift: only the logits' relations remain.
    torch.testing.assert_close(losses.standardize_logits(2.5 * z - 7), got, atol=1e-5, rtol=1e-5)
    assert losses.standardize_logits(torch.ones(1, 4)).abs().max().item() == 0.0


def test_standardized_kd_ignores_the_teachers_logit_scale_and_plain_kd_does_not():
    generator = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(8, 10, generator=generator), torch.randn(8, 10, generator=generator)

    def standardized(s, t):
        return losses.soft_target_loss(losses.standardize_logits(s), losses.standardize_logits(t), 2.0)

    torch.testing.assert_close(standardized(student, 10 * teacher), standardized(student, teacher))
    plain = losses.soft_target_loss(student, teacher, 2.0)
    assert losses.soft_target_loss(student, 10 * teacher, 2.0) > plain


def test_dist_terms_match_pearson_by_hand():
    generator = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    t = 2.0
    ys = [softmax(row, t) for row in student.tolist()]
    yt = [softmax(row, t) for row in teacher.tolist()]
    inter = statistics.fmean(1 - statistics.correlation(a, b) for a, b in zip(ys, yt, strict=True))
    columns_s, columns_t = list(zip(*ys, strict=True)), list(zip(*yt, strict=True))
    columns = zip(columns_s, columns_t, strict=True)
    intra = statistics.fmean(1 - statistics.correlation(a, b) for a, b in columns)
    got = losses.dist_terms(student, teacher, t, inter_weight=2.0, intra_weight=0.5)
    assert got["inter"].item() == pytest.approx(inter * t * t, rel=1e-4)
    assert got["intra"].item() == pytest.approx(intra * t * t, rel=1e-4)
    assert got["loss"].item() == pytest.approx((2.0 * inter + 0.5 * intra) * t * t, rel=1e-4)


def test_dist_is_zero_for_equal_logits_and_refuses_a_batch_of_one():
    z = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 2.0], [0.0, 0.0, 3.0]])
    assert losses.dist_loss(z, z).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="batch of at least 2"):
        losses.dist_loss(z[:1], z[:1])
    with pytest.raises(ValueError, match="temperature"):
        losses.dist_loss(z, z, temperature=0.0)
