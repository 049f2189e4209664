"""Distillation on augmented inputs: the teacher runs on every augmented batch, fixed logits are refused."""

import pytest
import torch

from kdlab import augment, cache, data, metrics, models
from kdlab.data import Tensors
from kdlab.methods import born_again, fitnets, hinton, mutual, train_model

KNOBS = dict(epochs=1, batch_size=50, lr=1e-2, device="cpu", progress=False)


@pytest.fixture(scope="module")
def digits():
    split = data.load("digits")
    return Tensors(split.train.x[:200], split.train.y[:200])


def teacher_net():
    torch.manual_seed(0)
    return models.lenet((8, 8, 16), image_size=8)


def student():
    return models.lenet((4, 4, 8), image_size=8)


def same(a, b):
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


def test_fixed_logits_with_augmentation_are_an_error(digits):
    logits = metrics.predict(teacher_net(), digits.x)
    with pytest.raises(ValueError, match="cannot be used with augment.*teacher module"):
        hinton.distill(student, digits, logits, temperature=4.0, alpha=0.9, augment=augment.JITTER, **KNOBS)
    with pytest.raises(ValueError, match="cannot be used with augment"):
        fitnets.distill(student, digits, logits, temperature=4.0, alpha=0.9, augment=augment.CIFAR, **KNOBS)


def test_the_teacher_per_batch_gives_what_its_fixed_logits_give_without_augmentation(digits):
    teacher = teacher_net()
    fixed, history = hinton.distill(student, digits, metrics.predict(teacher, digits.x), temperature=4.0,
                                    alpha=0.9, **KNOBS)
    per_batch, again = hinton.distill(student, digits, teacher, temperature=4.0, alpha=0.9, **KNOBS)
    assert again.last("soft") == pytest.approx(history.last("soft"), rel=1e-4)
    for a, b in zip(fixed.parameters(), per_batch.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_augmentation_changes_training_and_is_in_the_key(digits):
    teacher = teacher_net()
    plain, _ = hinton.distill(student, digits, teacher, temperature=4.0, alpha=0.9, cache=True, **KNOBS)
    jittered, _ = hinton.distill(student, digits, teacher, temperature=4.0, alpha=0.9, cache=True,
                                 augment=augment.JITTER, **KNOBS)
    assert not same(plain, jittered)
    again, _ = hinton.distill(student, digits, teacher, temperature=4.0, alpha=0.9, cache=True,
                              augment=augment.JITTER, **KNOBS)
    assert same(again, jittered)
    assert cache.key("m", {"a": augment.JITTER}) != cache.key("m", {"a": augment.CIFAR})
    with pytest.raises(ValueError, match="augment works on tensors"):
        loader = torch.utils.data.DataLoader(digits, batch_size=10)
        train_model(student, loader, augment=augment.JITTER, **KNOBS)


def test_born_again_and_mutual_learning_train_on_augmented_batches(digits):
    result = born_again.born_again(student, digits, generations=1, augment=augment.JITTER, **KNOBS)
    assert list(result.stages) == ["teacher", "BAN-1"]
    cohort, history = mutual.train([student, student], digits, augment=augment.JITTER, test=digits, **KNOBS)
    plain, _ = mutual.train([student, student], digits, test=digits, **KNOBS)
    assert len(cohort) == 2 and "test_error/ensemble" in history.keys()
    assert not same(cohort, plain)


def test_mimicry_of_a_teacher_module_on_unlabelled_augmented_inputs(digits):
    teacher = teacher_net()
    fixed, _ = hinton.mimic(student, digits.x, metrics.predict(teacher, digits.x), loss="mse", **KNOBS)
    per_batch, _ = hinton.mimic(student, digits.x, teacher, loss="mse", **KNOBS)
    for a, b in zip(fixed.parameters(), per_batch.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    jittered, _ = hinton.mimic(student, digits.x, teacher, loss="mse", augment=augment.JITTER, **KNOBS)
    assert not same(jittered, per_batch)


def test_distill_takes_augment_for_every_method_that_can_use_it(digits):
    import kdlab

    teacher = teacher_net()
    knobs = dict(KNOBS, augment=augment.JITTER)
    for method in ("hinton", "logits", "born_again"):
        model, history = kdlab.distill(teacher, student, digits, digits, method=method, **knobs)
        plain, _ = kdlab.distill(teacher, student, digits, digits, method=method, **KNOBS)
        assert not same(model, plain), method
    with pytest.raises(ValueError, match="'tsne' takes no augment"):
        kdlab.distill(teacher, student, digits, method="tsne", perplexity=5.0, **knobs)
