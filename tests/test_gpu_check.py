"""The GPU check (``make gpu-check``, ``kdlab bench --gpu``), in its CPU form, and the dry-run knobs it adds:
steps an epoch from the environment (keyed in the cache), loaders that run out, the device and memory."""

import json

import pytest
import torch

from kdlab import cache, cli, data, dry_run, models
from kdlab.book import gpu_check, runner
from kdlab.train import fit


@pytest.fixture(autouse=True)
def _fresh_dry_run_state():
    dry_run.reset()
    yield
    dry_run.reset()


def test_the_gpu_check_runs_on_the_cpu(tmp_path, capsys):
    """What `make gpu-check` runs on a GPU, here on the CPU: a chapter's full path for 3 steps an epoch and
    the speed knobs at their quick size, both in one JSON record."""
    out = tmp_path / "check"
    rc = cli.main(["--root", str(runner.find_root()), "bench", "--gpu", "--device", "cpu", "--steps", "3",
                   "--chapters", "fitnets", "--json-dir", str(out)])
    assert rc == 0
    record = json.loads((out / "gpu-check.json").read_text())
    assert record["device"] == "cpu" and record["gpu"] is None and record["steps_per_epoch"] == 3
    (chapter,) = record["chapters"]
    assert chapter["chapter"] == "fitnets" and chapter["device"] == "cpu" and chapter["fits"] > 0
    measured = dry_run.read(out / "dry-run" / "fitnets.dry-run.jsonl")
    assert measured and all(m.steps == 3 and m.device == "cpu" and m.peak_memory is None for m in measured)
    assert all(c["images_per_second"] > 0 and c["projected_seconds"] > 0 for c in chapter["configurations"])
    assert record["projected_seconds"] == pytest.approx(chapter["projected_seconds"])
    knobs = record["speed_knobs"]
    # No torch.compile off CUDA.
    assert {m["key"] for m in knobs["measurements"]} == {"bf16_autocast", "channels_last"}
    assert knobs["device"] == "cpu" and knobs["quick"]
    printed = capsys.readouterr().out
    assert "kdlab gpu-check on cpu" in printed and "fitnets" in printed
    assert "speed knob channels_last" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "cpu", "--steps", "0"], "steps must be an integer >= 1, got 0"),
        (["--device", "cpu", "--chapters", "nosuchchapter"], "chapters must be among"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
    ],
)
def test_the_gpu_check_refuses_bad_input_before_running_anything(tmp_path, capsys, argv, message):
    out = tmp_path / "check"
    rc = cli.main(["--root", str(runner.find_root()), "bench", "--gpu", "--json-dir", str(out), *argv])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (out / "dry-run").exists()


def test_gpu_flags_without_gpu_are_an_error(capsys):
    assert cli.main(["--root", str(runner.find_root()), "bench", "--steps", "5"]) == 2
    assert "--steps: only with --gpu" in capsys.readouterr().err


def test_steps_an_epoch_come_from_the_environment_and_are_checked(monkeypatch):
    assert dry_run.steps_per_epoch() == dry_run.STEPS_PER_EPOCH
    monkeypatch.setenv(dry_run.STEPS_ENV, "7")
    assert dry_run.steps_per_epoch() == 7
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv(dry_run.STEPS_ENV, bad)
        with pytest.raises(ValueError, match=f"KDLAB_DRY_RUN_STEPS must be a whole number >= 1, got '{bad}'"):
            dry_run.steps_per_epoch()


def test_a_dry_runs_cache_key_holds_its_steps(monkeypatch):
    """A model trained for 2 steps an epoch must not answer the key of one trained for 20."""
    parts = {"lr": 0.1}
    monkeypatch.setenv(dry_run.ENV, "1")
    two = cache.key("model", parts)
    monkeypatch.setenv(dry_run.STEPS_ENV, "20")
    assert cache.key("model", parts) != two
    monkeypatch.setenv(dry_run.STEPS_ENV, "2")
    assert cache.key("model", parts) == two


def fit_steps(monkeypatch, tmp_path, rows, steps):
    monkeypatch.setenv(dry_run.ENV, "1")
    monkeypatch.setenv(dry_run.STEPS_ENV, str(steps))
    monkeypatch.setenv(dry_run.REPORT_ENV, str(tmp_path / "report.jsonl"))
    split = data.load("digits")
    loader = data.TensorLoader(split.train.x[:rows], split.train.y[:rows], batch_size=32, seed=0)
    seen = []

    def objective(model, batch):
        seen.append(len(batch[0]))
        return {"loss": torch.nn.functional.cross_entropy(model(batch[0]), batch[1])}

    fit(models.mlp((64, 10)), loader, objective, epochs=3, device="cpu")
    return seen


def test_a_loader_that_runs_out_starts_over_for_the_steps_asked(monkeypatch, tmp_path):
    # 40 rows at batch 32: two batches a pass (32 and 8); five steps take three passes.
    assert fit_steps(monkeypatch, tmp_path, rows=40, steps=5) == [32, 8, 32, 8, 32]
    (measured,) = dry_run.read(tmp_path / "report.jsonl")
    assert measured.steps == 5 and measured.device == "cpu" and measured.peak_memory is None


def test_an_empty_loader_ends_the_epoch_instead_of_looping(monkeypatch, tmp_path):
    assert fit_steps(monkeypatch, tmp_path, rows=0, steps=5) == []
    assert dry_run.read(tmp_path / "report.jsonl") == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_step_is_timed_whole_and_its_peak_memory_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv(dry_run.ENV, "1")
    monkeypatch.setenv(dry_run.REPORT_ENV, str(tmp_path / "report.jsonl"))
    split = data.load("digits").to("cuda")
    fit(models.mlp((64, 10)), data.TensorLoader(*split.train.tensors, batch_size=32), epochs=1, device="cuda")
    (measured,) = dry_run.read(tmp_path / "report.jsonl")
    assert measured.device.startswith("cuda") and measured.peak_memory > 0


def test_the_check_names_the_gpu_and_sums_the_chapters():
    record = {
        "gpu": "NVIDIA H200", "device": "cuda", "torch": "2.x", "steps_per_epoch": 20, "seconds": 300.0,
        "projected_seconds": 7200.0,
        "chapters": [{"chapter": "fsp", "projected_seconds": 7200.0, "configurations": [
            {"images_per_second": 5000.0, "desc": "teacher", "peak_memory": 2**31}]}],
        "speed_knobs": {"measurements": [{"key": "bf16_autocast", "ratio": 1.8, "label": "fp32 / bf16"}]},
    }
    text = gpu_check.describe(record)
    assert text.splitlines()[0] == "kdlab gpu-check on NVIDIA H200 (torch 2.x, 20 steps an epoch):"
    assert "fsp" in text and "~2.0 h" in text and "5,000 images/s (teacher)" in text
    assert "peak 2.00 GiB" in text
    assert "speed knob bf16_autocast: x1.80" in text
