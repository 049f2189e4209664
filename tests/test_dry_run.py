import json
import math
import os

import pytest
import torch

from kdlab import cache, data, dry_run, models
from kdlab.book import runner
from kdlab.methods.common import train_model
from kdlab.train import History, fit


@pytest.fixture(autouse=True)
def _fresh_dry_run_state():
    dry_run.reset()
    yield
    dry_run.reset()


@pytest.fixture
def dry(monkeypatch, tmp_path):
    """A dry run whose measurements go to a report file; returns its path."""
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv(dry_run.ENV, "1")
    monkeypatch.setenv(dry_run.REPORT_ENV, str(report))
    return report


def counting(objective_calls):
    def objective(model, batch):
        objective_calls.append(len(batch[0]))
        return {"loss": torch.nn.functional.cross_entropy(model(batch[0]), batch[1])}

    return objective


def digits_run(tmp_path, epochs=5, **knobs):
    split = data.load("digits")
    loader = data.TensorLoader(*split.train.tensors, batch_size=64, seed=0)
    torch.manual_seed(0)
    calls = []
    history = fit(models.mlp((64, 32, 10)), loader, counting(calls), epochs=epochs, lr=1e-2, test=split.test,
                  device="cpu", checkpoint=tmp_path / "ckpt.pt", **knobs)
    return split, loader, calls, history


# --- fit -------------------------------------------------------------------------------------------


