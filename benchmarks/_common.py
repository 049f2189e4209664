"""What the benchmark scripts share: interleaved timing, targets, printing, JSON and the command line.

The machine a benchmark runs on is usually shared and noisy, so a ratio is only trusted when its two
sides were measured in the same run, in turn (A B, B A, A B ...), and compared by their medians:
a burst of load then hits both sides alike instead of one of them.

A script's ``run(quick)`` returns a dict (see :func:`result`) whose ``measurements`` each hold a
``ratio``, its ``target`` (or none) and the numbers behind it, and whose ``ratios`` map each
measurement's key to its ratio. :func:`main` prints them, one line each, then the line
``SUMMARY <name>: ...`` with PASS, MISS or info per measurement, and writes the dict as JSON with
``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

TARGET_OPS = ("<=", ">=")


@dataclass
class Timings:
    """Seconds of every call of every variant: wall-clock (``time.perf_counter``, what the targets
    judge) and this process's CPU time (``time.process_time``)."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def median(self, name: str) -> float:
        """The median wall-clock seconds of ``name``."""
        return float(statistics.median(self.wall[name]))

    def ratio(self, numerator: str, denominator: str) -> float:
        """The ratio of the two variants' median wall-clock times."""
        return self.median(numerator) / self.median(denominator)

    def views(self, numerator: str, denominator: str) -> str:
        """Two other views of the same ratio, for the printed line.

        Best-of-N (the fastest calls): load only ever adds time. CPU time (median): a
        single-threaded CPU run is charged only for the time it ran, not for the time it waited
        for a core, so on a loaded machine it is the steadier view; on a GPU it is no measure.
        """
        best = min(self.wall[numerator]) / min(self.wall[denominator])
        cpu = statistics.median(self.cpu[numerator]) / statistics.median(self.cpu[denominator])
        return f"medians of {len(self.wall[denominator])}; best-of ratio {best:.3f}, CPU-time ratio {cpu:.3f}"


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    min_rounds: int = 3,
    budget_s: float | None = None,
    sync: Callable[[], None] | None = None,
    before: Mapping[str, Callable[[], object]] | None = None,
) -> Timings:
    """Time each call of each variant, the variants called in turn for ``rounds`` rounds.

    The order reverses every other round (A B C, C B A, A B C ...), so a load that grows or fades
    during the run does not favour the variant that always comes first. Once ``min_rounds``
    rounds are done, no new round starts after ``budget_s`` seconds, so a busy machine makes the
    benchmark less precise rather than endless. ``sync`` (e.g. ``torch.cuda.synchronize``) runs
    before each clock reading, for asynchronous devices. ``before[name]``, when given, runs
    untimed before each call of that variant (e.g. to reset a model's weights). Warm-up calls
    are the caller's business: the first call of a variant is timed like the rest.
    """
    if rounds < 1 or min_rounds < 1:
        raise ValueError(f"rounds and min_rounds must be >= 1, got {rounds} and {min_rounds}")
    timings = Timings({name: [] for name in variants}, {name: [] for name in variants})
    started = time.perf_counter()
    order = list(variants.items())
    for k in range(rounds):
        if k >= min_rounds and budget_s is not None and time.perf_counter() - started > budget_s:
            break
        for name, call in order if k % 2 == 0 else order[::-1]:
            if before is not None and name in before:
                before[name]()
            if sync is not None:
                sync()
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            if sync is not None:
                sync()
            timings.cpu[name].append(time.process_time() - cpu)
            timings.wall[name].append(time.perf_counter() - wall)
    return timings


def epoch_over(batches: Iterable[tuple[Tensor, ...]], expected: int) -> Callable[[], None]:
    """One epoch over ``batches`` that touches every label (so no loader can skip work) and checks that
    their sum is ``expected`` (so no batch was lost): the unit of the loader benchmarks."""
    def epoch() -> None:
        seen = 0
        for _, y in batches:
            seen += int(y.sum())
        if seen != expected:
            raise RuntimeError(f"an epoch's labels summed to {seen}, expected {expected}: a batch was lost")

    return epoch


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def target(op: str, value: float) -> dict[str, Any]:
    """A target for a ratio: ``target("<=", 1.05)`` or ``target(">=", 3.0)``."""
    if op not in TARGET_OPS:
        raise ValueError(f"op must be one of {list(TARGET_OPS)}, got {op!r}")
    return {"op": op, "value": float(value)}


def met(ratio: float, goal: Mapping[str, Any] | None) -> bool | None:
    """Whether ``ratio`` meets ``goal`` (None when there is no target)."""
    if goal is None:
        return None
    return ratio <= goal["value"] if goal["op"] == "<=" else ratio >= goal["value"]


def measurement(
    key: str, label: str, ratio: float, goal: Mapping[str, Any] | None = None, **numbers: Any
) -> dict[str, Any]:
    """One line of a benchmark: ``ratio`` with its ``label``, target and the numbers behind it."""
    return {"key": key, "label": label, "ratio": float(ratio), "target": goal, "met": met(ratio, goal),
            **numbers}


