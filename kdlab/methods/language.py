"""Distilling a character-level language model: a small causal transformer student learns from a
larger one by five recipes over :func:`kdlab.methods.common.train_model`, and the measures that
compare them.

- ``labels``: next-character cross-entropy with the text (no teacher).
- ``word_kd``: Kim & Rush (2016) word-level KD, Hinton's soft targets at every position: the forward
  KL(p_teacher || q_student) (:func:`kdlab.losses.sequence.forward_kl`), optionally mixed with the labels.
- ``sequence_kd``: Kim & Rush (2016) sequence-level KD: the teacher writes a transfer corpus once
  (continuations of the training windows' first characters), and the student trains on it with
  plain cross-entropy.
- ``reverse_kl``: MiniLLM's divergence (Gu et al. 2024), KL(q_student || p_teacher) per token, on the
  text's prefixes.
- ``gkd``: on-policy generalised KD (Agarwal et al., ICLR 2024): a fraction ``on_policy`` of the
  batches are the student's own continuations of the windows' first characters, and every batch
  is scored by the teacher with the generalised JSD(beta).

Measures: bits per character on held-out text, the teacher's bits per character on a student's
samples, the share of distinct n-grams in them, and the tokens per second of each recipe's training
step. And the 1-D picture behind the choice of divergence: one Gaussian fitted to a mixture by the
forward or the reverse KL (:func:`fit_gaussian`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdlab import _checks, dry_run, metrics, runtime
from kdlab import cache as kd_cache
from kdlab.data import Tensors
from kdlab.losses import sequence
from kdlab.methods.common import ModelOrFactory, Result, as_factory, train_model
from kdlab.models.charlm import CharTransformer, generate
from kdlab.train import Objective, make_optimizer

METHODS = ("labels", "word_kd", "sequence_kd", "reverse_kl", "gkd")
IGNORE = -100  # a target that the cross-entropy skips (F.cross_entropy's ignore_index)
LN2 = math.log(2.0)


# --- objectives -------------------------------------------------------------------------------------


def next_char_cross_entropy(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """The labels-only objective on ``(x, y)``: cross-entropy of the next character, mean over every
    position whose target is not :data:`IGNORE`. Shapes: x, y (batch, length) int64."""
    x, y = batch[:2]
    logits = model(x)
    return {"loss": F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)}


def _teacher_logits(teacher: nn.Module, x: Tensor) -> Tensor:
    # Eval mode, no graph, float32 clones that autograd may save.
    return metrics.frozen_outputs(teacher.to(x.device), lambda t: [t(x)])[0]


def word_kd_objective(teacher: nn.Module, temperature: float = 1.0, alpha: float = 1.0) -> Objective:
    """Word-level KD on ``(x, y)``: ``alpha * forward_kl + (1 - alpha) * cross-entropy with y``, the
    teacher run on every batch. Kim & Rush (2016, sec. 3.1) interpolate the two this way;
    ``alpha=1`` is pure KD. Logs ``kd`` and ``ce`` unweighted."""
    _checks.positive("temperature", temperature)
    _checks.in_range("alpha", alpha, 0.0, 1.0)

    def word_kd(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y = batch[:2]
        student_logits = model(x)
        kd = sequence.forward_kl(student_logits, _teacher_logits(teacher, x), temperature)
        ce = F.cross_entropy(student_logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)
        return {"loss": alpha * kd + (1.0 - alpha) * ce, "kd": kd.detach(), "ce": ce.detach()}

    return word_kd


def reverse_kl_objective(teacher: nn.Module, temperature: float = 1.0) -> Objective:
    """MiniLLM's divergence on the text's prefixes: :func:`kdlab.losses.sequence.reverse_kl` of the
    student against the teacher (run on every batch) at every position of ``x``."""
    _checks.positive("temperature", temperature)

    def reverse(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x = batch[0]
        return {"loss": sequence.reverse_kl(model(x), _teacher_logits(teacher, x), temperature)}

    return reverse


def divergence(beta: float) -> Callable[..., Tensor]:
    """The per-token divergence of GKD for ``beta``, as GKD's code chooses it: the forward KL at
    ``beta = 0``, the reverse KL at ``beta = 1`` (the limits of JSD(beta) / beta and JSD(beta) /
    (1 - beta); JSD itself vanishes there), the generalised JSD(beta) in between."""
    _checks.in_range("beta", beta, 0.0, 1.0)
    if beta == 0.0:
        return sequence.forward_kl
    if beta == 1.0:
        return sequence.reverse_kl
    return functools.partial(sequence.generalised_jsd, beta=beta)


def is_on_policy(batch: int, fraction: float) -> bool:
    """Whether batch number ``batch`` (from 0) is on-policy when a ``fraction`` of them are: when
    floor((batch + 1) * fraction) passes an integer, so every run of batches holds that fraction,
    spread evenly (GKD draws it at random per batch; the share is the same, the timing steadier)."""
    return math.floor((batch + 1) * fraction) > math.floor(batch * fraction)


def gkd_objective(
    teacher: nn.Module,
    beta: float = 0.5,
    on_policy: float = 0.5,
    prompt_length: int = 16,
    temperature: float = 1.0,
) -> Objective:
    """On-policy GKD (Agarwal et al. 2024, Algorithm 1) on ``(x, y)``.

    The window's text is ``x[:, :1]`` followed by ``y``. On an on-policy batch (a fraction
    ``on_policy``, the paper's lambda; :func:`is_on_policy`), its first ``prompt_length`` characters
    are kept and the student continues them to the window's length, sampling at temperature 1 under
    ``torch.no_grad`` (from torch's global generator, which the recipe's ``seed`` fixes); otherwise
    the window's own text is used. Either way the teacher scores every position and the loss is
    :func:`divergence` ``(beta)`` at ``temperature``, mean per token. Logs ``on_policy`` (1 or 0).
    """
    _checks.in_range("beta", beta, 0.0, 1.0)
    _checks.in_range("on_policy", on_policy, 0.0, 1.0)
    _checks.at_least("prompt_length", prompt_length, 1)
    _checks.positive("temperature", temperature)
    measure = divergence(beta)
    state = {"batches": 0}  # the batches seen so far: the schedule of on-policy batches

    def gkd(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y = batch[:2]
        text = torch.cat([x[:, :1], y], dim=1)
        if prompt_length >= text.shape[1]:
            raise ValueError(
                f"prompt_length must be < the window's {text.shape[1]} characters, got {prompt_length}"
            )
        student = getattr(model, "module", model)  # a DistributedDataParallel wrapper's model samples
        on = is_on_policy(state["batches"], on_policy)
        state["batches"] += 1
        if on:
            text = generate(student, text[:, :prompt_length], text.shape[1] - prompt_length)
        inputs = text[:, :-1]
        loss = measure(model(inputs), _teacher_logits(teacher, inputs), temperature=temperature)
        return {"loss": loss, "on_policy": torch.tensor(float(on))}

    return gkd


def objective(
    method: str,
    teacher: nn.Module | None = None,
    *,
    temperature: float = 1.0,
    alpha: float = 1.0,
    beta: float = 0.5,
    on_policy: float = 0.5,
    prompt_length: int = 16,
) -> Objective:
    """The training step's objective of ``method`` (one of :data:`METHODS`; ``sequence_kd`` trains
    with the labels' cross-entropy on the teacher's text). Knobs that a method does not use are ignored."""
    _checks.choice("method", method, METHODS)
    if method in ("labels", "sequence_kd"):
        return next_char_cross_entropy
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"method {method!r} needs the teacher module, got {type(teacher).__name__}")
    if method == "word_kd":
        return word_kd_objective(teacher, temperature, alpha)
    if method == "reverse_kl":
        return reverse_kl_objective(teacher, temperature)
    return gkd_objective(teacher, beta, on_policy, prompt_length, temperature)


# --- recipes ----------------------------------------------------------------------------------------


def sequence_kd_corpus(
    teacher: CharTransformer,
    windows: Tensors,
    prompt_length: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
) -> Tensors:
    """Kim & Rush's transfer set for a language model: every window's first ``prompt_length``
    characters, continued by the teacher to the window's length, sampled at ``temperature`` (below
    1 it leans towards the teacher's mode, as their beam search does) with a generator seeded by
    ``seed``, ``batch_size`` windows at a time. Computed once and cached (keyed by the teacher's
    weights, the windows' content and every knob). The targets of prompt characters are
    :data:`IGNORE`, so the student learns only the teacher's text. Shapes: windows (n, context) ->
    Tensors (n, context), (n, context).
    """
    x, y = windows.tensors
    _checks.at_least("prompt_length", prompt_length, 1)
    if prompt_length > x.shape[1]:
        raise ValueError(
            f"prompt_length must be <= the windows' {x.shape[1]} characters, got {prompt_length}"
        )
    _checks.positive("temperature", temperature)
    _checks.at_least("batch_size", batch_size, 1)
    where = next(teacher.parameters()).device
    prompts = x[:, :prompt_length]

    def write() -> Tensor:
        generator = torch.Generator(where).manual_seed(seed)
        return torch.cat([
            generate(teacher, prompts[i : i + batch_size].to(where), x.shape[1] + 1 - prompt_length,
                     temperature, generator).cpu()
            for i in range(0, len(prompts), batch_size)
        ])

    text = kd_cache.tensor(
        "sequence_kd corpus", write, teacher=teacher, prompts=prompts, length=x.shape[1] + 1,
        temperature=temperature, seed=seed, batch_size=batch_size,
    ).to(x.device)
    targets = text[:, 1:].clone()
    targets[:, : prompt_length - 1] = IGNORE
    corpus = Tensors(text[:, :-1].contiguous(), targets)
    if dry_run.active():
        dry_run.remember(corpus.x, dry_run.real_examples(x))
    return corpus


def distil(
    method: str,
    student: ModelOrFactory,
    train: Tensors,
    teacher: CharTransformer | None = None,
    *,
    temperature: float = 1.0,
    alpha: float = 1.0,
    beta: float = 0.5,
    on_policy: float = 0.5,
    prompt_length: int = 16,
    sequence_temperature: float = 1.0,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Train ``student`` on the windows ``train`` (``Tensors(x, y)``, :meth:`kdlab.text.TextSplit.windows`)
    by ``method`` (:data:`METHODS`, see the module) against ``teacher``; returns ``(student, History)``.

    ``sequence_kd`` first writes its transfer set (:func:`sequence_kd_corpus`, with
    ``sequence_temperature`` and ``prompt_length``, seed 0: one corpus for every seed of the
    student). ``fit_knobs``: ``epochs``, ``lr``, ``batch_size``, ``seed``, ``schedule``,
    ``device``... as in :func:`kdlab.methods.common.train_model`; with ``cache`` the key holds the
    objective's teacher (by its weights) and knobs, and the data by content.
    """
    step = objective(method, teacher, temperature=temperature, alpha=alpha, beta=beta, on_policy=on_policy,
                     prompt_length=prompt_length)
    data = train
    if method == "sequence_kd":
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"method 'sequence_kd' needs the teacher module, got {type(teacher).__name__}")
        data = sequence_kd_corpus(teacher, train, prompt_length, sequence_temperature)
    return train_model(student, data, step, cache=cache, **fit_knobs)


