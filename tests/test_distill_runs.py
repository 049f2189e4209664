"""kdlab.distill's run knobs: checkpoint and resume, a val split selecting the returned epoch, a CSV log,
TensorBoard events."""

import csv
import math

import pytest
import torch

import kdlab
from kdlab import data, models, train
from kdlab.data import Tensors

KNOBS = dict(method="hinton", epochs=4, lr=1e-1, batch_size=128, device="cpu", progress=False)


def student():
    return models.mlp((64, 16, 10))


@pytest.fixture(scope="module")
def parts():
    split = data.load("digits")
    x, y = split.train.tensors
    torch.manual_seed(1)
    teacher = models.mlp((64, 10))
    return teacher, Tensors(x[:1000], y[:1000]), Tensors(x[1000:], y[1000:]), split.test


class Killed(Exception):
    pass


def kill_after(monkeypatch, steps):
    """Make fit's step raise after ``steps`` batches, as a killed process would stop."""
    run, calls = train._Step.run, {"n": 0}

    def dying(self, *args):
        calls["n"] += 1
        if calls["n"] > steps:
            raise Killed
        return run(self, *args)

    monkeypatch.setattr(train._Step, "run", dying)


def same_weights(a, b):
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


def test_a_killed_run_resumed_through_distill_equals_the_unbroken_run(parts, tmp_path, monkeypatch):
    teacher, tr, val, test = parts
    unbroken, history = kdlab.distill(
        teacher, student, tr, test, val=val, checkpoint=tmp_path / "a.pt", **KNOBS
    )
    per_epoch = math.ceil(len(tr) / KNOBS["batch_size"])
    with monkeypatch.context() as patch:
        kill_after(patch, 2 * per_epoch + 3)  # dies in epoch 3 of 4
        with pytest.raises(Killed):
            kdlab.distill(teacher, student, tr, test, val=val, checkpoint=tmp_path / "b.pt", **KNOBS)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epochs_done"] == 2
    resumed, again = kdlab.distill(
        teacher, student, tr, test, val=val, checkpoint=tmp_path / "b.pt", resume=True, **KNOBS
    )
    assert same_weights(unbroken, resumed)
    assert again.best_epoch == history.best_epoch and again["val_error"] == history["val_error"]


def error_count(model, part):
    with torch.no_grad():
        return int((model(part.x).argmax(1) != part.y).sum())


def test_val_selects_the_best_epoch_and_returns_its_weights(parts):
    teacher, tr, val, test = parts
    model, history = kdlab.distill(teacher, student, tr, test, val=val, **KNOBS)
    errors = history["val_error"]
    assert len(history) == KNOBS["epochs"] and history.best_epoch == errors.index(min(errors)) + 1
    assert history.best_epoch < KNOBS["epochs"]  # these knobs pick an earlier epoch (the first of a tie)
    assert error_count(model, val) == min(errors)
    assert error_count(model, test) == history.best("test_error")
    assert history.last("test_error") == history["test_error"][-1]  # both numbers, each labelled
    # The kept weights are those of a run stopped at the chosen epoch (constant rate, same batch order).
    stopped, _ = kdlab.distill(teacher, student, tr, test, **{**KNOBS, "epochs": history.best_epoch})
    assert same_weights(model, stopped)
    assert train.History.from_dict(history.to_dict()).best_epoch == history.best_epoch


def test_the_chosen_epoch_never_depends_on_the_test_set(parts):
    teacher, tr, val, test = parts
    model, history = kdlab.distill(teacher, student, tr, test, val=val, **KNOBS)
    noise = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(3))
    other = Tensors(test.x.flip(0)[:200], noise)
    for changed in (other, None):
        again, history_again = kdlab.distill(teacher, student, tr, changed, val=val, **KNOBS)
        assert history_again.best_epoch == history.best_epoch
        assert same_weights(model, again)


def test_val_equal_to_the_test_set_is_refused(parts):
    teacher, tr, _, test = parts
    with pytest.raises(ValueError, match="val is the test set"):
        kdlab.distill(teacher, student, tr, test, val=(test.x.clone(), test.y.clone()), **KNOBS)


def test_the_csv_log_has_one_row_per_epoch_with_the_history_keys(parts, tmp_path):
    teacher, tr, val, test = parts
    path = tmp_path / "log.csv"
    path.write_text("stale\n")  # a fresh run starts the file anew
    _, history = kdlab.distill(teacher, student, tr, test, val=val, log=path, **KNOBS)
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames == history.keys()
    assert len(rows) == len(history) == KNOBS["epochs"]
    assert [float(r["val_error"]) for r in rows] == history["val_error"]
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, KNOBS["epochs"] + 1)]