def timed_ratio(
    key: str,
    label: str,
    timings: Timings,
    numerator: str,
    denominator: str,
    goal: Mapping[str, Any] | None = None,
    names: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The :func:`measurement` of ``numerator`` / ``denominator`` in ``timings`` (medians): the two
    medians in ms (printed as ``names``, default the variants' own), the other views of the ratio,
    every variant's median seconds and every sample."""
    shown = names or (numerator, denominator)
    seconds = {name: timings.median(name) for name in timings.wall}
    medians = f"{shown[0]} {seconds[numerator] * 1e3:.0f} ms, {shown[1]} {seconds[denominator] * 1e3:.0f} ms"
    return measurement(
        key, label, timings.ratio(numerator, denominator), goal,
        detail=f"{medians}, {timings.views(numerator, denominator)}",
        seconds=seconds, samples=asdict(timings),
    )


def result(name: str, measurements: list[dict[str, Any]], *, quick: bool, **extra: Any) -> dict[str, Any]:
    """The dict a script's ``run`` returns: where it ran, every measurement, and ``ratios`` by key."""
    return {
        "benchmark": name,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quick": quick,
        **extra,
        "measurements": measurements,
        "ratios": {m["key"]: m["ratio"] for m in measurements},
    }


def mnist_tensors(size: int, *, synthetic: bool, seed: int = 0) -> tuple[Tensor, Tensor, str]:
    """``size`` MNIST training images (n, 1, 28, 28) and labels, and where they came from.

    With ``synthetic`` (the quick runs), or when MNIST cannot be had, uniform random images and
    labels of the same shapes stand in: the time of a step does not depend on the pixel values.
    """
    if not synthetic:
        from kdlab import data

        try:
            split = data.load("mnist", train_size=size if size < 60_000 else None, seed=seed)
            return split.train.x, split.train.y, f"MNIST, {size:,} training images"
        except RuntimeError as error:
            print(f"note: MNIST is not available ({error}); random images of the same shape stand in")
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(size, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (size,), generator=generator)
    return x, y, f"random MNIST-shaped tensors, {size:,} images"


def _format_target(goal: Mapping[str, Any] | None) -> str:
    return "no target" if goal is None else f"target {goal['op']} {goal['value']:g}"


def _verdict(entry: Mapping[str, Any]) -> str:
    return "info" if entry["met"] is None else ("PASS" if entry["met"] else "MISS")


def report(numbers: Mapping[str, Any]) -> bool:
    """Print every measurement and the SUMMARY line; True when no target was missed."""
    name = numbers["benchmark"]
    if numbers.get("skipped"):
        print(f"{name}: skipped: {numbers['skipped']}")
        print(f"SUMMARY {name}: SKIPPED ({numbers['skipped']})")
        return True
    print(f"{name}: device {numbers['device']}, {numbers['threads']} CPU thread(s), torch {numbers['torch']}"
          + (", quick run" if numbers["quick"] else ""))
    if numbers.get("data"):
        print(f"  data: {numbers['data']}")
    for entry in numbers["measurements"]:
        detail = f" ({entry['detail']})" if entry.get("detail") else ""
        print(f"  {entry['label']}: ratio {entry['ratio']:.3f} [{_format_target(entry['target'])}: "
              f"{_verdict(entry)}]{detail}")
    parts = []
    for entry in numbers["measurements"]:
        goal = entry["target"]
        bound = "" if goal is None else f" {goal['op']} {goal['value']:g}"
        parts.append(f"{entry['key']} {entry['ratio']:.3f}{bound} {_verdict(entry)}")
    missed = any(entry["met"] is False for entry in numbers["measurements"])
    print(f"SUMMARY {name}: " + "; ".join(parts) + f" ({numbers.get('seconds', math.nan):.1f} s)")
    return not missed


def main(
    name: str, run: Callable[[bool], dict[str, Any]], description: str, argv: list[str] | None = None
) -> int:
    """The command line every script shares: ``[--json PATH] [--quick] [--threads N] [--strict]``.

    One CPU thread by default: on a shared machine, a multi-threaded kernel waits at every barrier
    for whichever of its threads another process has descheduled, which makes times erratic (tens
    of times slower on a loaded 2-core machine), while the thread count changes both sides of a
    ratio alike. The exit status is 0 even when a target is missed (a busy machine is no bug),
    unless ``--strict``.
    """
    parser = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration: a smoke test, no numbers")
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("KDLAB_BENCH_THREADS", "1")),
        help="torch CPU threads, 0 for torch's own choice (default: $KDLAB_BENCH_THREADS, else 1)",
    )
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    numbers = run(args.quick)
    numbers["seconds"] = time.perf_counter() - started
    ok = report(numbers)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(numbers, f, indent=2)
    sys.stdout.flush()
    return 1 if args.strict and not ok else 0
