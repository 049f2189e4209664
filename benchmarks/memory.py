"""Peak memory of a distillation step against a plain step of the same student.

    python benchmarks/memory.py [--json PATH] [--quick] [--threads N] [--strict]

Each variant runs one :func:`kdlab.train.fit` epoch of a few batches (Hinton et al.'s 784-800-800-10
student, batch 128) in a fresh Python process of its own, so no variant inherits another's
allocator state:

- ``plain``: cross-entropy on ``(x, y)``;
- ``distill``: :func:`kdlab.methods.hinton.objective` on ``(x, y, teacher_logits)``, the teacher's
  logits cached (the teacher itself is not in memory);
- ``teacher_every_step``: the same loss with the LeNet teacher (32-64-512) run on every batch under
  ``torch.inference_mode()`` (its activations are freed at once, never kept for a backward pass).

What is measured is the memory the steps add to what was resident before them (model, optimizer
set-up, data, teacher): on CUDA ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``; on a CPU the process's peak resident set size. tracemalloc does not
see torch's allocations, so on Linux the peak is reset before the steps (``/proc/self/clear_refs``)
and read after them (``VmHWM``); elsewhere ``resource.getrusage``'s lifetime peak is used, and the
increment is a lower bound. A warm-up step on a copy of the student comes first (the first step
also loads code), and glibc's mmap threshold is fixed, so freed buffers leave the resident set at
once. Each variant runs ``repeats`` times, the variants of a repeat at once (memory does not
depend on the CPU load), and medians are compared. The whole process's peak (``getrusage``:
interpreter, torch, data) is printed too. No target: the numbers are informative. The quick run,
a smoke test, runs every variant in one child process.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import _common
import torch

NAME = "memory"
VARIANTS = ("plain", "distill", "teacher_every_step")
BATCH_SIZE = 128
TEMPERATURE = 20.0
ALPHA = 0.9
# Steps per child, repeats of every variant, student sizes, teacher widths.
FULL = (4, 2, (784, 800, 800, 10), (32, 64, 512))
QUICK = (1, 1, (784, 800, 800, 10), (32, 64, 512))


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def child(variant: str, steps: int, student_sizes: tuple[int, ...], teacher_widths: tuple[int, ...]) -> dict:
    """Run ``steps`` training steps of ``variant`` in this process; its step memory in bytes."""
    from distill_step import teacher_objective

    from kdlab import runtime
    from kdlab.data import TensorLoader
    from kdlab.methods import hinton
    from kdlab.models import lenet, mlp
    from kdlab.train import cross_entropy, fit

    where = runtime.device(None)
    torch.manual_seed(0)
    n = steps * BATCH_SIZE
    x = torch.rand(n, 1, 28, 28, device=where)
    y = torch.randint(0, 10, (n,), device=where)
    student = mlp(student_sizes).to(where)
    if variant == "plain":
        loader, objective = TensorLoader(x, y, batch_size=BATCH_SIZE), cross_entropy
    elif variant == "distill":
        teacher_logits = torch.randn(n, 10, device=where)
        loader = TensorLoader(x, y, teacher_logits, batch_size=BATCH_SIZE)
        objective = hinton.objective(TEMPERATURE, ALPHA)
    else:
        teacher = lenet(teacher_widths).to(where).eval()
        loader = TensorLoader(x, y, batch_size=BATCH_SIZE)
        objective = teacher_objective(teacher, TEMPERATURE, ALPHA)
    # A warm-up step on a throwaway copy first: the first step also loads code and sets up kernels,
    # which is no cost of the step itself.
    warm = copy.deepcopy(student)
    fit(warm, TensorLoader(*(t[:BATCH_SIZE] for t in loader.tensors)), objective, epochs=1, progress=False)
    del warm
    gc.collect()
    if where.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fit(student, loader, objective, epochs=1, progress=False)
        torch.cuda.synchronize()
        step, method = torch.cuda.max_memory_allocated() - before, "torch.cuda.max_memory_allocated"
    else:
        rss = _status_kib("VmRSS")
        if rss is not None and _reset_peak_rss():
            fit(student, loader, objective, epochs=1, progress=False)
            step, method = (_status_kib("VmHWM") - rss) * 1024, "VmHWM after clear_refs"
        else:
            before = _maxrss_bytes()
            fit(student, loader, objective, epochs=1, progress=False)
            step, method = _maxrss_bytes() - before, "getrusage ru_maxrss (a lower bound)"
    return {"variant": variant, "device": str(where), "step_bytes": step, "method": method,
            "process_peak_bytes": _maxrss_bytes()}


def _spawn(
    variants: tuple[str, ...], steps: int, sizes: tuple[int, ...], widths: tuple[int, ...]
) -> subprocess.Popen:
    spec = json.dumps({"variants": variants, "steps": steps, "sizes": sizes, "widths": widths})
    # One thread per child: the children of a repeat run at once, and memory barely depends on it.
    # A fixed mmap threshold hands every large freed buffer back to the system at once, so the
    # resident set follows what is allocated instead of what glibc keeps for later.
    env = {**os.environ, "KDLAB_BENCH_THREADS": "1",
           "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", spec],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _collect(process: subprocess.Popen) -> list[dict]:
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"a memory benchmark child failed (exit {process.returncode}):\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    """Measure every variant in fresh processes; returns the dict of :func:`_common.result` with
    ratios ``distill`` and ``teacher_every_step`` (step memory / plain step memory) and
    ``distill_process`` (whole-process peak / plain's)."""
    steps, repeats, sizes, widths = QUICK if quick else FULL
    # The quick run, a smoke test, pays for one interpreter start only: every variant in one child.
    groups = [VARIANTS] if quick else [(variant,) for variant in VARIANTS]
    samples: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeats):
        processes = [_spawn(group, steps, sizes, widths) for group in groups]
        for process in processes:
            for sample in _collect(process):
                samples[sample["variant"]].append(sample)
    step = {v: _common.median([s["step_bytes"] for s in samples[v]]) for v in VARIANTS}
    whole = {v: _common.median([s["process_peak_bytes"] for s in samples[v]]) for v in VARIANTS}
    if step["plain"] <= 0:
        raise RuntimeError(
            f"the plain steps added no measurable memory ({samples['plain']}); cannot take ratios"
        )
    mib = 2.0**20
    measurements = [
        _common.measurement(
            "distill",
            "distillation step (cached teacher logits) / plain step, memory the steps add",
            step["distill"] / step["plain"],
            detail=f"distill {step['distill'] / mib:.1f} MiB, plain {step['plain'] / mib:.1f} MiB",
            step_bytes=step, samples=samples,
        ),
        _common.measurement(
            "teacher_every_step",
            "distillation step (teacher run every step) / plain step, memory the steps add",
            step["teacher_every_step"] / step["plain"],
            detail=f"with teacher {step['teacher_every_step'] / mib:.1f} MiB, "
            f"plain {step['plain'] / mib:.1f} MiB",
        ),
        _common.measurement(
            "distill_process",
            "whole-process peak, distillation (cached) / plain",
            whole["distill"] / whole["plain"],
            detail=f"distill {whole['distill'] / mib:.0f} MiB, plain {whole['plain'] / mib:.0f} MiB, "
            f"with teacher {whole['teacher_every_step'] / mib:.0f} MiB",
            process_peak_bytes=whole,
        ),
    ]
    return _common.result(
        NAME, measurements, quick=quick, steps=steps, repeats=repeats,
        data=f"{steps} random MNIST-shaped batch(es) per variant, "
        + ("all variants in one process, " if quick else f"{repeats} fresh processes per variant, ")
        + f"measured with {samples['plain'][0]['method']} on {samples['plain'][0]['device']}",
        student=f"mlp {sizes}", teacher=f"lenet {widths}", batch_size=BATCH_SIZE,
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        if os.environ.get("KDLAB_BENCH_THREADS"):
            torch.set_num_threads(int(os.environ["KDLAB_BENCH_THREADS"]))
        sizes, widths = tuple(spec["sizes"]), tuple(spec["widths"])
        print(json.dumps([child(variant, spec["steps"], sizes, widths) for variant in spec["variants"]]))
        sys.exit(0)
    sys.exit(_common.main(NAME, run, __doc__.splitlines()[0]))
