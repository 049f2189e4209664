import math

import pytest
import torch

from kdlab import losses
from kdlab.losses import soft


def hand_kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def softmax(z: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def test_soft_target_loss_matches_hand_computed_kl_times_t_squared():
    student = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    teacher = [[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    t = 3.0
    pairs = zip(student, teacher, strict=True)
    expected = sum(hand_kl(softmax(tr, t), softmax(sr, t)) for sr, tr in pairs) / 2 * t * t
    got = losses.soft_target_loss(torch.tensor(student), torch.tensor(teacher), t)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_soft_target_loss_is_cross_entropy_minus_teacher_entropy():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    t = 4.0
    p = torch.softmax(teacher / t, 1)
    cross_entropy = -(p * torch.log_softmax(student / t, 1)).sum(1).mean()
    entropy = -(p * p.log()).sum(1).mean()
    got = losses.soft_target_loss(student, teacher, t)
    torch.testing.assert_close(got, (cross_entropy - entropy) * t * t)


def test_soft_target_loss_is_zero_for_equal_logits_and_invariant_to_shifts():
    torch.manual_seed(1)
    z = torch.randn(5, 7)
    assert losses.soft_target_loss(z, z, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(5, 7)
    torch.testing.assert_close(
        losses.soft_target_loss(z + 3.0, other - 2.0, 2.0), losses.soft_target_loss(z, other, 2.0)
    )


def test_high_temperature_gradient_approaches_logit_matching():
    # Hinton et al. sec. 2.1: for zero-mean logits, the soft-target gradient (with the T^2 factor)
    # tends to (z_s - z_t) / classes, i.e. the logit_mse gradient divided by the number of classes.
    torch.manual_seed(2)
    student, teacher = torch.randn(4, 10), torch.randn(4, 10)
    student, teacher = student - student.mean(1, keepdim=True), teacher - teacher.mean(1, keepdim=True)
    s1 = student.clone().requires_grad_(True)
    (g_soft,) = torch.autograd.grad(losses.soft_target_loss(s1, teacher, 1000.0), s1)
    s2 = student.clone().requires_grad_(True)
    (g_mse,) = torch.autograd.grad(losses.logit_mse(s2, teacher), s2)
    torch.testing.assert_close(g_soft, g_mse / 10, atol=1e-4, rtol=1e-3)


def test_distillation_loss_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(3)
    student, teacher = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    soft = losses.soft_target_loss(student, teacher, 5.0)
    hard = -torch.log_softmax(student, 1)[torch.arange(6), labels].mean()
    got = losses.distillation_loss(student, teacher, labels, 5.0, 0.7)
    torch.testing.assert_close(got, 0.7 * soft + 0.3 * hard)
    labels_only = losses.distillation_loss(student, teacher, labels, 5.0, 0.0)
    assert labels_only.item() == pytest.approx(hard.item(), rel=1e-6)


def test_logit_mse_by_hand():
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # per example: 0.5 * (1 + 4) = 2.5 and 0.5 * (9 + 16) = 12.5; batch mean 7.5
    assert losses.logit_mse(student, teacher).item() == pytest.approx(7.5)


@pytest.mark.parametrize("temperature", [0.05, 1.0, 100.0])
def test_losses_are_finite_for_huge_logits(temperature):
    torch.manual_seed(4)
    student, teacher = torch.randn(4, 10) * 1e4, torch.randn(4, 10) * 1e4
    labels = torch.tensor([0, 1, 2, 3])
    for value in (
        losses.soft_target_loss(student, teacher, temperature),
        losses.distillation_loss(student, teacher, labels, temperature, 0.5),
    ):
        assert torch.isfinite(value)


def test_bad_inputs_name_the_argument():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0.0"):
        losses.soft_target_loss(z, z, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        losses.soft_target_loss(z, torch.randn(3, 5), 1.0)
    with pytest.raises(ValueError, match=r"student_logits must have shape \(batch, classes\)"):
        losses.soft_target_loss(torch.randn(3), torch.randn(3), 1.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0.0, 1.0\], got 1.5"):
        losses.distillation_loss(z, z, torch.tensor([0, 1, 2]), 1.0, 1.5)
    with pytest.raises(ValueError, match="labels must lie in"):
        losses.distillation_loss(z, z, torch.tensor([0, 1, 9]), 1.0, 0.5)


def test_soft_target_cross_entropy_by_hand_and_its_gap_to_the_kl_is_the_teacher_entropy():
    student = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    teacher = [[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    t = 2.5
    pairs = zip(student, teacher, strict=True)
    expected = sum(
        -sum(p * math.log(q) for p, q in zip(softmax(tr, t), softmax(sr, t), strict=True)) for sr, tr in pairs
    ) / 2 * t * t
    entropy = sum(-sum(p * math.log(p) for p in softmax(tr, t)) for tr in teacher) / 2 * t * t
    s, te = torch.tensor(student), torch.tensor(teacher)
    assert soft.soft_target_cross_entropy(s, te, t).item() == pytest.approx(expected, rel=1e-5)
    gap = soft.soft_target_cross_entropy(s, te, t) - losses.soft_target_loss(s, te, t)
    assert gap.item() == pytest.approx(entropy, rel=1e-5)


def test_soft_target_cross_entropy_and_kl_have_the_same_gradient():
    torch.manual_seed(2)
    student, teacher = torch.randn(6, 10, requires_grad=True), torch.randn(6, 10)
    (g_ce,) = torch.autograd.grad(soft.soft_target_cross_entropy(student, teacher, 3.0), student)
    (g_kl,) = torch.autograd.grad(losses.soft_target_loss(student, teacher, 3.0), student)
    torch.testing.assert_close(g_ce, g_kl)


def test_ensemble_of_probabilities_is_the_mean_softmax_at_its_temperature():
    torch.manual_seed(3)
    members = [torch.randn(5, 4) * 3 for _ in range(3)]
    for t in (1.0, 4.0):
        combined = soft.ensemble_logits(members, "probabilities", temperature=t)
        naive = sum(torch.softmax(m / t, 1) for m in members) / 3
        torch.testing.assert_close(torch.softmax(combined / t, 1), naive)


def test_ensemble_of_logits_is_the_normalised_geometric_mean():
    torch.manual_seed(4)
    members = [torch.randn(5, 4) for _ in range(2)]
    combined = soft.ensemble_logits(members, "logits")
    geometric = (torch.softmax(members[0], 1) * torch.softmax(members[1], 1)).sqrt()
    torch.testing.assert_close(torch.softmax(combined, 1), geometric / geometric.sum(1, keepdim=True))


def test_ensemble_of_one_member_gives_back_its_distribution_and_stays_finite():
    z = torch.tensor([[1e4, 0.0, -1e4], [0.0, 1.0, 2.0]])
    for combine in soft.COMBINES:
        combined = soft.ensemble_logits([z], combine)
        assert torch.isfinite(combined).all()
        torch.testing.assert_close(torch.softmax(combined, 1), torch.softmax(z, 1))


def test_ensemble_bad_members_are_clear():
    with pytest.raises(ValueError, match="same number of classes.*has 10.*has 9"):
        soft.ensemble_logits([torch.zeros(4, 10), torch.zeros(4, 9)])
    with pytest.raises(ValueError, match="member_logits.*same shape"):
        soft.ensemble_logits([torch.zeros(4, 10), torch.zeros(3, 10)])
    with pytest.raises(ValueError, match="at least one"):
        soft.ensemble_logits([])
    with pytest.raises(ValueError, match="combine must be one of"):
        soft.ensemble_logits([torch.zeros(4, 10)], "votes")
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        soft.ensemble_logits([torch.zeros(4, 10)], temperature=0)


def test_fitnets_paper_form_is_labels_plus_lambda_times_the_soft_cross_entropy_without_tau_squared():
    generator = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    tau, weight = 3.0, 4.0
    by_hand = []
    for s, t, y in zip(student.tolist(), teacher.tolist(), labels.tolist(), strict=True):
        p_t = [math.exp(v / tau) / sum(math.exp(u / tau) for u in t) for v in t]
        log_q_tau = [v / tau - math.log(sum(math.exp(u / tau) for u in s)) for v in s]
        hard = -(s[y] - math.log(sum(math.exp(u) for u in s)))
        by_hand.append(hard + weight * -sum(p * q for p, q in zip(p_t, log_q_tau, strict=True)))
    terms = losses.fitnets_kd_terms(student, teacher, labels, tau, weight)
    assert terms["loss"].item() == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)
    # Not Hinton's weighted average: no tau^2, and the labels keep weight 1.
    hinton = losses.distillation_terms(student, teacher, labels, tau, 0.8)["loss"].item()
    assert terms["loss"].item() != pytest.approx(hinton, rel=1e-3)
    with pytest.raises(ValueError, match="weight"):
        losses.fitnets_kd_terms(student, teacher, labels, tau, -1.0)