# --- measures ---------------------------------------------------------------------------------------


@torch.inference_mode()
def bits_per_character(model: nn.Module, windows: Tensors, batch_size: int = 256) -> float:
    """The mean next-character cross-entropy of ``model`` over every position of ``windows``, in bits
    (nats / ln 2), in eval mode. Shapes: windows of (n, context) int64."""
    x, y = windows.tensors
    where = next(model.parameters()).device
    total = 0.0
    with metrics.eval_mode(model):
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size].to(where)).float()
            total += float(F.cross_entropy(logits.flatten(0, 1), y[i : i + batch_size].to(where).flatten(),
                                           reduction="sum"))
    return total / y.numel() / LN2


def sample(
    model: CharTransformer, prompts: Tensor, length: int, temperature: float = 1.0, seed: int = 0
) -> Tensor:
    """:func:`kdlab.models.charlm.generate` with a generator seeded by ``seed`` on the model's device:
    the same samples every time. Shapes: (n, prompt_length) -> (n, prompt_length + length)."""
    where = next(model.parameters()).device
    generator = torch.Generator(where).manual_seed(seed)
    return generate(model, prompts.to(where), length, temperature, generator)


@torch.inference_mode()
def teacher_bits_per_character(teacher: nn.Module, samples: Tensor, prompt_length: int) -> float:
    """The teacher's mean negative log-likelihood, in bits per character, of the characters of
    ``samples`` after their first ``prompt_length`` (what a student wrote): quality as the teacher
    judges it. Shapes: samples (n, length) int64, length <= the teacher's context + 1."""
    _checks.at_least("prompt_length", prompt_length, 1)
    if not prompt_length < samples.shape[1] <= teacher.context + 1:
        raise ValueError(
            f"samples must hold more than prompt_length={prompt_length} and at most the teacher's context "
            f"+ 1 = {teacher.context + 1} characters, got {samples.shape[1]}"
        )
    targets = samples[:, 1:].clone()
    targets[:, : prompt_length - 1] = IGNORE
    logits = _teacher_logits(teacher, samples[:, :-1])
    return float(F.cross_entropy(logits.flatten(0, 1), targets.to(logits.device).flatten(),
                                 ignore_index=IGNORE)) / LN2


