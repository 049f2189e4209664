"""Every method of the book on one common setting, and every claim of the source documents.

The common setting is tsneNet's (source 000): an MNIST teacher (conv 32-64, fc 512), a student
(conv 8-16, fc 32) trained on 6,000 images, with one budget (epochs, learning rate, schedule,
batch size, seeds) for every method. :func:`run_all` trains each method through its recipe in
:mod:`kdlab.methods` (nothing is re-implemented here) and :func:`summary` turns the runs into the
results chapter's table. The claims of the source documents live in :mod:`kdlab.book.claims`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kdlab import _checks, cache, metrics, published, runtime
from kdlab import train as train_module
from kdlab.augment import Augment
from kdlab.data import Tensors
from kdlab.methods import fsp, registry
from kdlab.methods.common import train_model
from kdlab.train import History

# The rows of the table: the student trained alone, every method of the registry, by label, and
# variants of a registry method with other knobs: Hinton's KD on z-scored logits (Sun et al. 2024), and
# its control, Hinton's KD on raw logits at the same temperature and weights.
ALONE = "student alone"
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "Hinton KD + LS": ("hinton", published.LS_KD),
    "Hinton KD, LS's T": ("hinton", {**published.LS_KD, "standardize": False}),
}
METHODS = (ALONE, *(m.label for m in registry.METHODS.values()), *VARIANTS)


@dataclass
class Setting:
    """The common setting: data, a trained ``teacher``, the student's factory and one budget.

    ``epochs``, ``lr``, ``batch_size``, ``schedule``, the ``optimizer`` (Adam unless said),
    ``weight_decay`` and ``augment`` (:mod:`kdlab.augment`; a teacher then runs on every augmented
    batch) are the same for every method;
    two-stage methods (FitNets' hint stage, FSP's stage 1) get ``stage_epochs`` more. Method
    knobs: Hinton's ``temperature`` and ``alpha`` (also FitNets' initial alpha, annealed),
    tsneNet's ``beta`` (alpha = inf, perplexity 20), the FitNets ``hint`` / ``guided`` layers,
    the ``fsp_pairs`` (the same layer names in both nets), FSP's own ``fsp_teacher`` (``None``: the
    common ``teacher``; Yim et al. compare FSP matrices entry by entry, so a student thinner than the
    common teacher needs one of its own widths) and the DML ``cohort`` size; any other
    knob of a registry method in ``method_knobs`` (``{"dkd": {"nckd_weight": 6.0}}``). With
    ``cache`` every trained student is stored and reloaded; ``cache=False`` trains every student
    afresh and stores nothing (the teacher is the caller's). ``test_every_epoch`` evaluates each
    student on ``test`` after every epoch (its History's ``test_error``, for last- and best-epoch
    figures, :meth:`kdlab.train.History.peak`); off, only the trained students are evaluated.
    """

    train: Tensors
    test: Tensors
    teacher: nn.Module
    make_student: Callable[[], nn.Module]
    epochs: int
    lr: float = 1e-3
    batch_size: int = 100
    schedule: str | train_module.Steps | None = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    augment: Augment | None = None
    temperature: float = registry.HINTON_TEMPERATURE
    alpha: float = registry.HINTON_ALPHA
    stage_epochs: int = 2
    beta: float = 0.1
    hint: str = "conv2"
    guided: str = "conv2"
    fsp_pairs: Sequence[tuple[str, str]] = (("conv1", "conv2.1"),)
    fsp_teacher: nn.Module | None = None
    cohort: int = 2
    method_knobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cache: bool = True
    test_every_epoch: bool = False
    device: str | torch.device | None = None

    def __post_init__(self) -> None:
        _checks.at_least("epochs", self.epochs, 1)
        _checks.positive("lr", self.lr)
        _checks.at_least("batch_size", self.batch_size, 2)
        _checks.positive("temperature", self.temperature)
        _checks.in_range("alpha", self.alpha, 0.0, 1.0)
        _checks.at_least("stage_epochs", self.stage_epochs, 1)
        _checks.in_range("beta", self.beta, 0.0, math.inf)
        _checks.at_least("cohort", self.cohort, 2)
        for name, knobs in self.method_knobs.items():
            registry.method(name).resolve(knobs)  # an unknown method or knob fails here, before any run

    def fit_knobs(self, seed: int) -> dict[str, Any]:
        """The knobs every recipe shares: ``epochs``, ``lr``, ``batch_size``, ``schedule``, ``seed``..."""
        return dict(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            schedule=self.schedule,
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
            augment=self.augment,
            seed=seed,
            device=self.device,
            progress=False,
        )


@dataclass
class Run:
    """One method at one seed: the ``student`` used at inference, the test error count of each
    student it produced (DML: one per member of the cohort) and the History of every stage it
    trained, in order (Born-Again: generation 0 then 1; FitNets: hint stage then KD)."""

    method: str
    seed: int
    student: nn.Module
    errors: list[float]
    histories: list[History] = field(default_factory=list)

    @property
    def error(self) -> float:
        """The run's test error count: the mean over its students."""
        return sum(self.errors) / len(self.errors)

    @property
    def seconds(self) -> float:
        """Seconds of training over every stage (the shared teacher excluded)."""
        return sum(sum(h["seconds"]) for h in self.histories)

    @property
    def seconds_per_epoch(self) -> float:
        """Mean seconds per epoch of the last stage (the one that trains the final student)."""
        last = self.histories[-1]["seconds"]
        return sum(last) / len(last)


def student_errors(model: nn.Module, test: Tensors) -> float:
    """Test error count of ``model`` on ``test`` (arg-max vs label). A model loaded from the cache
    has its test logits cached too (:func:`kdlab.cache.logits`), so a warm run predicts nothing."""
    return float(metrics.error_count(cache.logits(model, test.x), test.y))


def fsp_source(setting: Setting) -> nn.Module:
    """The teacher FSP distils from on ``setting``: its ``fsp_teacher``, else the common teacher."""
    return setting.teacher if setting.fsp_teacher is None else setting.fsp_teacher


def fsp_mismatch(setting: Setting) -> str | None:
    """Why FSP cannot run on ``setting``, or ``None`` when it can.

    Yim et al. (2017), eq. 2 compares the teacher's and the student's FSP matrices entry by
    entry, so each pair of layers must give matrices of one shape (c1, c2) in both nets; the
    paper pairs residual nets of equal widths and different depths. A thinner student (tsneNet's
    8-16 vs 32-64) gives smaller matrices and the loss is undefined, unless ``setting.fsp_teacher``
    has the student's widths.
    """
    example = setting.train.x[:2]
    student = setting.make_student().to(example.device)
    teacher = fsp_source(setting).to(example.device)
    try:
        fsp.check_pairs(student, setting.fsp_pairs, example, "student")
        fsp.check_pairs(teacher, setting.fsp_pairs, example, "teacher")
    except (KeyError, ValueError) as error:
        return f"its layer pairs do not fit these nets ({error})"
    # In eval mode: two examples in train mode would move a batch-norm teacher's running statistics.
    with torch.no_grad(), metrics.eval_mode(student), metrics.eval_mode(teacher):
        shapes_s = [tuple(g.shape[1:]) for g in fsp.fsp_matrices(student, example, setting.fsp_pairs)]
        shapes_t = [tuple(g.shape[1:]) for g in fsp.fsp_matrices(teacher, example, setting.fsp_pairs)]
    if shapes_s != shapes_t:
        return (
            f"FSP matrices must have one shape in teacher and student, got {shapes_t} and {shapes_s} "
            f"for the pairs {[tuple(p) for p in setting.fsp_pairs]}: the loss compares them entry by "
            "entry, and Yim et al. pair nets of equal widths"
        )
    return None


def _method_knobs(setting: Setting, name: str) -> dict[str, Any]:
    """The knobs the common setting gives registry method ``name`` (the rest are its defaults)."""
    hinton = {"temperature": setting.temperature, "alpha": setting.alpha}
    return {
        "hinton": hinton,
        "logits": {},
        "dkd": {},
        "dist": {},
        "fitnets": {**hinton, "hint": setting.hint, "guided": setting.guided,
                    "stage_epochs": setting.stage_epochs},
        "fsp": {"pairs": setting.fsp_pairs, "stage_epochs": setting.stage_epochs},
        "tsne": {"beta": setting.beta},
        "born_again": {"generations": 1},
        "mutual": {"cohort": setting.cohort},
    }[name] | dict(setting.method_knobs.get(name, {}))


def run_seed(setting: Setting, seed: int, methods: Sequence[str] = METHODS) -> dict[str, Run]:
    """Every method of ``methods`` (labels of :data:`METHODS`) at ``seed``, each run through its
    entry of :data:`kdlab.methods.registry.METHODS` (as :func:`kdlab.distill` runs it; a variant of
    :data:`VARIANTS` with its own knobs); FSP is left out when :func:`fsp_mismatch` gives a reason.
    Returns ``{label: Run}``.

    The student alone is Born-Again's generation 0 (its teacher, of the student's architecture, as
    in Furlanello et al.); FSP distils from :func:`fsp_source`; the teacher's logits and features
    come from the cache."""
    for method in methods:
        _checks.choice("methods", method, METHODS)
    where = runtime.device(setting.device)
    train, test = setting.train.to(where), setting.test.to(where)
    teacher, fsp_teacher = setting.teacher.to(where), fsp_source(setting).to(where)
    training = {**setting.fit_knobs(seed), "device": where, "cache": setting.cache}
    classes = int(cache.logits(teacher, train.x).shape[1])
    runs: dict[str, Run] = {}

    def add(label: str, students: Sequence[nn.Module], histories: list[History]) -> None:
        errors = [student_errors(s.to(where), test) for s in students]
        runs[label] = Run(label, seed, students[0].to(where), errors, histories)

    every_epoch = test if setting.test_every_epoch else None
    alone, alone_history = train_model(
        setting.make_student, train, test=every_epoch, desc=f"alone, seed {seed}", **training
    )
    add(ALONE, [alone], [alone_history])
    rows = [(entry.label, name, _method_knobs(setting, name)) for name, entry in registry.METHODS.items()]
    rows += [(label, name, dict(knobs)) for label, (name, knobs) in VARIANTS.items()]
    for label, name, method_knobs in rows:
        if label not in methods or (name == "fsp" and fsp_mismatch(setting) is not None):
            continue
        entry = registry.METHODS[name]
        knobs = entry.resolve({**training, **method_knobs})
        source = {"born_again": alone, "fsp": fsp_teacher}.get(name, teacher)
        result = entry.run(source, setting.make_student, train, every_epoch, knobs, classes)
        histories = list(result.stages.values())  # every stage, in order
        if name == "born_again":
            histories = [alone_history, *histories]
        students = list(result.model) if isinstance(result.model, nn.ModuleList) else [result.model]
        add(label, students, histories)
    return {method: runs[method] for method in methods if method in runs}


def run_all(setting: Setting, seeds: int, methods: Sequence[str] = METHODS) -> dict[str, list[Run]]:
    """:func:`run_seed` for seeds 0 .. ``seeds`` - 1: ``{method: [Run per seed]}``."""
    _checks.at_least("seeds", seeds, 1)
    per_seed = [run_seed(setting, seed, methods) for seed in range(seeds)]
    return {method: [runs[method] for runs in per_seed] for method in per_seed[0]}


def gap_closed(alone: float, method: float, teacher: float) -> float:
    """The fraction of the teacher-student gap that a method closes: (alone - method) / (alone - teacher).

    1 means the student matches its teacher, 0 no gain, below 0 a loss (tsneNet's "50 % drop of
    the difference of error rate" is 0.5). NaN when the teacher is not better than the student
    alone (there is no gap to close). Errors in any one unit (counts, percent).
    """
    if not alone > teacher:
        return math.nan
    return (alone - method) / (alone - teacher)


def summary(
    runs: Mapping[str, Sequence[Run]], teacher_errors: float, own_teachers: Mapping[str, float] | None = None
) -> list[dict[str, Any]]:
    """One row per method: ``errors`` (one per seed), their ``mean`` and ``sd``, the ``gap_closed``
    (of the means, against ``"student alone"``, to the teacher's ``teacher_errors``, or for a method
    of ``own_teachers`` to its own teacher's errors: FSP's ``fsp_teacher``), ``seconds_per_epoch`` and
    ``cost`` (the method's training seconds over every stage, relative to the student alone's; mean
    over seeds).

    Requires the ``"student alone"`` row. Errors are counts on the test set (last epoch).
    """
    own_teachers = dict(own_teachers or {})
    if ALONE not in runs:
        raise KeyError(f"runs must hold {ALONE!r} (the baseline), got {sorted(runs)}")
    alone = runs[ALONE]
    alone_mean, _ = metrics.mean_std([r.error for r in alone])
    alone_seconds, _ = metrics.mean_std([r.seconds for r in alone])
    rows = []
    for method, method_runs in runs.items():
        errors = [r.error for r in method_runs]
        mean, sd = metrics.mean_std(errors)
        seconds, _ = metrics.mean_std([r.seconds for r in method_runs])
        rows.append(
            {
                "method": method,
                "errors": errors,
                "mean": mean,
                "sd": sd,
                "gap_closed": gap_closed(alone_mean, mean, own_teachers.get(method, teacher_errors)),
                "seconds_per_epoch": metrics.mean_std([r.seconds_per_epoch for r in method_runs])[0],
                "cost": seconds / alone_seconds if alone_seconds > 0 else math.nan,
            }
        )
    return rows


def pareto_front(costs: Sequence[float], errors: Sequence[float]) -> list[int]:
    """Indices of the points that no other point dominates (lower or equal cost and error, one of
    them strictly lower), in the order given: the accuracy-vs-cost frontier."""
    costs, errors = list(costs), list(errors)
    if len(costs) != len(errors):
        raise ValueError(f"costs and errors must have one length, got {len(costs)} and {len(errors)}")
    return [
        i
        for i in range(len(costs))
        if not any(
            costs[j] <= costs[i] and errors[j] <= errors[i] and (costs[j], errors[j]) != (costs[i], errors[i])
            for j in range(len(costs))
        )
    ]
