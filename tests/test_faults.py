"""Faults: a training process killed with SIGKILL, interrupted writes, two processes on one cache entry."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdlab import _io, cache

SCRIPTS = Path(__file__).parent / "scripts"


def run(*args, **kwargs):
    return subprocess.Popen([sys.executable, *map(str, args)], **kwargs)


def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    script = SCRIPTS / "resumable_fit.py"
    assert run(script, tmp_path / "ref.ckpt", tmp_path / "ref.pt").wait(timeout=300) == 0

    victim = run(script, tmp_path / "run.ckpt", tmp_path / "run.pt", "--pause", "0.01")
    deadline = time.monotonic() + 240
    while not (tmp_path / "run.ckpt").exists():  # the first epoch is done and saved
        assert victim.poll() is None and time.monotonic() < deadline, (
            "the run ended before its first checkpoint"
        )
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the second epoch (41 steps of >= 10 ms each)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (tmp_path / "run.pt").exists(), "the run finished before it was killed"
    assert torch.load(tmp_path / "run.ckpt", weights_only=False)["epochs_done"] in (1, 2, 3)

    assert run(script, tmp_path / "run.ckpt", tmp_path / "run.pt", "--resume").wait(timeout=300) == 0
    reference = torch.load(tmp_path / "ref.pt")
    resumed = torch.load(tmp_path / "run.pt")
    for name, value in reference.items():
        assert torch.equal(resumed[name], value), f"{name} differs after resume"


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    _io.atomic_write_bytes(path, b"good")

    def dies(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write_bytes(path, b"half-written")
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"], (
        "the temporary file is left behind"
    )


CONCURRENT = """
import sys, time, torch
from kdlab import cache, models
from kdlab.train import History

def make():
    torch.manual_seed(0)
    return models.mlp((4, 3, 2))

def train(model):
    with open(sys.argv[1], "a") as log:
        log.write("trained\\n")
    time.sleep(1.0)  # the other process arrives while this one computes
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    return History([{"epoch": 1.0}])

model, _ = cache.trained(make, train, "shared", knob=1)
torch.save(model.state_dict(), sys.argv[2])
"""


def test_two_processes_computing_one_cache_entry_train_it_once(tmp_path):
    script = tmp_path / "two_writers.py"  # not "concurrent.py": it would shadow the stdlib package
    script.write_text(CONCURRENT)
    env = {**os.environ, "KDLAB_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "trained.log"
    procs = [run(script, log, tmp_path / f"out{i}.pt", env=env) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert log.read_text().count("trained") == 1
    first, second = torch.load(tmp_path / "out0.pt"), torch.load(tmp_path / "out1.pt")
    for name in first:
        assert torch.equal(first[name], second[name])
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


def test_clear_removes_every_entry(tmp_path):
    cache.tensor("x", lambda: torch.ones(3), k=1)
    cache.tensor("x", lambda: torch.ones(3), k=2)
    assert cache.clear() == 2
    assert not list(cache.cache_dir().glob("*.pt"))