def test_tensorboard_events_hold_every_epochs_row(parts, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    teacher, tr, val, test = parts
    _, history = kdlab.distill(teacher, student, tr, test, val=val, tensorboard=tmp_path / "tb", **KNOBS)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(history.keys()) - {"epoch"}
    for name in ("loss", "soft", "val_error", "test_error"):
        scalars = events.Scalars(name)
        assert [s.step for s in scalars] == list(range(1, KNOBS["epochs"] + 1))
        assert [s.value for s in scalars] == pytest.approx(history[name], rel=1e-6)


def test_tensorboard_without_the_package_fails_before_training(parts, tmp_path, monkeypatch):
    from kdlab import loggers

    real = loggers.importlib.util.find_spec

    def without_tensorboard(name):
        return None if name == "tensorboard" else real(name)

    monkeypatch.setattr(loggers.importlib.util, "find_spec", without_tensorboard)
    trained = []
    monkeypatch.setattr(train._Step, "run", lambda *args: trained.append(1))
    with pytest.raises(ImportError, match=r"kdlab\[tensorboard\]"):
        kdlab.distill(parts[0], student, parts[1], parts[3], tensorboard=tmp_path / "tb", **KNOBS)
    assert not trained and not (tmp_path / "tb").exists()


def test_val_is_in_the_cache_key_and_checkpoint_and_the_logs_are_not(parts, tmp_path, monkeypatch):
    teacher, tr, val, test = parts
    folder = tmp_path / "kd-cache"
    monkeypatch.setenv("KDLAB_CACHE", str(folder))
    knobs = {**KNOBS, "epochs": 2, "cache": True}
    kdlab.distill(teacher, student, tr, test, val=val, **knobs)
    kdlab.distill(teacher, student, tr, test, val=val.subset(100), **knobs)
    kdlab.distill(
        teacher, student, tr, test, val=val, log=tmp_path / "l.csv", checkpoint=tmp_path / "c.pt",
        tensorboard=tmp_path / "tb", **knobs
    )
    assert len(list(folder.rglob("*.pt"))) == 2


# tsne and mutual train outside train_model (fixed batches; a cohort): the same run knobs, through their fit.
TSNE = dict(KNOBS, method="tsne", layer="hidden1", teacher_layer="flatten", perplexity=5.0, pca_dim=None,
            batch_size=100, lr=3e-2)
MUTUAL = dict(KNOBS, batch_size=128, lr=3e-2)
del MUTUAL["method"]


def run(kind, parts, **extra):
    """A tsne distillation or a cohort of two students, with the run knobs ``extra``."""
    teacher, tr, _, test = parts
    if kind == "tsne":
        return kdlab.distill(teacher, student, tr, test, **{**TSNE, **extra})
    return kdlab.mutual([student, student], tr, test, **{**MUTUAL, **extra})


@pytest.mark.parametrize("kind", ["tsne", "mutual"])
def test_tsne_and_mutual_resume_a_killed_run_to_the_unbroken_one(kind, parts, tmp_path, monkeypatch):
    _, tr, val, _ = parts
    unbroken, history = run(kind, parts, val=val, checkpoint=tmp_path / "a.pt")
    per_epoch = math.ceil(len(tr) / (100 if kind == "tsne" else 128))
    with monkeypatch.context() as patch:
        kill_after(patch, 2 * per_epoch + 1)
        with pytest.raises(Killed):
            run(kind, parts, val=val, checkpoint=tmp_path / "b.pt")
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epochs_done"] == 2
    resumed, again = run(kind, parts, val=val, checkpoint=tmp_path / "b.pt", resume=True)
    assert same_weights(unbroken, resumed)
    assert again.best_epoch == history.best_epoch and again["val_error"] == history["val_error"]


def test_tsne_val_returns_the_weights_of_its_best_epoch(parts):
    _, _, val, test = parts
    model, history = run("tsne", parts, val=val)
    errors = history["val_error"]
    assert history.best_epoch == errors.index(min(errors)) + 1
    assert error_count(model, val) == min(errors) and error_count(model, test) == history.best("test_error")


def test_a_cohorts_val_chooses_one_epoch_by_its_students_mean_errors(parts):
    _, _, val, test = parts
    cohort, history = run("mutual", parts, val=val, lr=0.2)
    mean = history["val_error"]
    assert mean == [(a + b) / 2 for a, b in zip(history["val_error/0"], history["val_error/1"], strict=True)]
    assert history.best_epoch == mean.index(min(mean)) + 1 < MUTUAL["epochs"]  # this rate picks an early one
    for k, model in enumerate(cohort):
        assert error_count(model, val) == history.best(f"val_error/{k}")
        assert error_count(model, test) == history.best(f"test_error/{k}")
    # A cohort stopped at the chosen epoch has the same weights (constant rate, same batches).
    stopped, _ = run("mutual", parts, lr=0.2, epochs=history.best_epoch)
    assert same_weights(cohort, stopped)


@pytest.mark.parametrize("kind", ["tsne", "mutual"])
def test_tsne_and_mutual_write_the_logs_and_key_val_but_not_the_logs(kind, parts, tmp_path, monkeypatch):
    _, _, val, _ = parts
    folder = tmp_path / "kd-cache"
    monkeypatch.setenv("KDLAB_CACHE", str(folder))
    _, history = run(kind, parts, val=val, cache=True, epochs=2)
    run(kind, parts, val=val.subset(100), cache=True, epochs=2)
    path = tmp_path / "log.csv"
    run(kind, parts, val=val, cache=False, epochs=2, log=path, tensorboard=tmp_path / "tb")
    with path.open(newline="") as file:
        assert [float(r["val_error"]) for r in csv.DictReader(file)] == history["val_error"]
    assert list((tmp_path / "tb").iterdir())
    run(kind, parts, val=val, cache=True, epochs=2, log=tmp_path / "again.csv", checkpoint=tmp_path / "c.pt")
    assert len(list(folder.rglob("*.pt"))) == 2 + (kind == "tsne")  # tsne also caches its P matrices
    assert not (tmp_path / "again.csv").exists()  # a hit trains nothing and writes no log


@pytest.mark.parametrize("kind", ["hinton", "born_again", "tsne", "mutual"])
def test_callbacks_see_each_epochs_row_and_the_model_of_the_last_stage(kind, parts, tmp_path, monkeypatch):
    teacher, tr, _, test = parts
    seen = []

    def watch(row, model):
        seen.append((dict(row), model))

    def call(**extra):
        if kind in ("tsne", "mutual"):
            return run(kind, parts, **extra)
        knobs = {**KNOBS, "method": kind, **({"generations": 2} if kind == "born_again" else {})}
        return kdlab.distill(teacher, student, tr, test, **{**knobs, **extra})

    model, history = call(callbacks=watch)  # one function, or a list of them
    assert [row for row, _ in seen] == history.epochs  # Born-Again: the last generation's epochs only
    assert all(type(m) is type(model) for _, m in seen)
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "kd-cache"))
    for calls in (2, 0):  # stored, then a hit: the same key, and no epoch to call back
        seen.clear()
        call(cache=True, epochs=2, callbacks=[watch])
        assert len(seen) == calls


