"""One Deep Mutual Learning epoch for K students against K plain epochs (kdlab.methods.mutual).

DML needs each student's predictions on the batch; they are computed once per batch per student
and reused as the peers' targets, so a mutual-learning step for K students should cost about K
plain steps, not K^2. Both sides run :func:`kdlab.train.fit` for one epoch on the same
MNIST-shaped random tensors (2,000 examples, batch 100) with Adam, with MLP students
784-400-400-10:

- plain: K students, each trained alone by its own ``fit`` (K x the plain cost);
- ``simultaneous``: one cohort, one step per batch on the sum of the K losses;
- ``in_turn``: the paper's Algorithm 1, K steps per batch, with K - 1 extra forwards without a
  graph (the updated students' new predictions).

    python benchmarks/mutual_step.py [--json PATH]

Targets: ``simultaneous`` at most 1.15x the K plain epochs; ``in_turn`` about (4K - 1) / (3K) of
them (a forward is about a third of a training step). The times are the medians of a few
repeats, interleaved so that a busy machine slows both sides alike. ``run()`` returns a dict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from kdlab import models, train
from kdlab.data import TensorLoader, Tensors
from kdlab.methods import mutual

COHORT_SIZES = (2, 3, 4)
TARGET = 1.15
EXAMPLES, BATCH = 2000, 100


def _student() -> torch.nn.Module:
    return models.mlp((784, 400, 400, 10))


def _plain_epochs(k: int, data: Tensors) -> float:
    started = time.perf_counter()
    for _ in range(k):
        loader = TensorLoader(data.x, data.y, batch_size=BATCH, seed=0)
        train.fit(_student(), loader, epochs=1, progress=False)
    return time.perf_counter() - started


def _cohort_epoch(k: int, data: Tensors, update: str) -> float:
    started = time.perf_counter()
    mutual.fit_cohort([_student() for _ in range(k)], data, epochs=1, batch_size=BATCH, update=update,
                      progress=False)
    return time.perf_counter() - started


def run(cohort_sizes: tuple[int, ...] = COHORT_SIZES, repeats: int = 5, threads: int | None = 1) -> dict:
    """Median seconds of one epoch: K plain, DML simultaneous, DML in turn; and their ratios.

    ``threads``: torch's intra-op threads (one by default: on a shared machine more threads
    than free cores make every time, and so the ratios, erratic; ``None`` keeps torch's)."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = Tensors(torch.rand(EXAMPLES, 1, 28, 28), torch.randint(0, 10, (EXAMPLES,)))
    _cohort_epoch(2, data, "simultaneous")  # warm-up: allocator, kernels
    rows = {}
    for k in cohort_sizes:
        times: dict[str, list[float]] = {"plain": [], "simultaneous": [], "in_turn": []}
        for _ in range(repeats):
            times["plain"].append(_plain_epochs(k, data))
            times["simultaneous"].append(_cohort_epoch(k, data, "simultaneous"))
            times["in_turn"].append(_cohort_epoch(k, data, "in_turn"))
        median = {name: statistics.median(values) for name, values in times.items()}
        rows[k] = {
            "plain_seconds": median["plain"],
            "simultaneous_seconds": median["simultaneous"],
            "in_turn_seconds": median["in_turn"],
            "simultaneous_ratio": median["simultaneous"] / median["plain"],
            "in_turn_ratio": median["in_turn"] / median["plain"],
            "in_turn_expected": (4 * k - 1) / (3 * k),
        }
    worst = max(row["simultaneous_ratio"] for row in rows.values())
    return {"examples": EXAMPLES, "batch_size": BATCH, "threads": torch.get_num_threads(), "cohorts": rows,
            "target": TARGET, "worst_simultaneous_ratio": worst, "meets_target": worst <= TARGET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    numbers = run(threads=args.threads)
    print(f"one epoch ({numbers['examples']} examples, batch {numbers['batch_size']}, "
          f"{numbers['threads']} threads), median seconds:")
    print(" K   K plain   simultaneous (ratio)   in turn (ratio, expected)")
    for k, row in numbers["cohorts"].items():
        print(f"{k:2d}   {row['plain_seconds']:7.2f}   {row['simultaneous_seconds']:7.2f} "
              f"({row['simultaneous_ratio']:.2f}x)        {row['in_turn_seconds']:7.2f} "
              f"({row['in_turn_ratio']:.2f}x, {row['in_turn_expected']:.2f}x)")
    verdict = "meets" if numbers["meets_target"] else "misses"
    worst = numbers["worst_simultaneous_ratio"]
    print(f"summary: a simultaneous DML step for K students costs at most {worst:.2f}x K plain steps "
          f"({verdict} the target {TARGET}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(numbers, f, indent=2)


if __name__ == "__main__":
    main()
