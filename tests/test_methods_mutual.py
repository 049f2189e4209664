import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdlab import metrics
from kdlab.data import Tensors
from kdlab.methods import hint_mutual, mutual
from kdlab.models.vgg import STUDENT_CFG, TEACHER_CFG, vgg


def _linear(classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(4, classes))


@pytest.fixture
def tiny():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 2, 2, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    return Tensors(x, y)


def _clones(k: int, seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [_linear() for _ in range(k)]


def _by_hand(students, x, y, in_turn: bool, lr: float = 0.1):
    """Algorithm 1 of Zhang et al. on one batch, written out: one SGD optimiser per student, and
    every peer's prediction recomputed right before each update (or all taken at the start)."""
    optimizers = [torch.optim.SGD(s.parameters(), lr=lr) for s in students]
    start = [s(x).detach() for s in students]
    for k, (student, optimizer) in enumerate(zip(students, optimizers, strict=True)):
        peers = [(s(x).detach() if in_turn else start[j]) for j, s in enumerate(students) if j != k]
        logits = student(x)
        kl = sum(F.kl_div(F.log_softmax(logits, 1), F.softmax(p, 1), reduction="batchmean") for p in peers)
        optimizer.zero_grad()
        (F.cross_entropy(logits, y) + kl / len(peers)).backward()
        optimizer.step()
    return students


@pytest.mark.parametrize("update", ["in_turn", "simultaneous"])
@pytest.mark.parametrize("k", [2, 3])
def test_one_batch_matches_algorithm_written_out(tiny, update, k):
    cohort, _ = mutual.fit_cohort(
        _clones(k), tiny, epochs=1, batch_size=16, optimizer="sgd", lr=0.1, update=update, progress=False
    )
    # fit's SGD has Nesterov momentum 0.9; on the first step the buffer is the gradient itself, so
    # its step is lr * (1 + 0.9) * grad.
    expected = _by_hand(_clones(k), tiny.x, tiny.y, in_turn=update == "in_turn", lr=0.1 * 1.9)
    for got, want in zip(cohort, expected, strict=True):
        for p, q in zip(got.parameters(), want.parameters(), strict=True):
            torch.testing.assert_close(p, q)


def test_in_turn_and_simultaneous_differ_after_the_first_student(tiny):
    runs = {
        update: mutual.fit_cohort(_clones(2), tiny, epochs=1, batch_size=16, optimizer="sgd", lr=0.5,
                                  update=update, progress=False)[0]
        for update in ("in_turn", "simultaneous")
    }
    torch.testing.assert_close(runs["in_turn"][0].state_dict(), runs["simultaneous"][0].state_dict())
    assert not torch.allclose(runs["in_turn"][1][1].weight, runs["simultaneous"][1][1].weight)


@pytest.mark.parametrize("update, extra", [("simultaneous", 0), ("in_turn", 1), ("independent", 0)])
@pytest.mark.parametrize("k", [2, 4])
def test_forward_passes_per_batch(tiny, update, extra, k):
    students = mutual.cohort(_clones(k))
    calls = [0]
    for s in students:
        s.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    steps = list(mutual.objective(update)(students, (tiny.x, tiny.y)))
    for step in steps:
        step["loss"].backward()
    assert len(steps) == (k if update == "in_turn" else 1)
    assert calls[0] == k + extra * (k - 1)


def test_independent_equals_each_student_trained_alone(tiny):
    from kdlab import train
    from kdlab.data import TensorLoader

    cohort, _ = mutual.fit_cohort(
        _clones(2), tiny, epochs=2, batch_size=4, update="independent", progress=False
    )
    for k, alone in enumerate(_clones(2)):
        train.fit(alone, TensorLoader(tiny.x, tiny.y, batch_size=4, seed=0), epochs=2, progress=False)
        torch.testing.assert_close(cohort[k].state_dict(), alone.state_dict())


def test_evaluation_counts_errors_and_ensemble(tiny):
    students = mutual.cohort(_clones(3))
    row = mutual.evaluation(tiny)(students)
    logits = [metrics.predict(s, tiny.x) for s in students]
    for k, z in enumerate(logits):
        assert row[f"test_error/{k}"] == int((z.argmax(1) != tiny.y).sum())
    mean_p = sum(torch.softmax(z, 1) for z in logits) / 3
    assert row["test_error/ensemble"] == int((mean_p.argmax(1) != tiny.y).sum())
    assert row["test_error/mean"] == pytest.approx(sum(row[f"test_error/{k}"] for k in range(3)) / 3)


def test_evaluation_every_and_last_epoch(tiny):
    evaluate = mutual.evaluation(tiny, every=3, epochs=4)
    students = mutual.cohort(_clones(2))
    filled = [bool(evaluate(students)) for _ in range(4)]
    assert filled == [False, False, True, True]


def test_history_logs_each_student(tiny):
    _, history = mutual.train([_linear] * 2, tiny, test=tiny, epochs=2, batch_size=8, progress=False)
    assert {"ce/0", "ce/1", "kl/0", "kl/1", "test_error/0", "test_error/ensemble"} <= set(history.keys())
    assert len(history) == 2


def test_train_is_seeded(tiny):
    runs = [mutual.train([_linear] * 2, tiny, epochs=1, batch_size=8, seed=3, progress=False)[0]
            for _ in range(2)]
    torch.testing.assert_close(runs[0].state_dict(), runs[1].state_dict())
    assert not torch.equal(runs[0][0][1].weight, runs[0][1][1].weight)  # each student its own start


def test_bad_cohorts(tiny):
    with pytest.raises(ValueError, match="at least 2 students"):
        mutual.cohort([_linear()])
    with pytest.raises(ValueError, match="at least 2 students"):
        mutual.train([_linear], tiny, epochs=1)
    with pytest.raises(TypeError, match="single module"):
        mutual.cohort(_linear())
    with pytest.raises(ValueError, match="same number of classes, got student 0: 3, student 1: 5"):
        mutual.fit_cohort([_linear(3), _linear(5)], tiny, epochs=1)
    with pytest.raises(ValueError, match="update must be one of"):
        mutual.objective("alternating")
    with pytest.raises(ValueError, match="betas"):
        mutual.fit_cohort(_clones(2), tiny, epochs=1, optimizer="sgd", betas=(0.5, 0.99))


# Hint-pretrained mutual learning: small nets on 8x8 images.
STUDENT = (4, "H", "M", 4, "M")
TEACHER = (6, "G", "M", 6, "M")
KW = dict(in_channels=1, image_size=8, hidden=(8,))


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return Tensors(torch.rand(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g))


def test_scaled_vgg_keeps_the_seed_nets_at_width_one():
    for cfg, count in ((TEACHER_CFG, 2_440_394), (STUDENT_CFG, 1_497_434)):
        assert metrics.parameter_count(hint_mutual.scaled_vgg(cfg)) == count
        assert metrics.parameter_count(vgg(cfg)) == count
    half = hint_mutual.scaled_vgg(STUDENT_CFG, 0.5, in_channels=1, image_size=28)
    assert half.conv1.out_channels == 8 and half.fc1.out_features == 128 and hasattr(half, "hint")


def test_scaled_vgg_kaiming_init():
    torch.manual_seed(0)
    net = hint_mutual.scaled_vgg((64, 64, "M"), init="kaiming", hidden=(512,))
    std = float(net.conv2.weight.detach().std())
    assert std == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert float(net.conv2.bias.detach().abs().sum()) == 0.0


def test_bad_configs():
    with pytest.raises(ValueError, match="markers"):
        hint_mutual.scaled_vgg((4, "X", "M"))
    with pytest.raises(ValueError, match="width must be > 0"):
        hint_mutual.scaled_vgg(STUDENT_CFG, 0.0)
    with pytest.raises(ValueError, match="init must be one of"):
        hint_mutual.scaled_vgg(STUDENT_CFG, init="xavier")
    with pytest.raises(ValueError, match="'H' marker"):
        hint_mutual.prefix(vgg((4, "M"), **KW), "hint")


def test_hint_targets_are_the_teachers_guided_layer(images):
    from kdlab.features import capture

    torch.manual_seed(0)
    teacher = vgg(TEACHER, **KW)
    with capture(teacher, "guided", detach=True) as feats:
        teacher.eval()
        teacher(images.x)
    torch.testing.assert_close(hint_mutual.hint_targets(teacher, images.x, batch_size=7), feats["guided"])


def test_pretrain_fits_the_prefix_and_leaves_the_rest(images):
    torch.manual_seed(0)
    teacher, student = vgg(TEACHER, **KW), vgg(STUDENT, **KW)
    targets = hint_mutual.hint_targets(teacher, images.x)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    history = hint_mutual.pretrain(
        student, images.x, targets, epochs=5, lr=1e-2, batch_size=8, progress=False
    )
    assert history["loss"][-1] < history["loss"][0]
    after = student.state_dict()
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])
    for name in ("conv2.weight", "fc1.weight", "logits.weight"):
        torch.testing.assert_close(before[name], after[name])