def test_a_callback_that_is_not_a_function_is_refused_before_training(parts, monkeypatch):
    teacher, tr, _, test = parts
    trained = []
    monkeypatch.setattr(train._Step, "run", lambda *args: trained.append(1))
    with pytest.raises(TypeError, match=r"callbacks\[1\] must be a function called as .* got str"):
        kdlab.distill(teacher, student, tr, test, callbacks=[print, "log.csv"], **KNOBS)
    assert not trained


def test_a_checkpoint_resumes_only_the_run_that_wrote_it(parts, tmp_path, monkeypatch):
    teacher, tr, _, test = parts
    path = tmp_path / "run.pt"
    with monkeypatch.context() as patch:
        kill_after(patch, 2 * math.ceil(len(tr) / KNOBS["batch_size"]) + 1)
        with pytest.raises(Killed):
            kdlab.distill(teacher, student, tr, test, checkpoint=path, **KNOBS)
    for changed, named in [
        ({"method": "dkd"}, "objective"),
        ({"temperature": 4.0}, "objective"),
        ({"epochs": 6}, "epochs: 4 there, 6 here"),
        ({"lr": 0.05}, "optimizer: Adam, lr 0.1, weight decay 0.0 there, Adam, lr 0.05"),
        ({"train": tr.subset(500)}, "data"),
    ]:
        knobs = {**KNOBS, **changed}
        data = knobs.pop("train", tr)
        with pytest.raises(RuntimeError, match=rf"was written by another run \({named}"):
            kdlab.distill(teacher, student, data, test, checkpoint=path, resume=True, **knobs)
    model, history = kdlab.distill(teacher, student, tr, test, checkpoint=path, resume=True, **KNOBS)
    assert len(history) == KNOBS["epochs"]  # the run that wrote it resumes
