"""tsneNet (Qiao, "Transferring neural network knowledge with t-SNE regularizer"): a small student
trained on cross-entropy plus beta times the t-SNE loss between the teacher's and its own
penultimate features, batch by batch.

The teacher is frozen and the student sees *fixed* batches (the seed splits its 6,000 images
into 60 batches of 100 once), so each batch's similarity matrix P is computed once and cached;
a training step then only adds the student's Q and a KL divergence. Here the partition into
batches is fixed and only the order of the batches changes from epoch to epoch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdlab import _checks, features, loggers, losses, runtime
from kdlab import cache as kd_cache
from kdlab.data import Tensors
from kdlab.losses.tsne import tsne_loss, tsne_p, tsne_q
from kdlab.methods.common import RUN_KNOBS_NOT_KEYED, ModelOrFactory, Plan, as_factory, recipe
from kdlab.train import History, Objective, fit

LAYER = "fc"


class FixedBatches:
    """Batches whose membership never changes, served in a new order every epoch.

    ``FixedBatches(x, y, p)`` with every tensor shaped ``(n_batches, batch, ...)`` yields
    ``(x[b], y[b], p[b])`` for the batches ``b`` in a permutation drawn from the loader's own
    generator (seeded by ``seed``, saved by ``state_dict`` so a resumed :func:`~kdlab.train.fit`
    sees the same order). Unlike :class:`~kdlab.data.TensorLoader` it never mixes examples of two
    batches, so a per-batch target such as tsneNet's P stays valid. One process only (no
    ``torchrun`` sharding).
    """

    def __init__(self, *tensors: Tensor, seed: int = 0, shuffle: bool = True) -> None:
        if not tensors:
            raise ValueError("FixedBatches needs at least one tensor, got none")
        shapes = {tuple(t.shape[:2]) for t in tensors}
        if len(shapes) != 1 or any(t.dim() < 2 for t in tensors):
            raise ValueError(
                f"every tensor must be shaped (n_batches, batch, ...) with the same first two sizes, got "
                f"{[tuple(t.shape) for t in tensors]}"
            )
        self.tensors = tensors
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def batch_size(self) -> int:
        return self.tensors[0].shape[1]

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n = len(self)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for b in order.tolist():
            yield tuple(t[b] for t in self.tensors)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def partition(n: int, batch_size: int, seed: int = 0) -> Tensor:
    """A fixed random partition of ``n`` examples into batches: an index tensor (n // batch_size, batch_size).

    The seed's "separate the 6000 into 60 batches" step. The ``n % batch_size`` examples left
    over are dropped, because every P matrix of one run has one size.
    """
    _checks.at_least("batch_size", batch_size, 2)
    if n < batch_size:
        raise ValueError(f"batch_size must be <= the number of training examples ({n}), got {batch_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    count = n // batch_size
    return order[: count * batch_size].reshape(count, batch_size)


def check_perplexity(perplexity: float, batch_size: int) -> None:
    """P needs 1 < perplexity < batch_size - 1: a row of a batch has batch_size - 1 neighbours."""
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not (
        1 < perplexity < batch_size - 1
    ):
        raise ValueError(
            f"perplexity must be in (1, {batch_size - 1}) for batches of {batch_size} (a point has "
            f"{batch_size - 1} neighbours), got {perplexity!r}; use a smaller perplexity or larger batches"
        )


def features_of(model: nn.Module, x: Tensor, layer: str = LAYER, batch_size: int = 1000) -> Tensor:
    """The output of ``layer`` on ``x`` in eval mode, without gradient, flattened: (n, ...) -> (n, dim)."""
    features.check_layers(model, layer, "model layer")
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad(), features.capture(model, layer, detach=True) as found:
            for start in range(0, x.shape[0], batch_size):
                model(x[start : start + batch_size])
                chunks.append(found[layer].flatten(1).float())
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def batch_p(
    teacher: nn.Module,
    x: Tensor,
    batches: Tensor,
    *,
    perplexity: float = 20.0,
    pca_dim: int | None = 50,
    layer: str = LAYER,
    cache: bool = False,
) -> Tensor:
    """tsneNet's "list of matrix P for each training batch": one P per fixed batch, (n_batches, B, B).

    For batch b, :func:`kdlab.losses.tsne_p` of the teacher's ``layer`` features of ``x[batches[b]]``
    (PCA to ``pca_dim`` first, the seed's 50; perplexity 20). The teacher is frozen, so with
    ``cache`` the result is stored (``kdlab.cache.tensor``), keyed by the teacher's content, the
    inputs, the partition and every knob. Shapes: x (n, ...), batches (n_batches, B) int64 ->
    (n_batches, B, B) float32.
    """
    if batches.dim() != 2:
        raise ValueError(
            f"batches must be an index tensor (n_batches, batch), got shape {tuple(batches.shape)}"
        )
    check_perplexity(perplexity, batches.shape[1])
    if pca_dim is not None:
        _checks.at_least("pca_dim", pca_dim, 1)
    features.check_layers(teacher, layer, "teacher layer")

    def compute() -> Tensor:
        found = features_of(teacher, x, layer)
        index = batches.to(found.device)
        return torch.stack([tsne_p(found[rows], perplexity, pca_dim=pca_dim) for rows in index]).float()

    if not cache:
        return compute()
    value = kd_cache.tensor(
        "tsne_p", compute, teacher=kd_cache.model_digest(teacher), x=kd_cache.tensor_digest(x),
        batches=kd_cache.tensor_digest(batches), perplexity=perplexity, pca_dim=pca_dim, layer=layer,
    )
    return value.to(x.device)


def _check_knobs(beta: float, tsne_alpha: float, temperature: float | None, alpha: float | None) -> None:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"beta must be >= 0 (the weight of the t-SNE term), got {beta!r}")
    _checks.positive("tsne_alpha", tsne_alpha)
    if (temperature is None) != (alpha is None):
        raise ValueError(
            f"temperature and alpha go together (Hinton's soft targets), got "
            f"temperature={temperature!r} and alpha={alpha!r}"
        )
    if temperature is not None:
        _checks.positive("temperature", temperature)
        _checks.in_range("alpha", alpha, 0.0, 1.0)


def objective(
    beta: float,
    tsne_alpha: float = math.inf,
    *,
    layer: str = LAYER,
    temperature: float | None = None,
    alpha: float | None = None,
    teacher: nn.Module | None = None,
    teacher_layer: str = LAYER,
    perplexity: float = 20.0,
    pca_dim: int | None = 50,
) -> Objective:
    """tsneNet's hybrid loss, CE + beta * KL(P || Q) (README, "loss_hybrid"), on fixed batches.

    Q is :func:`kdlab.losses.tsne_q` of the student's ``layer`` features with ``tsne_alpha``
    degrees of freedom (the paper's alpha; ``math.inf``: the Gaussian, the seed's best). Batches
    are ``(x, y, p)`` with P from :func:`batch_p`; with ``teacher`` given, P is instead computed
    from the teacher at every step (the uncached procedure the seed calls slow) and batches are
    ``(x, y)``. With ``temperature`` and ``alpha`` (the soft-target weight, as in every recipe),
    Hinton's soft targets join in (a last batch tensor of teacher logits):
    ``(1 - alpha) CE + alpha T^2 KL + beta * tsne``. CE and the soft term are batch
    means, the t-SNE term a sum over the batch's pairs (one distribution over pairs). Logs
    ``loss``, ``hard`` (CE), ``tsne`` (unweighted) and ``soft`` when used.
    """
    _check_knobs(beta, tsne_alpha, temperature, alpha)
    if teacher is not None:
        features.check_layers(teacher, teacher_layer, "teacher layer")

    def hybrid(model: nn.Module, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y = batch[:2]
        if teacher is None:
            p = batch[2]
        else:
            p = tsne_p(features_of(teacher, x, teacher_layer), perplexity, pca_dim=pca_dim)
        with features.capture(model, layer) as found:
            student_logits = model(x)
        student_features = found[layer].flatten(1).float()
        with torch.set_grad_enabled(beta > 0 and torch.is_grad_enabled()):
            tsne = tsne_loss(p, tsne_q(student_features, tsne_alpha))
        if alpha is None:
            hard = F.cross_entropy(student_logits.float(), y)
            terms = {"loss": hard + beta * tsne, "hard": hard.detach()}
        else:
            kd = losses.distillation_terms(student_logits.float(), batch[-1], y, temperature, alpha)
            terms = {"loss": kd["loss"] + beta * tsne, "hard": kd["hard"].detach()}
            terms["soft"] = kd["soft"].detach()
        terms["tsne"] = tsne.detach()
        return terms

    return hybrid


@recipe("tsne", factories=("student",), not_keyed=RUN_KNOBS_NOT_KEYED)
def distill(
    student: ModelOrFactory,
    train: Tensors,
    teacher: nn.Module,
    *,
    beta: float,
    tsne_alpha: float = math.inf,
    perplexity: float = 20.0,
    pca_dim: int | None = 50,
    layer: str = LAYER,
    teacher_layer: str = LAYER,
    batch_size: int = 100,
    partition_seed: int = 0,
    temperature: float | None = None,
    alpha: float | None = None,
    precompute_p: bool = True,
    test: Tensors | None = None,
    cache: bool = False,
    epochs: int,
    lr: float = 1e-3,
    seed: int = 0,
    optimizer: str = "adam",
    schedule: str | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    desc: str = "tsne",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    val: Tensors | tuple[Tensor, Tensor] | None = None,
    log: str | os.PathLike | None = None,
    tensorboard: str | os.PathLike | None = None,
    callbacks: Sequence[loggers.Callback] | loggers.Callback = (),
) -> Plan:
    """Train a student (a factory seeded by ``seed``, or a module's copy) with tsneNet's hybrid
    loss; returns ``(student, History)``.

    ``train`` is cut once into fixed batches of ``batch_size`` (:func:`partition`, chosen by
    ``partition_seed``, the same for every student seed so P is computed once); each epoch
    visits them in a new order. P is computed once per batch before training (and stored with
    ``cache``); ``precompute_p=False`` recomputes it from the teacher at every step (only to
    measure what precomputing saves: the result is the same). ``beta=0`` is the student alone;
    ``temperature`` and ``alpha`` add Hinton's soft targets (see :func:`objective`). With
    ``cache=True`` the trained student is trained once per key
    (:func:`kdlab.methods.common.recipe`). ``checkpoint``, ``resume``, ``val``, ``log``,
    ``tensorboard`` and ``callbacks`` are :func:`~kdlab.train.fit`'s (``val`` is keyed, the others
    are not, as in :func:`kdlab.methods.common.train_model`). Every knob is checked before anything runs.
    """
    _check_knobs(beta, tsne_alpha, temperature, alpha)
    _checks.at_least("batch_size", batch_size, 2)
    _checks.at_least("epochs", epochs, 1)
    check_perplexity(perplexity, batch_size)
    make = as_factory(student)
    features.check_layers(make(), layer, "student layer")
    features.check_layers(teacher, teacher_layer, "teacher layer")
    where = runtime.device(device)
    teacher = teacher.to(where)
    x, y = train.x.to(where), train.y.to(where)
    batches = partition(len(train), batch_size, partition_seed).to(where)
    tensors = [x[batches], y[batches]]
    if precompute_p:
        tensors.append(batch_p(teacher, x, batches, perplexity=perplexity, pca_dim=pca_dim,
                               layer=teacher_layer, cache=cache))
    if alpha is not None:
        tensors.append(kd_cache.logits(teacher, x).to(where)[batches])
    step_objective = objective(
        beta, tsne_alpha, layer=layer, temperature=temperature, alpha=alpha,
        teacher=None if precompute_p else teacher, teacher_layer=teacher_layer, perplexity=perplexity,
        pca_dim=pca_dim,
    )

    def run(model: nn.Module) -> History:
        return fit(
            model, FixedBatches(*tensors, seed=seed), step_objective, epochs=epochs, lr=lr,
            optimizer=optimizer, schedule=schedule, test=test, device=where, progress=progress, desc=desc,
            checkpoint=checkpoint, resume=resume, val=val, log=log, tensorboard=tensorboard,
            callbacks=callbacks,
        )

    return Plan(make, run)
