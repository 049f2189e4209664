"""The `full` recipes' knobs: FSP's stage 1 on augmented batches, the teacher run on each batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdlab import augment
from kdlab.data import Tensors
from kdlab.methods import fsp
from kdlab.models.resnet import resnet

KNOBS = dict(epochs=2, lr=1e-2, batch_size=8, device="cpu", progress=False)


def make_resnet(depth: int) -> nn.Module:
    return resnet(depth, (2, 3, 4), in_channels=1, num_classes=3)


def tiny_data(n: int = 24, seed: int = 0) -> Tensors:
    gen = torch.Generator().manual_seed(seed)
    return Tensors(torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen))


def teacher_net() -> nn.Module:
    torch.manual_seed(1)
    return make_resnet(14)


def same(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


def test_the_teacher_per_batch_gives_what_its_cached_matrices_give_without_augmentation():
    train, teacher = tiny_data(), teacher_net()
    cached, history = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, **KNOBS)
    per_batch, again = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, augment=augment.Augment(),
                                     **KNOBS)
    assert again["loss"] == pytest.approx(history["loss"], rel=1e-4)
    for a, b in zip(cached.parameters(), per_batch.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert teacher.training  # the teacher's own mode is back after each batch


def test_augmentation_changes_stage_one_and_is_in_the_key():
    train, teacher = tiny_data(), teacher_net()
    knobs = dict(cache=True, **KNOBS)
    plain, _ = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, **knobs)
    shifted, _ = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, augment=augment.CIFAR, **knobs)
    assert not same(plain, shifted)
    again, _ = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, augment=augment.CIFAR, **knobs)
    assert same(again, shifted)
    other, _ = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, augment=augment.JITTER, **knobs)
    assert not same(other, shifted)


def test_a_wrong_augment_is_an_error_that_names_it():
    with pytest.raises(TypeError, match="augment must be a kdlab.augment.Augment or None, got str"):
        fsp.fsp_stage(lambda: make_resnet(8), teacher_net(), tiny_data(), augment="cifar", **KNOBS)