def distinct_ngrams(samples: Tensor, n: int, start: int = 0) -> float:
    """Distinct-n (Li et al. 2016): the number of distinct n-grams over the number of n-grams, all
    rows of ``samples[:, start:]`` pooled (no n-gram crosses two rows). A share in [0, 1] that falls
    as a text repeats itself; compare it on samples of one count and length. Shapes: (rows, length)."""
    _checks.at_least("n", n, 1)
    _checks.at_least("start", start, 0)
    rows = samples[:, start:]
    if rows.shape[1] < n:
        raise ValueError(
            f"samples must hold at least n={n} characters after start={start}, got {rows.shape[1]}"
        )
    grams = rows.unfold(1, n, 1).reshape(-1, n)
    return len(torch.unique(grams, dim=0)) / len(grams)


def throughput(
    make_student: ModelOrFactory,
    objectives: Mapping[str, Objective],
    batch: tuple[Tensor, Tensor],
    steps: int = 4,
    rounds: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Tokens per second of each objective's training step on ``batch`` (x, y): a fresh student and
    Adam per objective, one warm-up step, then ``rounds`` rounds that each time ``steps`` steps of
    every objective in turn (forward, teacher, sampling, backward, optimiser step: what
    :func:`kdlab.train.fit` runs). Each objective's best round counts: a shared machine only ever
    slows a round down. Timing only: the students are thrown away."""
    _checks.at_least("steps", steps, 1)
    _checks.at_least("rounds", rounds, 1)
    make = as_factory(make_student)
    x = batch[0]
    runs = {}
    for name, step in objectives.items():
        runtime.seed_everything(seed)
        student = make().to(x.device)
        runs[name] = (student, make_optimizer("adam", student.parameters(), lr), step)

    def one_step(student: nn.Module, optimizer: torch.optim.Optimizer, step: Objective) -> None:
        optimizer.zero_grad(set_to_none=True)
        step(student, batch)["loss"].backward()
        optimizer.step()

    best = dict.fromkeys(objectives, math.inf)
    for round_ in range(rounds + 1):
        for name, (student, optimizer, step) in runs.items():
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            started = time.perf_counter()
            for _ in range(steps if round_ else 1):  # round 0: the warm-up step, not timed
                one_step(student, optimizer, step)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            if round_:
                best[name] = min(best[name], time.perf_counter() - started)
    return {name: x.numel() * steps / seconds for name, seconds in best.items()}


# --- forward and reverse KL in one dimension -------------------------------------------------------------


def mixture_log_density(
    x: Tensor, means: Sequence[float], sds: Sequence[float], weights: Sequence[float]
) -> Tensor:
    """log of sum_k w_k N(x; mu_k, sd_k^2) at every point of ``x`` (weights normalised to sum 1)."""
    mu, sd, w = (torch.as_tensor(v, dtype=torch.float64) for v in (means, sds, weights))
    if not len(mu) == len(sd) == len(w) >= 1 or bool((sd <= 0).any()) or bool((w <= 0).any()):
        raise ValueError(
            f"means, sds and weights must be of one length >= 1, with sds and weights > 0, got "
            f"{list(means)}, {list(sds)} and {list(weights)}"
        )
    parts = torch.distributions.Normal(mu, sd).log_prob(x.double().unsqueeze(-1)) + torch.log(w / w.sum())
    return torch.logsumexp(parts, dim=-1)


def fit_gaussian(
    means: Sequence[float], sds: Sequence[float], weights: Sequence[float], direction: str = "forward",
    points: int = 4001, steps: int = 300,
) -> tuple[float, float]:
    """The mean and sd of the one Gaussian q closest to the mixture p (:func:`mixture_log_density`).

    ``direction="forward"``: argmin KL(p || q), in closed form: q matches p's mean and variance, so it
    covers every mode. ``"reverse"``: argmin KL(q || p), computed on a grid of ``points`` over p's
    support (every mean +- 6 sds, both normalised there) by Adam on (mean, log sd) for ``steps`` steps
    from each component and from the forward fit, the lowest divergence kept: it settles on one mode.
    """
    _checks.choice("direction", direction, ("forward", "reverse"))
    mu, sd, w = (torch.as_tensor(v, dtype=torch.float64) for v in (means, sds, weights))
    mixture_log_density(torch.zeros(1), means, sds, weights)  # checks the arguments
    w = w / w.sum()
    mean = float((w * mu).sum())
    variance = float((w * (sd**2 + mu**2)).sum()) - mean**2
    if direction == "forward":
        return mean, math.sqrt(variance)
    grid = torch.linspace(float((mu - 6 * sd).min()), float((mu + 6 * sd).max()), points, dtype=torch.float64)
    # Both densities as probabilities of the grid's points (normalised there), so no mass of q can
    # leave the grid unseen: the KL of the two discrete distributions.
    log_p = torch.log_softmax(mixture_log_density(grid, means, sds, weights), dim=0)

    def reverse_kl(centre: Tensor, log_sd: Tensor) -> Tensor:
        log_q = torch.log_softmax(torch.distributions.Normal(centre, log_sd.exp()).log_prob(grid), dim=0)
        return (log_q.exp() * (log_q - log_p)).sum()

    fits = []
    for start_mean, start_sd in [*zip(mu.tolist(), sd.tolist(), strict=True), (mean, math.sqrt(variance))]:
        centre = torch.tensor(start_mean, dtype=torch.float64, requires_grad=True)
        log_sd = torch.tensor(math.log(start_sd), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([centre, log_sd], lr=0.05)
        for _ in range(steps):
            optimizer.zero_grad()
            reverse_kl(centre, log_sd).backward()
            optimizer.step()
        with torch.no_grad():
            fits.append((float(reverse_kl(centre, log_sd)), float(centre), math.exp(float(log_sd))))
    _, best_mean, best_sd = min(fits)
    return best_mean, best_sd
