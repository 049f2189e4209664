"""``make gpu-check`` (``kdlab bench --gpu``): what a ``full`` run will cost on this GPU, in minutes.

Two parts, written together to ``OUT/gpu-check.json`` and printed:

1. **Every chapter's ``full`` path** as a dry run (:mod:`kdlab.dry_run`) on the device: the real
   architectures, data shapes, stages and knobs, each epoch cut to ``steps`` steps (a loader that
   runs out starts over; the device is synchronised around each step). Real CIFAR when it is under
   ``$KDLAB_DATA``, synthetic data of its shape otherwise. For each chapter: its configurations'
   images/s (the fastest step), the most CUDA memory any of their steps allocated, and the projected
   wall time of the real ``full`` run (training steps only: see :mod:`kdlab.dry_run` for what the
   projection leaves out).
2. **The CUDA speed knobs** (``benchmarks/gpu.py``): bf16 autocast against fp32, channels-last
   against contiguous, and ``torch.compile`` on against off, on a ResNet-20 (the FSP chapter's family).

``device="cpu"`` runs both on the CPU (the knobs at their quick size, without ``torch.compile``),
which is how a test checks the command on a machine without a GPU. Nothing is cached: every fit runs
(a dry run's cache entries never answer a real run's keys anyway).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from kdlab import _checks, data, dry_run, runtime
from kdlab.book import runner

DEFAULT_STEPS = 20  # enough past a GPU's warm-up (cuDNN's kernel choice, the allocator) to time a step


def check(
    root: Path,
    out: str | os.PathLike,
    device: str = "cuda",
    steps: int = DEFAULT_STEPS,
    chapters: list[str] | None = None,
    kernel: str = "python3",
) -> dict[str, Any]:
    """Run both parts (see the module) for ``chapters`` (default: all) into ``out``; return the
    record written to ``out/gpu-check.json``. A device this machine lacks, ``steps`` < 1 or an
    unknown chapter is an error before anything runs."""
    _checks.at_least("steps", steps, 1)
    try:
        runtime.device(device)
    except RuntimeError as error:
        raise ValueError(f"device: {error}") from None
    known = runner.chapters(root)
    names = known if chapters is None else list(chapters)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"chapters must be among {known}, got {unknown}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fresh = out / "cache"  # every fit runs and is timed, whatever KDLAB_CACHE holds
    shutil.rmtree(fresh, ignore_errors=True)
    with runner.environment({"KDLAB_CACHE": str(fresh)}):
        summaries = runner.dry_run_all(
            root, out / "dry-run", names, {"device": device}, kernel=kernel, steps=steps
        )
    knobs = speed_knobs(root, device, out / "speed-knobs.json")
    record = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "steps_per_epoch": steps,
        "data": str(data.data_dir()),
        "chapters": summaries,
        "projected_seconds": sum(s["projected_seconds"] for s in summaries),
        "speed_knobs": knobs,
        "seconds": time.perf_counter() - started,
    }
    (out / "gpu-check.json").write_text(json.dumps(record, indent=1) + "\n")
    print(describe(record), flush=True)
    return record


def speed_knobs(root: Path, device: str, path: Path) -> dict[str, Any]:
    """``benchmarks/gpu.py`` on ``device`` (quick and without ``torch.compile`` off CUDA), its JSON
    read back from ``path``."""
    command = [sys.executable, str(root / "benchmarks" / "gpu.py"), "--json", str(path)]
    if not device.startswith("cuda"):
        command.append("--quick")
    subprocess.run(command, check=True, env={**os.environ, "KDLAB_BENCH_DEVICE": device})
    return json.loads(path.read_text())


def describe(record: dict[str, Any]) -> str:
    """The record in lines: each chapter's projected ``full`` time and heaviest configuration, then
    the speed knobs' ratios."""
    where = record["gpu"] or record["device"]
    steps = record["steps_per_epoch"]
    lines = [f"kdlab gpu-check on {where} (torch {record['torch']}, {steps} steps an epoch):"]
    for chapter in record["chapters"]:
        heaviest = chapter["configurations"][0] if chapter["configurations"] else None
        found = [c["peak_memory"] for c in chapter["configurations"] if c.get("peak_memory")]
        memory = max(found, default=None)
        lines.append(
            f"  {chapter['chapter']:18s} full run ~{dry_run.duration(chapter['projected_seconds']):>9s}"
            + (f"; heaviest: {heaviest['images_per_second']:,.0f} images/s ({heaviest['desc']})"
               if heaviest else "")
            + ("" if memory is None else f"; peak {memory / 2**30:.2f} GiB")
        )
    lines.append(f"  all chapters' full runs: ~{dry_run.duration(record['projected_seconds'])} of training")
    knobs = record["speed_knobs"]
    if knobs.get("skipped"):
        lines.append(f"  speed knobs: skipped ({knobs['skipped']})")
    for m in knobs.get("measurements", []):
        lines.append(f"  speed knob {m['key']}: x{m['ratio']:.2f} ({m['label']})")
    lines.append(f"  checked in {record['seconds']:.0f} s")
    return "\n".join(lines)
