"""Property-based tests (hypothesis) of the loss functions, and their numerical safety."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdlab import losses

FAST = settings(max_examples=60, deadline=None)


HUGE = st.floats(0.1, 1e4)


@st.composite
def logit_pairs(draw, scale=HUGE):
    batch = draw(st.integers(1, 6))
    classes = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    size = draw(scale)
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=generator) * size
    teacher = torch.randn(batch, classes, generator=generator) * size
    return student, teacher


temperatures = st.floats(0.05, 100.0)


@FAST
@given(logit_pairs(), temperatures)
def test_soft_target_loss_is_finite_and_non_negative(pair, temperature):
    student, teacher = pair
    value = losses.soft_target_loss(student, teacher, temperature)
    assert torch.isfinite(value)
    assert value.item() >= -1e-4 * temperature**2


@FAST
@given(logit_pairs(scale=st.floats(0.1, 100.0)), temperatures)
def test_soft_target_loss_is_zero_for_identical_logits(pair, temperature):
    student, _ = pair
    assert abs(losses.soft_target_loss(student, student.clone(), temperature).item()) < 1e-5 * temperature**2


@FAST
@given(logit_pairs(scale=st.floats(0.1, 30.0)), st.floats(0.5, 20.0), st.floats(-50, 50), st.floats(-50, 50))
def test_soft_target_loss_ignores_constants_added_to_the_logits(pair, temperature, shift_s, shift_t):
    student, teacher = pair
    base = losses.soft_target_loss(student, teacher, temperature)
    shifted = losses.soft_target_loss(student + shift_s, teacher + shift_t, temperature)
    assert math.isclose(base.item(), shifted.item(), rel_tol=1e-3, abs_tol=1e-3)


@FAST
@given(logit_pairs(), temperatures, st.floats(0.0, 1.0))
def test_distillation_loss_is_finite_for_huge_logits_and_any_temperature(pair, temperature, alpha):
    student, teacher = pair
    labels = torch.zeros(student.shape[0], dtype=torch.long)
    value = losses.distillation_loss(student, teacher, labels, temperature, alpha)
    assert torch.isfinite(value) and value.item() >= -1e-3 * temperature**2


@FAST
@given(logit_pairs())
def test_logit_mse_is_non_negative_symmetric_and_zero_on_equality(pair):
    student, teacher = pair
    assert losses.logit_mse(student, teacher).item() >= 0
    assert losses.logit_mse(student, teacher).item() == losses.logit_mse(teacher, student).item()
    assert losses.logit_mse(student, student).item() == 0


@FAST
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), st.integers(0, 10_000))
def test_fsp_loss_is_non_negative_and_zero_for_identical_features(batch, c1, c2, side, seed):
    generator = torch.Generator().manual_seed(seed)
    first = torch.randn(batch, c1, side, side, generator=generator)
    second = torch.randn(batch, c2, side, side, generator=generator)
    other = torch.randn(batch, c2, side, side, generator=generator)
    assert losses.fsp_loss([(first, second)], [(first, second)]).item() == 0
    assert losses.fsp_loss([(first, other)], [(first, second)]).item() >= 0


@FAST
@given(st.integers(1, 4), st.integers(1, 20), st.integers(0, 10_000))
def test_hint_loss_is_half_the_mean_squared_distance(batch, width, seed):
    generator = torch.Generator().manual_seed(seed)
    a, b = torch.randn(batch, width, generator=generator), torch.randn(batch, width, generator=generator)
    expected = sum(0.5 * float(((a[i] - b[i]) ** 2).sum()) for i in range(batch)) / batch
    assert math.isclose(losses.hint_loss(a, b).item(), expected, rel_tol=1e-5, abs_tol=1e-6)
