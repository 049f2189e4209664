"""What a result is: errors, accuracy, calibration, agreement, size and speed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from kdlab import _checks


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; afterwards every submodule is back in the mode it had
    (a caller's model in training mode stays so, and so does a submodule it had frozen in eval mode)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def frozen_outputs(model: nn.Module, compute: Callable[[nn.Module], Sequence[Tensor]]) -> list[Tensor]:
    """``compute(model)``'s tensors with ``model`` in eval mode under ``torch.inference_mode()``
    (batch-norm statistics and dropout fixed, no graph; its modes restored afterwards), as float32
    tensors that autograd may save: clones made outside the mode (an inference tensor cannot be
    saved for backward). For targets computed from a frozen teacher on each batch."""
    with eval_mode(model), torch.inference_mode():
        found = [t.float() for t in compute(model)]
    return [t.clone() for t in found]


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Logits of ``model`` (in eval mode) on ``x``, batched, on ``x``'s device, as float32.

    The model's train/eval mode is restored afterwards. Shapes: (n, ...) -> (n, classes).
    """
    with eval_mode(model):
        device = next(model.parameters()).device
        outputs = [model(x[i : i + batch_size].to(device)).float() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(outputs).to(x.device)


def error_count(logits: Tensor, labels: Tensor) -> int:
    """Number of examples whose arg-max prediction differs from the label (Hinton et al. report these)."""
    _checks.logits("logits", logits)
    _checks.labels("labels", labels, logits.shape[0], logits.shape[1])
    return int((logits.argmax(dim=1) != labels).sum())


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of correct arg-max predictions."""
    return 1.0 - error_count(logits, labels) / logits.shape[0]


def agreement(student_logits: Tensor, teacher_logits: Tensor) -> float:
    """Fraction of examples where student and teacher predict the same class."""
    _checks.logits("student_logits", student_logits)
    _checks.same_shape("student_logits", student_logits, "teacher_logits", teacher_logits)
    return float((student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean())


def ece(logits: Tensor, labels: Tensor, bins: int = 15) -> float:
    """Expected calibration error (Guo et al. 2017): sum_b |B_b|/n * |acc(B_b) - conf(B_b)|.

    Confidence is the top softmax probability; ``bins`` equal-width bins on [0, 1]; a bin's
    weight is its share of the examples. Shapes: (n, classes), (n,) -> float.
    """
    _checks.logits("logits", logits)
    _checks.labels("labels", labels, logits.shape[0], logits.shape[1])
    _checks.at_least("bins", bins, 1)
    confidence, prediction = logits.float().softmax(dim=1).max(dim=1)
    correct = (prediction == labels).float()
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 cannot occur.
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    count = torch.zeros(bins).index_add_(0, index.cpu(), torch.ones_like(confidence).cpu())
    gap = torch.zeros(bins).index_add_(0, index.cpu(), (correct - confidence).cpu())
    return float(gap.abs().sum() / logits.shape[0]) if count.sum() else 0.0


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.inference_mode()
def latency(model: nn.Module, example: Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds of one forward pass of ``model`` (eval mode) on the batch ``example``."""
    _checks.at_least("repeats", repeats, 1)
    was_training = model.training
    model.eval()
    times = []
    try:
        for k in range(warmup + repeats):
            if example.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(example)
            if example.is_cuda:
                torch.cuda.synchronize()
            if k >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return sorted(times)[len(times) // 2]


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of a sequence of numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must hold at least one number, got none")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def format_mean_std(values, digits: int = 1) -> str:
    """``"74.5 ± 3.5 (n=2)"``: how kdlab prints a result over seeds."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={len(list(values))})"


def nll(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T) (nats per example).

    Shapes: (n, classes), (n,) -> float.
    """
    _checks.logits("logits", logits)
    _checks.labels("labels", labels, logits.shape[0], logits.shape[1])
    _checks.positive("temperature", temperature)
    return float(torch.nn.functional.cross_entropy(logits.float() / temperature, labels))


def fit_temperature(logits: Tensor, labels: Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """Temperature scaling (Guo et al. 2017, sec. 4.2): the T in [low, high] that minimises :func:`nll`.

    Fit on held-out logits (a model's training logits are over-confident), then divide the logits
    by T: the ranking, hence the error, is unchanged, only the confidence moves. The mean NLL is
    convex in beta = 1/T (a log-sum-exp of terms linear in beta, minus one linear term), so a
    golden-section search on beta finds the minimum to ~1e-6 relative without gradients.

    Shapes: (n, classes), (n,) -> float.
    """
    _checks.logits("logits", logits)
    _checks.labels("labels", labels, logits.shape[0], logits.shape[1])
    _checks.positive("low", low)
    if not high > low:
        raise ValueError(f"high must be > low ({low}), got {high!r}")
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one example to fit a temperature, got none")
    z, y = logits.detach().double(), labels

    def loss(beta: float) -> float:
        return float(torch.nn.functional.cross_entropy(z * beta, y))

    a, b = 1.0 / high, 1.0 / low
    ratio = (5**0.5 - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > 1e-7 * b:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return 1.0 / ((a + b) / 2)


def reliability(logits: Tensor, labels: Tensor, bins: int = 15) -> dict[str, Tensor]:
    """Per confidence bin: ``count``, mean ``confidence`` and ``accuracy`` (a reliability diagram).

    The bins of :func:`ece` (equal width on [0, 1], bin b holds (b/bins, (b+1)/bins]); an empty
    bin has count 0 and NaN confidence and accuracy. ``ece == sum(count / n * |accuracy -
    confidence|)`` over non-empty bins. Shapes: (n, classes), (n,) -> three tensors of (bins,).
    """
    _checks.logits("logits", logits)
    _checks.labels("labels", labels, logits.shape[0], logits.shape[1])
    _checks.at_least("bins", bins, 1)
    confidence, prediction = logits.detach().float().softmax(dim=1).max(dim=1)
    correct = (prediction == labels).float().cpu()
    confidence = confidence.cpu()
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    count = torch.zeros(bins).index_add_(0, index, torch.ones_like(confidence))
    confidence_sum = torch.zeros(bins).index_add_(0, index, confidence)
    correct_sum = torch.zeros(bins).index_add_(0, index, correct)
    # 0/0 gives NaN for empty bins: plotted as gaps, never as a point at zero.
    return {"count": count, "confidence": confidence_sum / count, "accuracy": correct_sum / count}
