"""Born-Again Networks. Furlanello et al. (2018), "Born Again Neural Networks": a student with the
same architecture as its teacher, trained on the labels and on the teacher's outputs, often beats
the teacher; repeating the step gives a sequence of generations, and averaging the generations'
probabilities gives the BAN ensembles Ens*k (source 003, Table 1).

Generation 0 is trained on the labels alone; generation k minimises the seed's
``L(y, f(x, theta_k)) + L(f(x, theta_{k-1}), f(x, theta_k))``, the label cross-entropy plus the
cross-entropy to the previous generation's probabilities at temperature 1. That is Hinton's loss
(:func:`kdlab.losses.distillation_terms`) at ``temperature=1`` and ``alpha=0.5``: half the
seed's sum, with KL in place of the cross-entropy (they differ by the teacher's entropy, a
constant), so the same gradient up to a factor 1/2 that Adam's step sizes hardly see (Adam is
scale-invariant but for its epsilon). Both terms are batch means, as in every kdlab loss, so the
learning rate does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from kdlab import _checks
from kdlab import cache as kd_cache
from kdlab.data import Tensors
from kdlab.losses.soft import ensemble_logits
from kdlab.methods import hinton
from kdlab.methods.common import ModelOrFactory, Result, train_model
from kdlab.train import History

# Generation k of the sequence started from seed s is seeded with s + SEED_STRIDE * k.
SEED_STRIDE = 1000


@dataclass
class Generation:
    """One generation of a born-again sequence: its trained ``model`` and its ``history``.

    ``index`` 0 is the label-trained teacher, ``index`` k >= 1 the k-th born-again network
    (BAN-k), trained against generation k - 1.
    """

    index: int
    model: nn.Module
    history: History

    @property
    def name(self) -> str:
        return "teacher" if self.index == 0 else f"BAN-{self.index}"


def _check_train(train: Tensors) -> None:
    _checks.finite("train.x", train.x)
    if len(train) < 1:
        raise ValueError("train must hold at least one example, got none")


def generation_seed(seed: int, k: int) -> int:
    """The seed of generation ``k`` of a sequence started from ``seed``: ``seed + SEED_STRIDE * k``
    (a fresh initialisation and batch order for every generation, see :func:`born_again`)."""
    return seed + SEED_STRIDE * k


def generation_zero(
    student: ModelOrFactory,
    train: Tensors,
    *,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """The first generation: ``student`` trained on the labels of ``train`` alone (cross-entropy),
    :func:`kdlab.methods.common.train_model` itself, so any chapter or section that trains the same
    network with the same knobs on the same data shares its cache entry. ``fit_knobs`` as there.
    Shapes: ``train.x`` (n, ...), ``train.y`` (n,).
    """
    _check_train(train)
    return train_model(student, train, cache=cache, **fit_knobs)


def descend(
    teacher: nn.Module,
    student: ModelOrFactory,
    train: Tensors,
    *,
    generations: int,
    temperature: float = 1.0,
    alpha: float = 0.5,
    test: Tensors | None = None,
    seed: int = 0,
    cache: bool = False,
    progress: bool | None = None,
    last: Mapping[str, Any] | None = None,
    **fit_knobs: Any,
) -> Result:
    """Generations 1 .. ``generations`` born from ``teacher`` (generation 0): generation k is a fresh
    ``student`` (a factory, or a module's copy) trained with :func:`kdlab.methods.hinton.objective`
    (``temperature``, ``alpha``) against generation k - 1's logits on ``train.x`` (computed once
    per generation, :func:`kdlab.cache.logits`), seeded with :func:`generation_seed`. Returns the
    :class:`~kdlab.methods.common.Result` of the last generation, with every generation's History
    in ``stages`` (``"BAN-k"``) and the :class:`Generation` objects 1 .. ``generations`` in
    ``produced["generations"]``. ``last`` holds knobs for the last generation alone (the model
    returned: ``checkpoint``, ``val``...). Every knob is checked before the first epoch.
    """
    _checks.at_least("generations", generations, 1)
    _checks.positive("temperature", temperature)
    _checks.in_range("alpha", alpha, 0.0, 1.0)
    _check_train(train)
    sequence = [Generation(0, teacher, History())]
    augmented = fit_knobs.get("augment") is not None and fit_knobs["augment"].active
    for k in range(1, generations + 1):
        # The parent's logits once, or the parent itself on every batch when the inputs are augmented.
        parent = sequence[-1].model if augmented else kd_cache.logits(sequence[-1].model, train.x)
        model, history = hinton.distill(
            student, train, parent, temperature=temperature, alpha=alpha, test=test,
            cache=cache, progress=progress, seed=generation_seed(seed, k), desc=f"BAN-{k}, seed {seed}",
            **fit_knobs, **((last or {}) if k == generations else {}),
        )
        sequence.append(Generation(k, model, history))
    return _result(sequence[1:])


def _result(sequence: list[Generation]) -> Result:
    last = sequence[-1]
    return Result(last.model, last.history, {g.name: g.history for g in sequence}, {"generations": sequence})


def born_again(
    student: ModelOrFactory,
    train: Tensors,
    *,
    generations: int,
    temperature: float = 1.0,
    alpha: float = 0.5,
    test: Tensors | None = None,
    seed: int = 0,
    cache: bool = False,
    progress: bool | None = None,
    **fit_knobs: Any,
) -> Result:
    """Furlanello et al. (2018): a teacher and ``generations`` born-again students, all of ``student``'s
    architecture (a factory, or a module whose copies start from its weights).

    Generation 0 is :func:`generation_zero`; generations 1 .. K are :func:`descend` from it (the
    seed's loss is ``temperature=1, alpha=0.5``, see the module). Every generation uses the same
    ``fit_knobs`` (``epochs``, ``lr``, ``schedule``...), so only the targets and the draw differ:
    generation k is seeded with :func:`generation_seed` (``seed + SEED_STRIDE * k``), a fresh
    initialisation and batch order as for any new network (with one shared seed the generations
    stay nearly copies of each other, and their ensembles gain nothing). With ``cache`` each
    generation is stored and a re-run loads the whole sequence.

    Returns the :class:`~kdlab.methods.common.Result` of the last generation, with every
    generation's History in ``stages`` (``"teacher"``, ``"BAN-1"``...) and the ``generations + 1``
    :class:`Generation` objects, the teacher first, in ``produced["generations"]``. Every knob is
    checked before the first epoch. Shapes: ``train.x`` (n, ...), ``train.y`` (n,).
    """
    _checks.at_least("generations", generations, 1)
    _checks.positive("temperature", temperature)
    _checks.in_range("alpha", alpha, 0.0, 1.0)
    _check_train(train)
    model, history = generation_zero(
        student, train, cache=cache, test=test, progress=progress, seed=seed, desc=f"teacher, seed {seed}",
        **fit_knobs,
    )
    born = descend(
        model, student, train, generations=generations, temperature=temperature, alpha=alpha, test=test,
        seed=seed, cache=cache, progress=progress, **fit_knobs,
    )
    return _result([Generation(0, model, history), *born.produced["generations"]])


def ensembles(generation_logits: Sequence[Tensor]) -> dict[str, Tensor]:
    """The BAN ensembles of source 003's Table 1: ``{"Ens*k": logits}`` for k = 2 .. K.

    ``generation_logits`` holds the teacher's logits first, then BAN-1 .. BAN-K's, each (n,
    classes) on the same inputs. Ens*k averages the *probabilities* of BAN-1 .. BAN-k (the
    teacher is not a member; the paper adds it only where a BAN-3 is missing), returned as the
    logits of that mean (:func:`kdlab.losses.soft.ensemble_logits`), so ``argmax`` gives its
    prediction. Shapes: K + 1 tensors (n, classes) -> dict of (n, classes).
    """
    members = list(generation_logits)
    if len(members) < 3:
        raise ValueError(
            f"generation_logits must hold the teacher and at least two BANs (3 tensors) to form Ens*2, "
            f"got {len(members)}"
        )
    return {f"Ens*{k}": ensemble_logits(members[1 : k + 1]) for k in range(2, len(members))}
