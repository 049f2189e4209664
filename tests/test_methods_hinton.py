import pytest
import torch
from torch import nn

from kdlab import losses, metrics
from kdlab.data import Tensors
from kdlab.losses import soft
from kdlab.methods import hinton


def blobs(n: int = 240, classes: int = 3, seed: int = 0) -> Tensors:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, 5, generator=generator) * 3
    return Tensors(centres[y] + torch.randn(n, 5, generator=generator), y)


def small() -> nn.Module:
    return nn.Linear(5, 3)


def test_objective_logs_the_weighted_loss_and_both_soft_terms():
    torch.manual_seed(0)
    model, x = small(), torch.randn(8, 5)
    y, teacher = torch.randint(0, 3, (8,)), torch.randn(8, 3)
    terms = hinton.objective(4.0, 0.7)(model, (x, y, teacher))
    student = model(x)
    torch.testing.assert_close(terms["loss"], losses.distillation_loss(student, teacher, y, 4.0, 0.7))
    p = torch.softmax(teacher / 4.0, 1)
    entropy = -(p * p.log()).sum(1).mean() * 16
    torch.testing.assert_close(terms["soft_cross_entropy"], terms["soft"] + entropy)


def test_mimic_learns_the_teacher_without_labels_with_either_loss():
    train = blobs(120)
    torch.manual_seed(5)
    teacher = small()
    with torch.no_grad():
        teacher_logits = teacher(train.x) * 3
    for loss in hinton.MIMIC_LOSSES:
        student, history = hinton.mimic(small, train.x, teacher_logits, loss=loss, temperature=2.0, epochs=20,
                                        lr=0.05, batch_size=60, progress=False)
        assert history["loss"][-1] < 0.2 * history["loss"][0]
        assert metrics.agreement(metrics.predict(student, train.x), teacher_logits) > 0.95


def test_mimic_objective_uses_the_named_loss():
    torch.manual_seed(1)
    model, x, teacher = small(), torch.randn(6, 5), torch.randn(6, 3)
    torch.testing.assert_close(hinton.mimic_objective("mse")(model, (x, teacher))["loss"],
                               losses.logit_mse(model(x), teacher))
    torch.testing.assert_close(hinton.mimic_objective("kl", 3.0)(model, (x, teacher))["loss"],
                               losses.soft_target_loss(model(x), teacher, 3.0))


def test_sweep_runs_every_pair_and_seed_like_distill():
    train = blobs(90)
    teacher_logits = soft.ensemble_logits([torch.randn(90, 3)])
    runs = hinton.sweep(small, train, teacher_logits, temperatures=[1.0, 4.0], alphas=[0.5], seeds=2,
                        epochs=1, batch_size=30, progress=False)
    assert list(runs) == [(1.0, 0.5), (4.0, 0.5)]
    _, single = hinton.distill(small, train, teacher_logits, temperature=4.0, alpha=0.5, seed=1, epochs=1,
                               batch_size=30, progress=False)
    assert runs[(4.0, 0.5)][1].last("loss") == pytest.approx(single.last("loss"))
    assert runs[(4.0, 0.5)][0].last("loss") != pytest.approx(single.last("loss"))


def test_sweep_rejects_bad_knobs_before_training():
    train = blobs(30)
    with pytest.raises(ValueError, match=r"temperatures\[2\] must be > 0, got 0"):
        hinton.sweep(small, train, torch.zeros(30, 3), temperatures=[1, 2, 0], alphas=[0.5], seeds=1,
                     epochs=1)
    with pytest.raises(ValueError, match=r"alphas\[0\] must be in \[0.0, 1.0\], got 1.5"):
        hinton.sweep(small, train, torch.zeros(30, 3), temperatures=[1], alphas=[1.5], seeds=1, epochs=1)
    with pytest.raises(ValueError, match="must not be empty"):
        hinton.sweep(small, train, torch.zeros(30, 3), temperatures=[], alphas=[0.5], seeds=1, epochs=1)


def test_without_classes_drops_the_class_and_its_teacher_rows():
    train = blobs(12)
    teacher_logits = torch.arange(36.0).reshape(12, 3)
    kept, kept_logits = hinton.without_classes(train, teacher_logits, [1])
    expected = [i for i in range(12) if int(train.y[i]) != 1]
    assert kept.y.tolist() == [int(train.y[i]) for i in expected]
    torch.testing.assert_close(kept_logits, teacher_logits[expected])
    with pytest.raises(ValueError, match=r"transfer set is empty after removing classes \[0, 1, 2\]"):
        hinton.without_classes(train, teacher_logits, [0, 1, 2])
    with pytest.raises(ValueError, match="one row per training example"):
        hinton.without_classes(train, teacher_logits[:5], [1])
    with pytest.raises(ValueError, match=r"classes must be in \[0, 2\], got 3"):
        hinton.without_classes(train, teacher_logits, [3])


def test_raise_bias_is_the_bias_of_the_logit_layer():
    torch.manual_seed(2)
    model, x = small(), torch.randn(4, 5)
    shifted = hinton.raise_bias(model(x).detach(), 2, 1.5)
    with torch.no_grad():
        model.bias[2] += 1.5
        torch.testing.assert_close(shifted, model(x))


def test_best_bias_matches_a_naive_search_and_prefers_the_smallest_tie():
    torch.manual_seed(3)
    logits, labels = torch.randn(200, 4), torch.randint(0, 4, (200,))
    logits[labels == 3, 3] -= 2.0
    amounts = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    errors = []
    for amount in amounts:
        moved = logits.clone()
        moved[:, 3] += amount
        errors.append(int((moved.argmax(1) != labels).sum()))
    assert hinton.best_bias(logits, labels, 3, amounts) == amounts[errors.index(min(errors))]
    assert hinton.best_bias(torch.tensor([[5.0, 0.0]]), torch.tensor([0]), 1, [2.0, 0.0, 1.0]) == 0.0
