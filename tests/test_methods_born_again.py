"""Born-Again Networks (Furlanello et al. 2018): the generation loop, its loss, its cache, Ens*k."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdlab import metrics
from kdlab.data import Tensors
from kdlab.methods import born_again as ban
from kdlab.methods import common, hinton

KNOBS = dict(epochs=2, batch_size=32, lr=1e-2, device="cpu", progress=False)


def blobs(n: int = 96, classes: int = 3, seed: int = 0) -> Tensors:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, 4, generator=generator) * 2
    return Tensors(centres[y] + torch.randn(n, 4, generator=generator), y)


def make_net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


def test_born_again_loss_is_half_the_seeds_sum_of_cross_entropies_with_the_same_gradient():
    # Seed 003: L(y, f(x, theta_k)) + L(f(x, theta_{k-1}), f(x, theta_k)), two cross-entropies,
    # computed here example by example with plain Python sums.
    torch.manual_seed(1)
    model, x = make_net(), torch.randn(6, 4)
    y, teacher_logits = torch.tensor([0, 2, 1, 1, 0, 2]), torch.randn(6, 3) * 2
    student_logits = model(x)
    seed_loss = torch.zeros(())
    for i in range(6):
        log_q = [student_logits[i, c] - torch.logsumexp(student_logits[i], 0) for c in range(3)]
        p = [math.exp(teacher_logits[i, c]) / sum(math.exp(v) for v in teacher_logits[i]) for c in range(3)]
        seed_loss = seed_loss - log_q[int(y[i])] - sum(p[c] * log_q[c] for c in range(3))
    seed_loss = seed_loss / 6
    teacher_entropy = -(torch.softmax(teacher_logits, 1) * torch.log_softmax(teacher_logits, 1)).sum(1).mean()

    loss = hinton.objective(1.0, 0.5)(model, (x, y, teacher_logits))["loss"]
    torch.testing.assert_close(loss, 0.5 * (seed_loss - teacher_entropy))
    ours = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    seeds = torch.autograd.grad(seed_loss, list(model.parameters()))
    for g_ours, g_seed in zip(ours, seeds, strict=True):
        torch.testing.assert_close(g_ours, 0.5 * g_seed)


def test_each_generation_learns_from_the_previous_one_with_the_same_knobs():
    train = blobs()
    result = ban.born_again(make_net, train, generations=2, seed=3, cache=False, **KNOBS)
    sequence = result.produced["generations"]
    assert list(result.stages) == ["teacher", "BAN-1", "BAN-2"] and result.model is sequence[-1].model
    assert [g.index for g in sequence] == [0, 1, 2]
    assert [g.name for g in sequence] == ["teacher", "BAN-1", "BAN-2"]
    assert all(len(g.history) == KNOBS["epochs"] for g in sequence)

    # Rebuilt by hand: the teacher on labels, then each student against its parent's logits, from a
    # fresh draw (seed + 1000 k).
    teacher, _ = common.train_model(make_net, train, seed=3, **KNOBS)
    same_weights(teacher, sequence[0].model)
    parent = teacher
    for k in (1, 2):
        targets = metrics.predict(parent, train.x)
        student, history = common.train_model(
            make_net, (train.x, train.y, targets), hinton.objective(1.0, 0.5), seed=3 + 1000 * k, **KNOBS
        )
        same_weights(student, sequence[k].model)
        assert history.last("soft") == pytest.approx(sequence[k].history.last("soft"))
        parent = student
    # Generation 1 really had a teacher term; generation 0 had none.
    assert "soft" in sequence[1].history.keys() and "soft" not in sequence[0].history.keys()


def test_cached_sequence_reloads_without_training_and_shares_generation_zero(monkeypatch):
    train = blobs()
    knobs = dict(generations=1, seed=0, cache=True, **KNOBS)
    first = ban.born_again(make_net, train, **knobs).produced["generations"]

    def refuse(*args, **kwargs):
        raise AssertionError("a cached generation was trained again")

    monkeypatch.setattr(common.train, "fit", refuse)
    again = ban.born_again(make_net, train, **knobs).produced["generations"]
    for a, b in zip(first, again, strict=True):
        same_weights(a.model, b.model)
        assert a.history.epochs == b.history.epochs
    zero, _ = ban.generation_zero(make_net, train, seed=0, cache=True, **KNOBS)
    same_weights(zero, first[0].model)
    with pytest.raises(AssertionError, match="trained again"):  # another seed is another model
        ban.generation_zero(make_net, train, seed=1, cache=True, **KNOBS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"generations": 0}, "generations must be an integer >= 1, got 0"),
        ({"generations": -2}, "generations must be an integer >= 1, got -2"),
        ({"generations": 1.5}, "generations must be an integer >= 1, got 1.5"),
        ({"generations": 1, "temperature": 0.0}, "temperature must be > 0, got 0.0"),
        ({"generations": 1, "alpha": 1.5}, r"alpha must be in \[0.0, 1.0\], got 1.5"),
    ],
)
def test_bad_knobs_fail_before_any_training(kwargs, message, monkeypatch):
    monkeypatch.setattr(common.train, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ValueError, match=message):
        ban.born_again(make_net, blobs(), cache=False, **kwargs, **KNOBS)


def test_nan_features_are_rejected_by_name(monkeypatch):
    monkeypatch.setattr(common.train, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    train = blobs()
    x = train.x.clone()
    x[5, 2] = float("nan")
    with pytest.raises(ValueError, match=r"train.x must be finite, got 1 NaN"):
        ban.born_again(make_net, Tensors(x, train.y), generations=1, cache=False, **KNOBS)
    with pytest.raises(ValueError, match=r"train.x must be finite"):
        ban.generation_zero(make_net, Tensors(x, train.y), cache=False, **KNOBS)


def test_ensembles_average_the_bans_probabilities_without_the_teacher():
    generator = torch.Generator().manual_seed(2)
    logits = [torch.randn(7, 4, generator=generator) * 3 for _ in range(4)]  # teacher, BAN-1..3
    out = ban.ensembles(logits)
    assert list(out) == ["Ens*2", "Ens*3"]
    for k in (2, 3):
        mean = sum(torch.softmax(z, 1) for z in logits[1 : k + 1]) / k
        torch.testing.assert_close(torch.softmax(out[f"Ens*{k}"], 1), mean)
    changed_teacher = ban.ensembles([logits[0] * -5, *logits[1:]])
    torch.testing.assert_close(changed_teacher["Ens*3"], out["Ens*3"])
    with pytest.raises(ValueError, match="at least two BANs"):
        ban.ensembles(logits[:2])