def test_hint_mutual_needs_markers(images):
    torch.manual_seed(0)
    teacher = vgg(TEACHER, **KW)
    no_hint = lambda: vgg((4, "M", 4, "M"), **KW)  # noqa: E731
    with pytest.raises(ValueError, match="'H' marker"):
        hint_mutual.train([no_hint] * 2, teacher, images, stage_epochs=1, epochs=1)
    with pytest.raises(ValueError, match="'G' marker"):
        hint_mutual.train([lambda: vgg(STUDENT, **KW)] * 2, vgg((4, "M"), **KW), images,
                          stage_epochs=1, epochs=1)
    with pytest.raises(ValueError, match="at least 2 students"):
        hint_mutual.train([lambda: vgg(STUDENT, **KW)], teacher, images, stage_epochs=1, epochs=1)


def test_hint_mutual_is_seed_build_pretrain_then_dml(images):
    from kdlab import runtime

    torch.manual_seed(0)
    teacher = vgg(TEACHER, **KW)
    make = lambda: vgg(STUDENT, **KW)  # noqa: E731
    knobs = dict(epochs=1, batch_size=8, progress=False, lr=3e-4, betas=(0.5, 0.99))
    result = hint_mutual.train([make] * 2, teacher, images, stage_epochs=2, seed=5, test=images, **knobs)
    cohort, history = result
    assert list(result.stages) == ["hint, student 0", "hint, student 1", "cohort"]
    hints = [result.stages[f"hint, student {k}"] for k in range(2)]
    assert len(hints) == 2 and len(hints[0]) == 2 and "test_error/ensemble" in history.keys()
    runtime.seed_everything(5)
    students = [make(), make()]
    targets = hint_mutual.hint_targets(teacher, images.x)
    for k, student in enumerate(students):
        hint_mutual.pretrain(student, images.x, targets, epochs=2, batch_size=8, seed=5 + k, progress=False)
    expected, _ = mutual.fit_cohort(students, images, seed=5, **knobs)
    torch.testing.assert_close(cohort.state_dict(), expected.state_dict())
    plain, _ = mutual.train([make] * 2, images, seed=5, **knobs)
    assert not torch.equal(cohort[0].conv1.weight, plain[0].conv1.weight)


