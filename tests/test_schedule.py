"""fit's multi-step schedule (kdlab.train.Steps): the rate at every step against torch's own
schedulers and a formula, resume bitwise, keying by value; and make_optimizer's SGD flavours."""

import json
import math
import pickle
import re

import numpy as np
import pytest
import torch

from kdlab import cache, data, models, train
from kdlab.train import Steps, fit, make_optimizer


def digits_loader(batch_size=64):
    split = data.load("digits")
    return data.TensorLoader(*split.train.tensors, batch_size=batch_size, seed=0)


def net():
    torch.manual_seed(0)
    return models.mlp((64, 32, 10), dropout=0.3)


def rates(schedule, epochs, lr=0.1, batch_size=256):
    """The learning rate of every optimiser step of a fit with ``schedule``, and steps per epoch."""
    loader = digits_loader(batch_size)
    model = net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    seen = []

    def objective(model, batch):
        seen.append(optimizer.param_groups[0]["lr"])
        return train.cross_entropy(model, batch)

    fit(model, loader, objective, epochs=epochs, optimizer=optimizer, schedule=schedule, device="cpu")
    return seen, len(loader)


def test_steps_decay_at_the_epoch_milestones_as_torch_multisteplr():
    seen, per_epoch = rates(Steps((2, 4), 0.1), epochs=6)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.1)
    expected = []
    for _ in range(6):  # torch's scheduler stepped once per epoch
        expected += [optimizer.param_groups[0]["lr"]] * per_epoch
        optimizer.step()
        reference.step()
    assert len(seen) == 6 * per_epoch
    assert seen == pytest.approx(expected, rel=1e-12)
    assert sorted(set(np.round(seen, 12))) == [0.001, 0.01, 0.1]


def test_warmup_rises_linearly_to_the_rate_then_steps_decay():
    seen, per_epoch = rates(("step", (3,), 0.5, 2), epochs=5, lr=0.2)  # the plain-tuple form
    warmup = 2 * per_epoch
    ramp = np.linspace(0.2 / warmup, 0.2, warmup)
    expected = np.concatenate([ramp, np.full(per_epoch, 0.2), np.full(2 * per_epoch, 0.1)])
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
    assert seen[warmup - 1] == 0.2 and seen[0] > 0


def test_cosine_and_none_are_unchanged():
    seen, per_epoch = rates("cosine", epochs=2)
    total = 2 * per_epoch
    assert seen == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * s / total)) for s in range(total)])
    assert rates(None, epochs=1)[0] == [0.1] * per_epoch


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "schedule", [Steps((1, 2), 0.1, warmup_epochs=1), ("step", (2,), 0.5)], ids=["steps", "tuple"]
)
def test_resume_with_steps_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, schedule):
    knobs = dict(epochs=3, lr=0.05, weight_decay=5e-4, optimizer="sgd", schedule=schedule, device="cpu")
    reference = net()
    history = fit(reference, digits_loader(), checkpoint=tmp_path / "a.pt", **knobs)
    per_epoch, calls = len(digits_loader()), {"n": 0}

    def interrupting(model, batch):
        calls["n"] += 1
        if calls["n"] > 2 * per_epoch + 3:  # dies in the middle of the third epoch, after a milestone
            raise Interrupt
        return train.cross_entropy(model, batch)

    with pytest.raises(Interrupt):
        fit(net(), digits_loader(), interrupting, checkpoint=tmp_path / "b.pt", **knobs)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epochs_done"] == 2
    resumed = net()
    again = fit(resumed, digits_loader(), checkpoint=tmp_path / "b.pt", resume=True, **knobs)
    assert again["lr"] == history["lr"] and len(again) == 3
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_steps_is_keyed_by_value():
    steps = Steps((150, 180, 210), 0.1)
    plain = ("step", (150, 180, 210), 0.1, 0)
    assert steps == plain and hash(steps) == hash(plain)
    assert (steps.milestones, steps.gamma, steps.warmup_epochs) == ((150, 180, 210), 0.1, 0)
    assert json.loads(json.dumps(steps)) == ["step", [150, 180, 210], 0.1, 0]
    for copy in (pickle.loads(pickle.dumps(steps)), eval(repr(steps), {"Steps": Steps})):
        assert type(copy) is Steps and copy == steps
    assert cache.key("fit", {"schedule": steps}) == cache.key("fit", {"schedule": plain})
    assert cache.key("fit", {"schedule": steps}) != cache.key("fit", {"schedule": Steps((150, 180), 0.1)})
    assert Steps([150, 180, 210], gamma=0.1) == steps != Steps((150, 180, 210), 0.1, warmup_epochs=1)


def test_bad_schedules_are_clear():
    increasing = "milestones must be strictly increasing integer epochs >= 1, got "
    with pytest.raises(ValueError, match=increasing + r"\(3, 2\)"):
        Steps((3, 2))
    with pytest.raises(ValueError, match=r"milestones must be strictly increasing .* got \(0,\)"):
        Steps((0,))
    with pytest.raises(ValueError, match=increasing + "150"):
        Steps(150)
    with pytest.raises(ValueError, match="gamma must be > 0, got 0"):
        Steps((1,), 0)
    with pytest.raises(ValueError, match="warmup_epochs must be an integer >= 0, got -1"):
        Steps((1,), 0.1, -1)
    loader = digits_loader()
    one_of = r"schedule must be one of \[None, 'cosine'\] or a kdlab.train.Steps.*got "
    for bad in ("linear", ("step",), ("cosine", (1,), 0.1)):
        with pytest.raises(ValueError, match=one_of + re.escape(repr(bad))):
            fit(net(), loader, epochs=1, schedule=bad)


def test_sgd_keeps_nesterov_momentum_by_default_and_can_drop_nesterov():
    parameters = [torch.zeros(2, requires_grad=True)]
    default = make_optimizer("sgd", parameters, 0.05, 5e-4)
    plain = make_optimizer("sgd", parameters, 0.05, 5e-4, nesterov=False)
    assert default.param_groups[0]["nesterov"] is True and plain.param_groups[0]["nesterov"] is False
    for optimizer in (default, plain):
        group = optimizer.param_groups[0]
        assert (group["momentum"], group["lr"], group["weight_decay"]) == (0.9, 0.05, 5e-4)
    # plain heavy-ball momentum, by hand: v <- 0.9 v + g, w <- w - lr v (g = 1 here, no decay)
    w = torch.zeros(1, requires_grad=True)
    optimizer = make_optimizer("sgd", [w], 0.1, nesterov=False)
    for _ in range(2):
        optimizer.zero_grad()
        w.sum().backward()
        optimizer.step()
    assert w.item() == pytest.approx(-(0.1 * 1 + 0.1 * 1.9))


def test_sgd_momentum_is_plain_momentum_by_name_so_a_recipe_knob_can_ask_for_it():
    w = torch.zeros(1, requires_grad=True)
    optimizer = make_optimizer("sgd_momentum", [w], 0.1)
    assert optimizer.param_groups[0]["nesterov"] is False and optimizer.param_groups[0]["momentum"] == 0.9
    for _ in range(2):
        optimizer.zero_grad()
        w.sum().backward()
        optimizer.step()
    assert w.item() == pytest.approx(-(0.1 * 1 + 0.1 * 1.9))  # the same steps as by hand above
    with pytest.raises(ValueError, match="optimizer must be one of .*'sgd_momentum'.*got 'momentum'"):
        make_optimizer("momentum", [w], 0.1)