def test_a_dry_run_fit_takes_one_epoch_of_two_steps_and_keeps_its_history_shape(dry, tmp_path):
    split, loader, calls, history = digits_run(tmp_path, epochs=5, schedule="cosine")
    assert calls == [64, 64]  # one epoch of two full batches
    # The History still has a row per requested epoch (the one run epoch repeated, numbered on) ...
    assert history["epoch"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert len(set(history["test_error"])) == 1 and "test_accuracy" in history.keys()
    # ... the checkpoint was written after the epoch that ran, and the schedule spans all 5 epochs.
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert saved["epochs_done"] == 1
    assert history["lr"][0] == pytest.approx(0.5e-2 * (1 + math.cos(math.pi * 2 / (5 * len(loader)))))
    (line,) = dry.read_text().splitlines()
    record = json.loads(line)
    assert record["epochs"] == 5 and record["steps"] == 2 and record["batch_size"] == 64
    # The miniature of the digits' training part stands for all 1,297 of its examples.
    assert len(split.train) < 1_297 and record["examples_per_epoch"] == 1_297
    assert record["steps_per_epoch"] == math.ceil(1_297 / 64)


def test_outside_a_dry_run_fit_is_unchanged(monkeypatch, tmp_path):
    monkeypatch.setenv(dry_run.REPORT_ENV, str(tmp_path / "report.jsonl"))
    monkeypatch.delenv(dry_run.ENV, raising=False)
    _, loader, calls, history = digits_run(tmp_path, epochs=2)
    assert len(calls) == 2 * len(loader) and len(history) == 2
    assert history["test_error"][0] != history["test_error"][1]
    assert not (tmp_path / "report.jsonl").exists() and dry_run.measured() == []
    monkeypatch.setenv(dry_run.ENV, "0")
    assert not dry_run.active()


def test_a_dry_run_never_answers_a_real_runs_cache_key_nor_the_other_way(monkeypatch):
    parts = {"lr": 0.1, "x": torch.arange(4)}
    real_key = cache.key("model", parts)
    monkeypatch.setenv(dry_run.ENV, "1")
    assert cache.key("model", parts) != real_key
    monkeypatch.delenv(dry_run.ENV)
    assert cache.key("model", parts) == real_key

    split = data.load("digits", train_size=200)
    knobs = dict(epochs=2, batch_size=50, cache=True, device="cpu")

    def trained():
        model, _ = train_model(lambda: models.mlp((64, 10)), split.train, **knobs)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    real = trained()
    monkeypatch.setenv(dry_run.ENV, "1")
    toy = trained()  # trained afresh for 2 steps, not loaded from the real entry
    assert not torch.equal(real, toy) and len(dry_run.measured()) == 1
    monkeypatch.delenv(dry_run.ENV)
    assert torch.equal(trained(), real)  # the real entry is still the real run's
    assert len(dry_run.measured()) == 1


# --- data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "classes"), [("cifar10", 10), ("cifar100", 100)])
def test_an_absent_data_set_becomes_synthetic_data_of_its_shape(monkeypatch, tmp_path, capsys, name, classes):
    empty = tmp_path / "nothing here"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="not available"):  # a real run: the one clear error
        data.load(name, root=empty)
    monkeypatch.setenv(dry_run.ENV, "1")
    split = data.load(name, root=empty)
    assert "synthetic" in capsys.readouterr().out
    assert split.input_shape == (3, 32, 32) and split.num_classes == classes
    assert len(split.train) == dry_run.train_rows(50_000) and len(split.test) == dry_run.TEST_ROWS
    assert split.train.x.dtype == torch.float32 and split.train.y.dtype == torch.int64
    assert set(split.train.y.tolist()) == set(range(classes))
    # Standardised per channel with the training statistics, as the real CIFAR path.
    torch.testing.assert_close(split.train.x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(split.train.x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3, rtol=0)
    assert dry_run.exact(split.train.x) == 50_000 and dry_run.exact(split.test.x) == 10_000
    smaller = data.load(name, root=empty, train_size=5_000, test_size=1_000)
    assert len(smaller.train) == dry_run.train_rows(5_000) < len(split.train)
    assert dry_run.exact(smaller.train.x) == 5_000
    with pytest.raises(ValueError, match="size must be <= 50000"):
        data.load(name, root=empty, train_size=50_001)


def test_the_dry_run_keeps_a_stratified_miniature_of_every_part(dry):
    assert [dry_run.train_rows(n) for n in (100, 512, 600, 6_000, 60_000)] == [100, 512, 515, 561, 607]
    assert dry_run.test_rows(10_000) == dry_run.TEST_ROWS and dry_run.test_rows(100) == 100
    split = data.load("digits")  # 1,297 / 500, offline
    assert len(split.train) == dry_run.train_rows(1_297) and len(split.test) == dry_run.TEST_ROWS
    assert split.train.y.bincount().min() >= len(split.train) // 10 - 1  # every class, evenly
    assert dry_run.exact(split.train.x) == 1_297
    part = split.train.subset(600, seed=1)
    assert len(part) == dry_run.train_rows(600) and dry_run.exact(part.x) == 600
    assert len(split.train.subset(1_297)) == len(split.train)
    with pytest.raises(ValueError, match="size must be <= 1297"):
        split.train.subset(1_298)
    # A set that was not made by load or subset is whatever it holds.
    plain = data.Tensors(torch.zeros(20, 3), torch.arange(20) % 2)
    assert len(plain.subset(10)) == 10 and dry_run.real_examples(plain.subset(10).x) == 10


def test_real_examples_of_sets_made_from_a_remembered_one(dry):
    split = data.load("digits")
    x, rows = split.train.x, len(split.train)
    assert dry_run.real_examples(x[: rows // 2]) == round(rows // 2 * 1_297 / rows)  # a slice (a view)
    batches = torch.randperm(rows, generator=torch.Generator().manual_seed(0))[: 5 * 100].reshape(5, 100)
    fixed = x[batches].reshape(-1, *x.shape[1:])  # fixed batches: a copy of some of its rows
    assert dry_run.real_examples(fixed) == round(500 * 1_297 / rows)
    part = split.train.subset(600)
    assert dry_run.real_examples(part.x[part.y != 3]) == round(int((part.y != 3).sum()) * 600 / len(part))
    synthetic = torch.rand(3 * rows, *x.shape[1:])  # rows no set holds: the latest set's proportion
    assert dry_run.real_examples(synthetic) == round(3 * rows * 600 / len(part))


# --- the projection --------------------------------------------------------------------------------


def measurement(**fields):
    base = dict(desc="teacher", config="ResNet", epochs=200, batch_size=128, steps=2, seconds=1.5,
                step_seconds=0.5, step_examples=128, examples_per_epoch=50_000, steps_per_epoch=391)
    return dry_run.Measurement(**{**base, **fields})


def test_the_projection_is_every_fits_examples_at_its_configurations_best_speed(tmp_path):
    teacher = measurement()
    assert teacher.images_per_second == 256.0 and teacher.examples == 200 * 50_000
    # Two seeds of one student: the second was timed while the machine was busy.
    fast = measurement(desc="student, seed 0", config="MLP", epochs=30, step_seconds=0.1, step_examples=64,
                       examples_per_epoch=6_000)
    slow = measurement(desc="student, seed 1", config="MLP", epochs=60, step_seconds=0.4, step_examples=64,
                       examples_per_epoch=6_000)
    report = tmp_path / "report.jsonl"
    report.write_text("".join(json.dumps(m.to_dict()) + "\n" for m in (fast, teacher, slow)))
    assert dry_run.read(report) == [fast, teacher, slow]
    total = dry_run.summary(report)
    assert total.fits == 3 and total.steps == 6 and total.seconds == 4.5
    by_hand = {"ResNet": 200 * 50_000 / 256, "MLP": (30 + 60) * 6_000 / (64 / 0.1)}  # 39,062.5 s, 843.75 s
    assert [c.config for c in total.configurations] == ["ResNet", "MLP"]  # the heaviest first
    for c in total.configurations:
        assert c.projected_seconds == pytest.approx(by_hand[c.config])
    assert total.configurations[1].fits == 2 and total.configurations[1].images_per_second == 640.0
    assert total.projected_seconds == pytest.approx(39_062.5 + 843.75)
    assert dry_run.duration(total.projected_seconds) == "11.1 h"
    assert [dry_run.duration(s) for s in (42, 1_020, 4.5 * 86_400)] == ["42 s", "17 min", "4.5 days"]
    assert dry_run.describe(total.configurations[1]) == (
        "'student, seed 0' and 1 more (MLP): 540,000 examples at 640 images/s -> 14 min")
    assert dry_run.summary(tmp_path / "absent.jsonl").projected_seconds == 0


def test_a_fit_measures_its_steps_and_its_configuration_in_a_dry_run(dry, tmp_path):
    digits_run(tmp_path, epochs=7)
    (m,) = dry_run.read(dry)
    assert m.step_examples == 64 and m.step_seconds > 0 and m.seconds >= m.step_seconds
    assert m.examples_per_epoch == 1_297  # the loader's set stands for the whole digits training part
    assert m.steps_per_epoch == math.ceil(1_297 / 64) and m.examples == 7 * 1_297
    assert m.config == "Sequential of 2,410 parameters, counting.objective, batches of 64 x (1, 8, 8)"
    assert dry_run.measured() == [m]


# --- the runner ------------------------------------------------------------------------------------


def test_the_runner_sets_the_dry_run_environment_and_restores_the_old_one(monkeypatch, tmp_path):
    monkeypatch.delenv("KDLAB_CACHE")
    monkeypatch.setenv("KDLAB_DEVICE", "cuda")
    (tmp_path / "cache" / "fsp").mkdir(parents=True)
    (tmp_path / "cache" / "fsp" / "old.pt").write_text("stale")
    env = runner.dry_run_environment(tmp_path, "fsp")
    assert env[dry_run.ENV] == "1" and env["KDLAB_DEVICE"] == "cpu"
    assert env[dry_run.REPORT_ENV] == str(tmp_path.resolve() / "fsp.dry-run.jsonl")
    assert env["KDLAB_CACHE"] == str(tmp_path.resolve() / "cache" / "fsp")
    assert not (tmp_path / "cache" / "fsp").exists()  # emptied: every fit runs and is measured
    with runner.environment(env):
        assert dry_run.active() and os.environ["KDLAB_DEVICE"] == "cpu"
    assert not dry_run.active() and os.environ["KDLAB_DEVICE"] == "cuda" and "KDLAB_CACHE" not in os.environ
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "mine"))
    assert "KDLAB_CACHE" not in runner.dry_run_environment(tmp_path, "fsp")  # a cache the user set is kept


def test_dry_runs_and_real_runs_never_share_a_folder(tmp_path):
    real, dry = tmp_path / "real", tmp_path / "dry"
    real.mkdir()
    (real / "fsp.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="notebooks of real runs"):
        runner._check_out(real, dry_run=True)
    dry.mkdir()
    (dry / runner.DRY_RUN_MARK).touch()
    with pytest.raises(ValueError, match="holds dry runs"):
        runner._check_out(dry, dry_run=False)
    runner._check_out(dry, dry_run=True)
    runner._check_out(real, dry_run=False)
    root = runner.find_root()
    assert runner.default_out(root, "full", dry_run=True) != runner.default_out(root, "full")


def test_the_runner_reports_a_chapters_dry_run(tmp_path, capsys):
    report = tmp_path / "fsp.dry-run.jsonl"
    report.write_text(json.dumps(measurement().to_dict()) + "\n")
    runner._report_dry_run(tmp_path, "fsp", 38.0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("kdlab: fsp full (dry run): 1 fit calls, 2 steps (at most 2 each), ran in 38 s; "
                        "the real run: ~10.9 h of training on this CPU")
    assert lines[1] == "  'teacher' (ResNet): 10,000,000 examples at 256 images/s -> 10.9 h"
    saved = runner.dry_run_summary(tmp_path, "fsp")
    assert saved["wall_seconds"] == 38.0 and saved["projected_seconds"] == pytest.approx(39_062.5)
    assert saved["configurations"][0]["images_per_second"] == 256.0
    assert runner.dry_run_summary(tmp_path, "born_again") is None


def test_a_chapters_dry_run_reports_at_the_default_steps(tmp_path, monkeypatch, capsys):
    """run_chapter's dry-run path end to end, papermill replaced by a copy of the notebook (its
    own argument ``dry_run`` once shadowed the module there, and only a real dry run noticed)."""
    import shutil

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda src, target, **_: shutil.copy(src, target))
    runner.run_chapter(runner.find_root(), "fsp", "full", {}, tmp_path, dry_run=True)
    assert "fit calls, 0 steps (at most 2 each)" in capsys.readouterr().out
    assert runner.dry_run_summary(tmp_path, "fsp")["fits"] == 0


def test_history_padding_keeps_an_empty_history_empty():
    history = History()
    dry_run.Cut().finish(history, 5, "nothing ran", train=[])
    assert len(history) == 0