def test_cached_cohorts_train_once_and_load_the_same_weights_and_history(images, monkeypatch):
    torch.manual_seed(0)
    teacher = vgg(TEACHER, **KW)
    make = lambda: vgg(STUDENT, **KW)  # noqa: E731
    knobs = dict(epochs=1, batch_size=8, progress=False, test=images, seed=2)
    plain, plain_history = mutual.train([make] * 2, images, **knobs)
    first, first_history = mutual.train([make] * 2, images, cache=True, **knobs)
    hinted = hint_mutual.train([make] * 2, teacher, images, stage_epochs=1, cache=True, **knobs)
    torch.testing.assert_close(first.state_dict(), plain.state_dict())  # caching changes nothing

    def no_training(*args, **kwargs):
        raise AssertionError("a cached cohort was trained again")

    monkeypatch.setattr(mutual, "fit_cohort", no_training)
    again, again_history = mutual.train([make] * 2, images, cache=True, **knobs)
    torch.testing.assert_close(again.state_dict(), first.state_dict())
    assert again_history.to_dict() == first_history.to_dict()
    def timeless(history):  # the same run but for the seconds each epoch took
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history.to_dict()["epochs"]]

    assert timeless(first_history) == timeless(plain_history)
    again = hint_mutual.train([make] * 2, teacher, images, stage_epochs=1, cache=True, **knobs)
    torch.testing.assert_close(again.model.state_dict(), hinted.model.state_dict())
    assert again.history.to_dict() == hinted.history.to_dict() and len(again.stages) == 3
    def stages(result):
        return {name: history.to_dict() for name, history in result.stages.items()}

    assert stages(again) == stages(hinted)
    # Another test set, another entry: the cached History's test metrics are those of its test set.
    with pytest.raises(AssertionError, match="trained again"):
        mutual.train([make] * 2, images, cache=True, **{**knobs, "test": Tensors(images.x[:8], images.y[:8])})
