"""tsneNet's recipe: fixed batches, cached per-batch P, the hybrid objective and its errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdlab import models
from kdlab.data import Tensors
from kdlab.losses.soft import soft_target_loss
from kdlab.losses.tsne import tsne_p
from kdlab.methods.tsne import FixedBatches, batch_p, distill, features_of, objective, partition


def tiny_lenet(widths=(4, 6, 8)):
    return models.lenet(widths, image_size=8)


def by_hand_fc(model, x):
    # The lenet's penultimate features without hooks: the layers up to and including fc.
    return model.fc(model.flatten(model.conv2(model.conv1(x))))


def naive_q(features, alpha):
    n = features.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            if i != j:
                d = float(((features[i] - features[j]) ** 2).sum())
                gaussian = math.isinf(alpha)
                kernel[i, j] = math.exp(-d / 2) if gaussian else (1 + d / alpha) ** (-(alpha + 1) / 2)
    return kernel / kernel.sum()


def naive_kl(p, q):
    return sum(float(p[i, j]) * math.log(float(p[i, j]) / float(q[i, j]))
               for i in range(p.shape[0]) for j in range(p.shape[1]) if p[i, j] > 0)


@pytest.fixture(autouse=True)
def _one_thread():
    # These models are tiny: one thread avoids thread-pool overhead, which dominates on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def setting(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(120, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (120,), generator=generator)
    torch.manual_seed(1)
    teacher = tiny_lenet((8, 8, 24)).eval()
    return Tensors(x, y), teacher


def test_partition_is_a_seeded_partition_that_drops_the_rest():
    batches = partition(107, 10, seed=3)
    assert batches.shape == (10, 10)
    assert len(set(batches.flatten().tolist())) == 100
    assert set(batches.flatten().tolist()) <= set(range(107))
    assert torch.equal(batches, partition(107, 10, seed=3))
    assert not torch.equal(batches, partition(107, 10, seed=4))


def test_fixed_batches_keep_membership_and_shuffle_the_order():
    values = torch.arange(40).reshape(8, 5)
    loader = FixedBatches(values, values * 2, seed=0)
    epochs = [[tuple(b[0].tolist()) for b in loader] for _ in range(3)]
    for epoch in epochs:
        assert sorted(epoch) == sorted(tuple(row) for row in values.tolist())
    assert len({tuple(e) for e in epochs}) > 1
    first = next(iter(FixedBatches(values, values * 2, seed=0)))
    assert torch.equal(first[1], first[0] * 2)


def test_fixed_batches_resume_the_same_order():
    values = torch.arange(60).reshape(12, 5)
    loader = FixedBatches(values, seed=5)
    list(loader)
    state = loader.state_dict()
    expected = [b[0].tolist() for b in loader]
    again = FixedBatches(values, seed=99)
    again.load_state_dict(state)
    assert [b[0].tolist() for b in again] == expected


def test_batch_p_is_tsne_p_of_each_batch_of_the_teacher_features(setting):
    train, teacher = setting
    batches = partition(len(train), 20, seed=0)
    p = batch_p(teacher, train.x, batches, perplexity=5.0, pca_dim=10)
    with torch.no_grad():
        found = by_hand_fc(teacher, train.x)
    assert p.shape == (6, 20, 20)
    for b in (0, 5):
        expected = tsne_p(found[batches[b]], 5.0, pca_dim=10)
        torch.testing.assert_close(p[b], expected)
    assert torch.equal(batch_p(teacher, train.x, batches, perplexity=5.0, pca_dim=10), p)  # from the cache
    other = batch_p(teacher, train.x, batches, perplexity=8.0, pca_dim=10)
    assert not torch.allclose(other, p)


def test_features_of_matches_the_layers_by_hand_and_keeps_the_mode(setting):
    train, teacher = setting
    teacher.train()
    with torch.no_grad():
        expected = by_hand_fc(teacher, train.x)
    torch.testing.assert_close(features_of(teacher, train.x, batch_size=7), expected)
    assert teacher.training


@pytest.mark.parametrize("alpha", [math.inf, 1.0, 3.0])
def test_objective_is_cross_entropy_plus_beta_times_a_naive_kl(setting, alpha):
    train, teacher = setting
    batches = partition(len(train), 12, seed=0)
    p = batch_p(teacher, train.x, batches, perplexity=4.0, pca_dim=None)[0]
    x, y = train.x[batches[0]], train.y[batches[0]]
    torch.manual_seed(2)
    student = tiny_lenet()
    terms = objective(0.3, alpha)(student, (x, y, p))
    with torch.no_grad():
        found = by_hand_fc(student, x).double()
        logits = student(x)
    kl = naive_kl(p.double(), naive_q(found, alpha))
    expected = float(F.cross_entropy(logits, y)) + 0.3 * kl
    assert float(terms["loss"].detach()) == pytest.approx(expected, rel=1e-4)
    assert float(terms["tsne"]) == pytest.approx(kl, rel=1e-4)


def test_beta_zero_gives_the_cross_entropy_gradient(setting):
    train, teacher = setting
    batches = partition(len(train), 12, seed=0)
    p = batch_p(teacher, train.x, batches, perplexity=4.0)[0]
    x, y = train.x[batches[0]], train.y[batches[0]]
    torch.manual_seed(2)
    student = tiny_lenet()
    objective(0.0)(student, (x, y, p))["loss"].backward()
    ours = [q.grad.clone() for q in student.parameters()]
    student.zero_grad()
    F.cross_entropy(student(x), y).backward()
    for a, b in zip(ours, (q.grad for q in student.parameters()), strict=True):
        torch.testing.assert_close(a, b)
    student.zero_grad()
    objective(1.0)(student, (x, y, p))["loss"].backward()
    assert not torch.allclose(student.fc[0].weight.grad, ours[4])


def test_uncached_objective_equals_the_cached_one(setting):
    train, teacher = setting
    batches = partition(len(train), 15, seed=0)
    p = batch_p(teacher, train.x, batches, perplexity=5.0, pca_dim=6)
    x, y = train.x[batches[2]], train.y[batches[2]]
    student = tiny_lenet()
    cached = objective(0.5, 2.0)(student, (x, y, p[2]))
    online = objective(0.5, 2.0, teacher=teacher, perplexity=5.0, pca_dim=6)(student, (x, y))
    torch.testing.assert_close(cached["loss"], online["loss"])


def test_soft_targets_join_as_hintons_weighted_average(setting):
    train, teacher = setting
    batches = partition(len(train), 12, seed=0)
    p = batch_p(teacher, train.x, batches, perplexity=4.0)[1]
    x, y = train.x[batches[1]], train.y[batches[1]]
    with torch.no_grad():
        teacher_logits = teacher(x)
    student = tiny_lenet()
    terms = objective(0.2, temperature=4.0, alpha=0.7)(student, (x, y, p, teacher_logits))
    with torch.no_grad():
        student_logits = student(x)
    soft = soft_target_loss(student_logits, teacher_logits, 4.0)
    expected = 0.3 * F.cross_entropy(student_logits, y) + 0.7 * soft + 0.2 * terms["tsne"]
    torch.testing.assert_close(terms["loss"].detach(), expected)


def test_distill_with_and_without_the_p_cache_trains_the_same_student(setting):
    train, teacher = setting
    knobs = dict(beta=0.5, perplexity=5.0, batch_size=20, epochs=2, seed=3, progress=False)
    cached, history = distill(tiny_lenet, train, teacher, **knobs)
    online, _ = distill(tiny_lenet, train, teacher, precompute_p=False, **knobs)
    for a, b in zip(cached.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert len(history) == 2 and history.last("tsne") > 0


def test_distill_caches_the_trained_student(setting):
    train, teacher = setting
    knobs = dict(beta=0.1, tsne_alpha=2.0, perplexity=5.0, batch_size=20, epochs=1, seed=0, progress=False,
                 cache=True)
    first, history = distill(tiny_lenet, train, teacher, **knobs)
    second, again = distill(tiny_lenet, train, teacher, **knobs)
    assert again.epochs == history.epochs
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a.detach().cpu(), b.detach().cpu())
    third, _ = distill(tiny_lenet, train, teacher, **{**knobs, "beta": 0.2})
    assert not torch.allclose(first.fc[0].weight.cpu(), third.fc[0].weight.cpu())


@pytest.mark.parametrize(
    ("knobs", "error", "message"),
    [
        ({"beta": -0.1}, ValueError, "beta must be >= 0"),
        ({"beta": 0.1, "perplexity": 19.0}, ValueError, r"perplexity must be in \(1, 19\)"),
        ({"beta": 0.1, "perplexity": 30.0}, ValueError, "perplexity"),
        ({"beta": 0.1, "tsne_alpha": 0.0}, ValueError, "tsne_alpha must be > 0"),
        ({"beta": 0.1, "layer": "fc7"}, KeyError, "student layer: model has no layer named 'fc7'"),
        ({"beta": 0.1, "teacher_layer": "penultimate"}, KeyError, "teacher layer: model has no layer"),
        ({"beta": 0.1, "temperature": 4.0}, ValueError, "temperature and alpha go together"),
        ({"beta": 0.1, "batch_size": 500}, ValueError, "batch_size must be <= the number"),
        ({"beta": 0.1, "batch_size": 1}, ValueError, "batch_size must be an integer >= 2"),
    ],
)
def test_bad_knobs_fail_before_training(setting, knobs, error, message):
    train, teacher = setting
    with pytest.raises(error, match=message):
        distill(tiny_lenet, train, teacher,
                **{"batch_size": 20, "perplexity": 5.0, "epochs": 1, "progress": False, **knobs})


def test_bad_inputs_of_the_parts():
    with pytest.raises(ValueError, match="batch_size must be <= the number of training examples"):
        partition(50, 100)
    with pytest.raises(ValueError, match="same first two sizes"):
        FixedBatches(torch.zeros(4, 5), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="beta must be >= 0"):
        objective(float("nan"))
    with pytest.raises(ValueError, match=r"perplexity must be in \(1, 9\)"):
        batch_p(tiny_lenet(), torch.zeros(20, 1, 8, 8), partition(20, 10), perplexity=9.0)
