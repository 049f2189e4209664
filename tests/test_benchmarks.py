"""The benchmark scripts run in their tiny configuration and report well-formed ratios.

No timing threshold is tested (on a shared machine it would fail at random): each script's
``run(quick=True)`` must return its ratio keys as finite positive numbers, each PASS/MISS must
agree with its target, and the shared helpers must interleave, judge and report as they claim.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from importlib.machinery import PathFinder
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """Import a benchmark script by name, on one CPU thread (as the scripts run by default)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield importlib.import_module
    torch.set_num_threads(threads)


def _check(result: dict, keys: tuple[str, ...]) -> None:
    assert set(keys) <= set(result["ratios"]), result["ratios"]
    for key in keys:
        value = result["ratios"][key]
        assert math.isfinite(value) and value > 0, (key, value)
    for entry in result["measurements"]:
        assert entry["ratio"] == result["ratios"][entry["key"]]
        goal, ratio = entry["target"], entry["ratio"]
        if goal is None:
            assert entry["met"] is None
        else:
            assert entry["met"] == (ratio <= goal["value"] if goal["op"] == "<=" else ratio >= goal["value"])
    json.dumps(result)  # everything --json writes must serialise


@pytest.mark.parametrize(
    "name, keys",
    [
        ("distill_step", ("cached_teacher", "teacher_every_step", "teacher_every_step_estimate")),
        ("loader", ("batching", "model_epoch")),
        ("memory", ("distill", "teacher_every_step", "distill_process")),
        ("augment", ("tensor_b64", "tensor_b128", "pil_b64", "pil_b128", "augment_cost")),
    ],
)
def test_quick_run_reports_finite_positive_ratios(bench, name, keys):
    result = bench(name).run(quick=True)
    assert result["benchmark"] == name and result["quick"] is True
    _check(result, keys)


def test_gpu_variants_run_on_the_cpu(bench):
    result = bench("gpu").measure("cpu", quick=True, compile=False)
    _check(result, ("bf16_autocast", "channels_last"))
    assert "compile" not in result["ratios"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA GPU")
def test_gpu_is_skipped_without_cuda(bench, capsys, tmp_path):
    gpu, common = bench("gpu"), bench("_common")
    assert common.main("gpu", gpu.run, "gpu", ["--json", str(tmp_path / "gpu.json")]) == 0
    out = capsys.readouterr().out
    assert "skipped: no CUDA GPU" in out
    assert "SUMMARY gpu: SKIPPED" in out
    assert json.loads((tmp_path / "gpu.json").read_text())["ratios"] == {}


def test_interleaved_alternates_and_stops_at_the_budget(bench):
    common = bench("_common")
    calls = []
    times = common.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    for clock in (times.wall, times.cpu):
        assert set(clock) == {"a", "b"} and all(len(t) == 3 and min(t) >= 0 for t in clock.values())
    calls.clear()
    common.interleaved({"a": lambda: calls.append("a")}, rounds=10, min_rounds=2, budget_s=0.0)
    assert calls == ["a", "a"]
    with pytest.raises(ValueError, match="rounds"):
        common.interleaved({"a": lambda: None}, rounds=0)


def test_targets_and_summary(bench, capsys, tmp_path):
    common = bench("_common")
    assert common.met(1.05, common.target("<=", 1.05)) and not common.met(1.06, common.target("<=", 1.05))
    assert common.met(3.0, common.target(">=", 3.0)) and not common.met(2.9, common.target(">=", 3.0))
    assert common.met(7.0, None) is None
    with pytest.raises(ValueError, match="op"):
        common.target("<", 1.0)

    def fake(quick: bool) -> dict:
        return common.result("fake", [
            common.measurement("fast", "fast one", 4.0, common.target(">=", 3.0)),
            common.measurement("slow", "slow one", 1.2, common.target("<=", 1.05)),
            common.measurement("note", "a note", 2.5),
        ], quick=quick)

    path = tmp_path / "fake.json"
    assert common.main("fake", fake, "fake", ["--quick", "--json", str(path)]) == 0
    summary = [line for line in capsys.readouterr().out.splitlines() if line.startswith("SUMMARY")]
    assert len(summary) == 1
    assert "fast 4.000 >= 3 PASS" in summary[0] and "slow 1.200 <= 1.05 MISS" in summary[0]
    assert "note 2.500 info" in summary[0]
    written = json.loads(path.read_text())
    assert written["ratios"] == {"fast": 4.0, "slow": 1.2, "note": 2.5} and written["quick"] is True
    assert common.main("fake", fake, "fake", ["--strict"]) == 1


def test_no_script_shadows_an_installed_module():
    # A script runs with benchmarks/ first on sys.path: a benchmarks/cuda.py would be imported by
    # torch in place of the cuda-python package and break every script.
    elsewhere = [p for p in sys.path if Path(p or ".").resolve() != BENCHMARKS]
    for script in BENCHMARKS.glob("*.py"):
        taken = script.stem in sys.builtin_module_names or PathFinder.find_spec(script.stem, elsewhere)
        assert not taken, f"{script.name} shadows the installed module {script.stem!r}"


def test_timings_ratios(bench):
    common = bench("_common")
    times = common.Timings(wall={"a": [3.0, 1.0, 2.0], "b": [4.0, 4.0, 8.0]}, cpu={"a": [1.0], "b": [3.0]})
    assert times.median("a") == 2.0 and times.ratio("b", "a") == 2.0
    assert times.views("b", "a") == "medians of 3; best-of ratio 4.000, CPU-time ratio 3.000"
