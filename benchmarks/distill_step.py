"""The cost of distillation: an epoch of Hinton's loss against an epoch of plain training.

    python benchmarks/distill_step.py [--json PATH] [--quick] [--threads N] [--strict]

Every epoch is one call of :func:`kdlab.train.fit` (``epochs=1, progress=False``: what users
run), timed with ``time.perf_counter``; the student is Hinton et al.'s 784-800-800-10 MLP, batch
128, on an MNIST slice. Variants run in turn (A B A B ...) and are compared by their medians.
Before every timed epoch each student is reset (untimed) to one shared initial state: on a CPU
the time of a step depends on the values it meets (students trained on for a dozen epochs by
different losses drifted 10 to 15 % apart here, most of it in Adam's update, with identical
work), and what is measured is the cost of the loss, not where each run has wandered.

(a) ``cached_teacher``: :func:`kdlab.methods.hinton.objective` on batches ``(x, y,
    teacher_logits)`` whose teacher logits were computed once, against cross-entropy on ``(x, y)``.
    The extra work is a softmax and a KL over 10 classes per example. Target: ratio <= 1.05.
(b) ``teacher_every_step``: the same loss, with the tsneNet LeNet teacher (32-64-512) run on every
    batch under ``torch.inference_mode()`` (what augmented inputs force), on the first 2,560 images
    of the slice (the teacher makes each epoch several times longer). Printed beside the estimate
    1 + (teacher forward time / plain epoch time), both measured in this run. No target: it says
    how much caching the teacher's logits saves.

The teacher's weights are random: the time of a forward pass does not depend on them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict

import _common
import torch
from torch import Tensor, nn

from kdlab import metrics, runtime
from kdlab.data import TensorLoader
from kdlab.methods import hinton
from kdlab.models import TEACHER_WIDTHS, lenet, mlp
from kdlab.train import Objective, cross_entropy, fit

NAME = "distill_step"
BATCH_SIZE = 128
TEMPERATURE = 20.0  # Hinton et al.'s MNIST temperature; the cost does not depend on it
ALPHA = 0.9
CACHED_TARGET = _common.target("<=", 1.05)
# Images for (a), images for (b), most rounds of (a) and of (b), seconds after which no new round
# starts, student sizes, teacher widths. The quick run only checks that everything runs: tiny nets.
FULL = (5_000, 2_560, 11, 5, 20.0, (784, 800, 800, 10), TEACHER_WIDTHS)
QUICK = (256, 128, 1, 1, 0.0, (784, 16, 10), (2, 4, 8))


def teacher_objective(teacher: nn.Module, temperature: float, alpha: float) -> Objective:
    """Hinton's objective on batches ``(x, y)``, the teacher's logits computed on the batch itself."""
    distillation = hinton.objective(temperature, alpha)

    def with_teacher(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y = batch[:2]
        with torch.inference_mode():
            teacher_logits = teacher(x).float()
        return distillation(model, (x, y, teacher_logits))

    return with_teacher


def _epoch(model: nn.Module, loader: TensorLoader, objective: Objective) -> Callable[[], object]:
    return lambda: fit(model, loader, objective, epochs=1, progress=False)


def _teacher_pass(teacher: nn.Module, loader: TensorLoader) -> Callable[[], None]:
    @torch.inference_mode()
    def forward() -> None:
        for x, _ in loader:
            teacher(x)

    return forward


def _students(sizes: tuple[int, ...], count: int) -> tuple[list[nn.Module], Callable[[nn.Module], Callable]]:
    """``count`` students with the same initial weights, and ``reset(student)``: a function that
    puts that student back to those weights (a copy taken here), to run before each timed epoch."""
    torch.manual_seed(0)
    first = mlp(sizes)
    initial = {name: value.clone() for name, value in first.state_dict().items()}
    others = []
    for _ in range(count - 1):
        other = mlp(sizes)
        other.load_state_dict(initial)
        others.append(other)

    def reset(student: nn.Module) -> Callable[[], object]:
        return lambda: student.load_state_dict(initial)

    return [first, *others], reset


def run(quick: bool = False) -> dict:
    """Time the epochs; returns the dict of :func:`_common.result` with ratios ``cached_teacher``,
    ``teacher_every_step`` and ``teacher_every_step_estimate``."""
    size_a, size_b, rounds_a, rounds_b, budget, student_sizes, teacher_widths = QUICK if quick else FULL
    x, y, source = _common.mnist_tensors(size_a, synthetic=quick)
    where = runtime.device(None)
    torch.manual_seed(1)
    teacher = lenet(teacher_widths).to(where).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher_logits = metrics.predict(teacher, x)
    distillation = hinton.objective(TEMPERATURE, ALPHA)
    in_loop = teacher_objective(teacher, TEMPERATURE, ALPHA)

    (plain, distilled, plain_b, looped), reset = _students(student_sizes, 4)
    loaders = {
        "plain": TensorLoader(x, y, batch_size=BATCH_SIZE, seed=0),
        "distill": TensorLoader(x, y, teacher_logits, batch_size=BATCH_SIZE, seed=0),
        "plain_b": TensorLoader(x[:size_b], y[:size_b], batch_size=BATCH_SIZE, seed=0),
        "teacher_loop": TensorLoader(x[:size_b], y[:size_b], batch_size=BATCH_SIZE, seed=0),
        "teacher_forward": TensorLoader(x[:size_b], y[:size_b], batch_size=BATCH_SIZE, seed=0, device=where),
    }
    part_a = {
        "plain": _epoch(plain, loaders["plain"], cross_entropy),
        "distill": _epoch(distilled, loaders["distill"], distillation),
    }
    part_b = {
        "plain": _epoch(plain_b, loaders["plain_b"], cross_entropy),
        "teacher_loop": _epoch(looped, loaders["teacher_loop"], in_loop),
        "teacher_forward": _teacher_pass(teacher, loaders["teacher_forward"]),
    }
    # One warm-up epoch per variant: the first pays for allocations and kernel selection.
    for call in (*part_a.values(), *part_b.values()):
        call()
    sync = torch.cuda.synchronize if where.type == "cuda" else None
    times_a = _common.interleaved(
        part_a, rounds=rounds_a, budget_s=budget, min_rounds=min(3, rounds_a), sync=sync,
        before={"plain": reset(plain), "distill": reset(distilled)},
    )
    times_b = _common.interleaved(
        part_b, rounds=rounds_b, budget_s=budget / 2, min_rounds=min(3, rounds_b), sync=sync,
        before={"plain": reset(plain_b), "teacher_loop": reset(looped)},
    )
    b = {name: times_b.median(name) for name in part_b}
    estimate = 1.0 + b["teacher_forward"] / b["plain"]
    steps_a, steps_b = len(loaders["plain"]), len(loaders["plain_b"])
    measurements = [
        _common.timed_ratio(
            "cached_teacher",
            f"(a) distillation epoch, cached teacher logits, vs plain epoch ({steps_a} steps)",
            times_a, "distill", "plain", CACHED_TARGET,
        ),
        _common.measurement(
            "teacher_every_step",
            f"(b) distillation epoch, teacher run every step, vs plain epoch ({steps_b} steps)",
            times_b.ratio("teacher_loop", "plain"),
            detail=f"estimate 1 + teacher forward / plain epoch = {estimate:.3f}; with teacher "
            f"{b['teacher_loop'] * 1e3:.0f} ms, plain {b['plain'] * 1e3:.0f} ms, teacher forward "
            f"{b['teacher_forward'] * 1e3:.0f} ms, " + times_b.views("teacher_loop", "plain"),
            seconds=b, samples=asdict(times_b),
        ),
        _common.measurement(
            "teacher_every_step_estimate",
            "(b) estimate 1 + teacher forward time / plain epoch time", estimate,
        ),
    ]
    return _common.result(
        NAME, measurements, quick=quick, data=source,
        student=f"mlp {student_sizes}", teacher=f"lenet {teacher_widths}", batch_size=BATCH_SIZE,
    )


if __name__ == "__main__":
    sys.exit(_common.main(NAME, run, __doc__.splitlines()[0]))
