"""Every method of the book on one common setting, and every claim of the source documents.

The common setting is tsneNet's (seed 000): an MNIST teacher (conv 32-64, fc 512), a student
(conv 8-16, fc 32) trained on 6,000 images, with one budget (epochs, learning rate, schedule,
batch size, seeds) for every method. :func:`run_all` trains each method through its recipe in
:mod:`kdlab.methods` (nothing is re-implemented here) and :func:`summary` turns the runs into the
results chapter's table. :data:`SEED_CLAIMS` lists every claim of the five source documents with
its paper's number and the chapter that checks it; :func:`gather_claims` reads the chapters'
saved ``results["claims"]`` and falls back on this list where a chapter has not run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdlab import _checks, cache, metrics, runtime
from kdlab import results as kd_results
from kdlab.data import Tensors
from kdlab.methods import born_again, fitnets, fsp, hinton, mutual, tsne
from kdlab.train import History

METHODS = (
    "student alone",
    "Hinton KD",
    "logit regression",
    "FitNets",
    "FSP",
    "t-SNE regularizer",
    "Born-Again",
    "DML",
)
# The book's chapters in the table of contents' order (the results chapter reads their JSON).
CHAPTERS = (
    "soft_targets",
    "born_again",
    "fitnets",
    "fsp",
    "tsne_regularizer",
    "mutual_learning",
    "hint_mutual",
)


@dataclass
class Setting:
    """The common setting: data, a trained ``teacher``, the student's factory and one budget.

    ``epochs``, ``lr``, ``batch_size`` and ``schedule`` are the same for every method (Adam);
    two-stage methods (FitNets' hint stage, FSP's stage 1) get ``stage_epochs`` more. Method
    knobs: Hinton's ``temperature`` and ``alpha`` (also FitNets' initial alpha, annealed),
    tsneNet's ``beta`` (alpha = inf, perplexity 20), the FitNets ``hint`` / ``guided`` layers,
    the ``fsp_pairs`` (the same layer names in both nets) and the DML ``cohort`` size. With
    ``cache`` every trained student is stored and reloaded; ``cache=False`` trains every student
    afresh and stores nothing (the teacher is the caller's).
    """

    train: Tensors
    test: Tensors
    teacher: nn.Module
    make_student: Callable[[], nn.Module]
    epochs: int
    lr: float = 1e-3
    batch_size: int = 100
    schedule: str | None = None
    temperature: float = 20.0
    alpha: float = 0.9
    stage_epochs: int = 2
    beta: float = 0.1
    hint: str = "conv2"
    guided: str = "conv2"
    fsp_pairs: Sequence[tuple[str, str]] = (("conv1", "conv2.1"),)
    cohort: int = 2
    cache: bool = True
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

    def fit_knobs(self, seed: int) -> dict[str, Any]:
        """The knobs every recipe shares: ``epochs``, ``lr``, ``batch_size``, ``schedule``, ``seed``..."""
        return dict(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            schedule=self.schedule,
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


def fsp_mismatch(setting: Setting) -> str | None:
    """Why FSP cannot run on ``setting``, or ``None`` when it can.

    Yim et al. (2017), eq. 2 compares the teacher's and the student's FSP matrices entry by
    entry, so each pair of layers must give matrices of one shape (c1, c2) in both nets; the
    paper pairs residual nets of equal widths and different depths. A thinner student (tsneNet's
    8-16 vs 32-64) gives smaller matrices and the loss is undefined.
    """
    example = setting.train.x[:2]
    student = setting.make_student().to(example.device)
    teacher = setting.teacher.to(example.device)
    try:
        fsp.check_pairs(student, setting.fsp_pairs, example, "student")
        fsp.check_pairs(teacher, setting.fsp_pairs, example, "teacher")
    except (KeyError, ValueError) as error:
        return f"its layer pairs do not fit these nets ({error})"
    with torch.no_grad():
        shapes_s = [tuple(g.shape[1:]) for g in fsp.fsp_matrices(student, example, setting.fsp_pairs)]
        shapes_t = [tuple(g.shape[1:]) for g in fsp.fsp_matrices(teacher, example, setting.fsp_pairs)]
    if shapes_s != shapes_t:
        return (
            f"FSP matrices must have one shape in teacher and student, got {shapes_t} and {shapes_s} "
            f"for the pairs {[tuple(p) for p in setting.fsp_pairs]}: the loss compares them entry by "
            "entry, and Yim et al. pair nets of equal widths"
        )
    return None


def _cached_cohort(setting: Setting, seed: int) -> tuple[nn.ModuleList, History]:
    # mutual.train has no cache of its own: the same seeding and build, stored by kdlab.cache.
    def build() -> nn.ModuleList:
        runtime.seed_everything(seed)
        return mutual.cohort([setting.make_student() for _ in range(setting.cohort)])

    def train(students: nn.Module) -> History:
        return mutual.fit_cohort(
            students, setting.train, **setting.fit_knobs(seed), desc=f"DML, seed {seed}"
        )[1]

    if not setting.cache:
        students = build()
        return students, train(students)
    parts = {
        "method": "dml",
        "architecture": repr(build()),
        "data": [cache.tensor_digest(t) for t in setting.train.tensors],
        "update": "in_turn",
        "temperature": 1.0,
        **{k: v for k, v in setting.fit_knobs(seed).items() if k not in ("device", "progress")},
    }
    students, history = cache.trained(build, train, name="model", **parts)
    return students, history


def run_seed(setting: Setting, seed: int, methods: Sequence[str] = METHODS) -> dict[str, Run]:
    """Every method of ``methods`` (names of :data:`METHODS`) at ``seed``; FSP is left out when
    :func:`fsp_mismatch` gives a reason. Returns ``{method: Run}``.

    The student alone is Born-Again's generation 0 (one run serves both rows); the teacher's
    logits and features come from the cache (:func:`kdlab.cache.logits`)."""
    for method in methods:
        _checks.choice("methods", method, METHODS)
    where = runtime.device(setting.device)
    train, test = setting.train.to(where), setting.test.to(where)
    teacher = setting.teacher.to(where)
    make = setting.make_student
    knobs = setting.fit_knobs(seed)
    teacher_logits = cache.logits(teacher, train.x)
    runs: dict[str, Run] = {}

    def add(
        method: str, student: nn.Module, histories: list[History], students: Sequence[nn.Module] = ()
    ) -> None:
        students = list(students) or [student]
        errors = [student_errors(s.to(where), test) for s in students]
        runs[method] = Run(method, seed, student.to(where), errors, histories)

    if "student alone" in methods or "Born-Again" in methods:
        sequence = born_again.born_again(make, train, generations=1, cache=setting.cache, **knobs)
        add("student alone", sequence[0].model, [sequence[0].history])
        add("Born-Again", sequence[1].model, [sequence[0].history, sequence[1].history])
    if "Hinton KD" in methods:
        student, history = hinton.distill(
            make,
            train,
            teacher_logits,
            temperature=setting.temperature,
            alpha=setting.alpha,
            cache=setting.cache,
            desc=f"KD, seed {seed}",
            **knobs,
        )
        add("Hinton KD", student, [history])
    if "logit regression" in methods:
        student, history = hinton.mimic(
            make,
            train.x,
            teacher_logits,
            loss="mse",
            cache=setting.cache,
            desc=f"logit regression, seed {seed}",
            **knobs,
        )
        add("logit regression", student, [history])
    if "FitNets" in methods:
        hinted, _, hint_history = fitnets.hint_stage(
            make,
            teacher,
            train,
            hint=setting.hint,
            guided=setting.guided,
            epochs=setting.stage_epochs,
            lr=setting.lr,
            batch_size=setting.batch_size,
            seed=seed,
            device=where,
            cache_result=setting.cache,
            progress=False,
        )
        student, history = fitnets.distill(
            hinted,
            train,
            teacher_logits,
            temperature=setting.temperature,
            alpha=setting.alpha,
            cache_result=setting.cache,
            **knobs,
        )
        add("FitNets", student, [hint_history, history])
    if "FSP" in methods and fsp_mismatch(setting) is None:
        init, stage = fsp.fsp_stage(
            make,
            teacher,
            train,
            epochs=setting.stage_epochs,
            pairs=setting.fsp_pairs,
            lr=setting.lr,
            batch_size=setting.batch_size,
            seed=seed,
            device=where,
            cache_result=setting.cache,
            progress=False,
        )
        student, history = fsp.train_from(init, train, cache_result=setting.cache, **knobs)
        add("FSP", student, [stage, history])
    if "t-SNE regularizer" in methods:
        student, history = tsne.distill(
            make, train, teacher, beta=setting.beta, cache=setting.cache, desc=f"t-SNE, seed {seed}", **knobs
        )
        add("t-SNE regularizer", student, [history])
    if "DML" in methods:
        students, history = _cached_cohort(setting, seed)
        add("DML", students[0], [history], students)
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


def summary(runs: Mapping[str, Sequence[Run]], teacher_errors: float) -> list[dict[str, Any]]:
    """One row per method: ``errors`` (one per seed), their ``mean`` and ``sd``, the ``gap_closed``
    (of the means, against ``"student alone"``), ``seconds_per_epoch`` and ``cost`` (the method's
    training seconds over every stage, relative to the student alone's; mean over seeds).

    Requires the ``"student alone"`` row. Errors are counts on the test set (last epoch).
    """
    if "student alone" not in runs:
        raise KeyError(f"runs must hold 'student alone' (the baseline), got {sorted(runs)}")
    alone = runs["student alone"]
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
                "gap_closed": gap_closed(alone_mean, mean, teacher_errors),
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


_S000, _S001 = "Qiao, tsneNet (seed 000)", "He, teacher-student report (seed 001)"
_S002, _S004 = "Keras notebook after Hinton et al. 2015 (seed 002)", "seed 004's experiment (DML blog)"
_HINTON, _BA = "Hinton et al. 2015 (seed 003)", "Ba & Caruana 2014 (seed 003)"
_BREIMAN = "Breiman & Shang 1996 (seed 003)"
_BAN, _BUCILA = "Furlanello et al. 2018 (seed 003)", "Bucila, Caruana et al. 2006 (seed 003)"
_ROMERO, _YIM = "Romero et al. 2015 (seed 003)", "Yim et al. 2017 (seed 003)"
_NO_CIFAR_CAFFE = "no chapter trains seed 001's Caffe CIFAR-10 nets"

# Every claim of the five source documents (seeds/): (claim, source, the paper's number, the chapter
# that checks it, and why none does where the chapter is None).
_SEED_CLAIMS = [
    ("the t-SNE regularizer (beta = 0.1, alpha = inf) halves the student-teacher error gap", _S000,
     "gap 1.4 % -> 0.7 % (50 % closed)", "tsne_regularizer", ""),
    ("beta in 0.05 .. 0.5 works; beta = 0.02 helps too little, larger beta overwhelms training", _S000,
     "good for 0.05 <= beta <= 0.5", "tsne_regularizer", ""),
    ("a higher Student-t alpha is always better; alpha = inf (Gaussian Q) is best", _S000,
     "alpha = +inf optimal", "tsne_regularizer", ""),
    ("with P cached, the regularizer only adds Q and a KL divergence to a step", _S000,
     "'minimal computational cost'", "tsne_regularizer", ""),
    ("the 32-64-512 teacher reaches 99.0 % test accuracy on MNIST", _S000, "99.0 %", "tsne_regularizer", ""),
    ("on MNIST, accuracy falls as the weight lambda of the teacher loss rises; lambda = 0 is best", _S001,
     "lambda = 0 best, lambda = 1 worst", "soft_targets", ""),
    ("the teacher-student cross-entropy barely decreases (stays near 80 % of its maximum)", _S001,
     "~80 % (a normal loss: ~10 %)", "soft_targets", ""),
    ("on CIFAR-10 a small lambda (0.05, 0.1) beats normal training", _S001,
     "lambda 0.05 and 0.1 above lambda = 0", None, _NO_CIFAR_CAFFE),
    ("the CIFAR-10 'mini' student plateaus at 78 % alone and 77 % taught (lambda = 0.1)", _S001,
     "78 % vs 77 %; full net 80-81 %", None, _NO_CIFAR_CAFFE),
    ("the taught CIFAR-10 student leads early, then the one trained alone overtakes it", _S001,
     "ahead for 20,000 iterations, then 77 % vs 78 %", None, _NO_CIFAR_CAFFE),
    ("model blending: a student of another family (a CNN) can beat its LSTM teacher (Geras 2016)", _S001,
     "no number", None, "no chapter distils across model families on sequence data"),
    ("a teacher can label new data: its soft labels carry more than hard labels", _S001,
     "no number", "soft_targets", ""),
    ("a noisy teacher (80 % on CIFAR-10) may cause the taught student's plateau", _S001,
     "no number", "soft_targets", ""),
    ("temperature changes a teacher's calibration, never its ranking of the classes", _S001,
     "no number", "soft_targets", ""),
    ("dropout 0.5 and a max-norm constraint help the cumbersome model make fewer errors", _S002,
     "no number (experiment unfinished)", "soft_targets", ""),
    ("distillation brings the small MNIST net close to the cumbersome one", _HINTON,
     "67 / 146 / 74 errors (teacher / small / small with KD)", "soft_targets", ""),
    ("a shallow net regressing a deep net's logits (L2) beats one trained on labels", _BA,
     "CIFAR-10: 21.8 % -> 15.1 % error (teacher 12.0 %)", "soft_targets", ""),
    ("mimicking an ensemble beats mimicking a single teacher", _BA,
     "CIFAR-10: 15.1 % -> 14.2 % error", "soft_targets", ""),
    ("a born-again tree (CART on smeared data labelled by an ensemble) beats CART", _BREIMAN,
     "breast cancer: 3.9 % vs 5.9 % error", "born_again", ""),
    ("born-again trees on ionosphere, glass, soybean and sonar", _BREIMAN,
     "6.1 vs 11.2, 28.2 vs 30.4, 8.4 vs 8.6, 25.1 vs 32.1 % error", None,
     "only the breast-cancer table ships with scikit-learn, and nothing may be downloaded"),
    ("a born-again network (BAN-1) beats its identical teacher", _BAN,
     "CIFAR-100, DenseNet-112-33: 18.25 -> 17.61 % error", "born_again", ""),
    ("ensembles of born-again generations (Ens*k) beat every single generation", _BAN,
     "CIFAR-100: Ens*2 15.77 %, Ens*3 15.68 %", "born_again", ""),
    ("a small net trained on MUNGE data labelled by an ensemble keeps its accuracy", _BUCILA,
     "no table number (mean over eight problems)", "born_again", ""),
    ("a thin deep FitNet beats its wider teacher with fewer parameters", _ROMERO,
     "CIFAR-10: 91.61 % (2.5 M) vs 90.18 % (9 M); CIFAR-100: 64.96 vs 63.54 %", "fitnets", ""),
    ("a convolutional regressor needs fewer parameters than a fully connected one", _ROMERO,
     "no number", "fitnets", ""),
    ("the deeper the guided layer, the more a FitNet is over-regularised", _ROMERO,
     "no number", "fitnets", ""),
    ("FSP pre-training beats the student alone and FitNets (CIFAR-10, ResNet-8 from ResNet-26)", _YIM,
     "88.70 vs 87.91 (alone), 88.57 (FitNet) % accuracy", "fsp", ""),
    ("FSP pre-training beats the student alone and FitNets (CIFAR-100, ResNet-14 from ResNet-32)", _YIM,
     "63.33 vs 58.65 (alone), 61.28 (FitNet) % accuracy", "fsp", ""),
    ("FSP optimises fast: a third of the teacher's training steps", _YIM, "1/3 of the steps", "fsp", ""),
    ("the bulkier VGG-style teacher generalises better than the thin-deep student alone", _S004,
     "CIFAR-10: 74 % vs 67 % accuracy", "mutual_learning", ""),
    ("a cohort of two students trained by mutual learning beats each student alone", _S004,
     "CIFAR-10: 67 % alone -> 74.17 % and 73 %", "mutual_learning", ""),
    ("hint pre-training (10 epochs) then mutual learning beats plain mutual learning", _S004,
     "CIFAR-10: 76.7 % and 77.03 % vs 74.17 % and 73 %", "hint_mutual", ""),
    ("hint pre-training gives a faster rise of accuracy at the start", _S004,
     "no number (curves)", "hint_mutual", ""),
    ("the VGG-style teacher and the thin-deep student have 2,440,394 and 1,497,434 parameters", _S004,
     "2,440,394 / 1,497,434 ('a reduction 63 %'; the counts give 38.6 %)", "hint_mutual", ""),
]
SEED_CLAIMS: tuple[dict[str, Any], ...] = tuple(
    {"claim": c, "source": s, "paper": p, "chapter": ch, "why": w} for c, s, p, ch, w in _SEED_CLAIMS
)


def load_records(
    chapters: Sequence[str], profile: str, folder: str | Path | None = None
) -> dict[str, dict[str, Any] | None]:
    """Each chapter's saved results at ``profile`` (:func:`kdlab.results.load`), ``None`` where the
    file is missing; an unreadable file is an error naming it."""
    records: dict[str, dict[str, Any] | None] = {}
    for chapter in chapters:
        try:
            records[chapter] = kd_results.load(chapter, profile, folder)
        except FileNotFoundError:
            records[chapter] = None
        except json.JSONDecodeError as error:
            raise ValueError(
                f"the results of chapter {chapter!r} at profile {profile!r} are not JSON: {error}"
            ) from None
    return records


def gather_claims(
    records: Mapping[str, Mapping[str, Any] | None], seed_claims: Sequence[Mapping[str, Any]] = SEED_CLAIMS
) -> list[dict[str, str]]:
    """Every claim with the paper's number, ours and the verdict, chapter by chapter (``records``' order).

    A chapter whose record holds ``results["claims"]`` (dicts made by :func:`kdlab.results.claim`)
    contributes those; a chapter whose record is missing (``None``) or holds no claims contributes
    its entries of ``seed_claims`` with ``ours = "-"`` and the verdict "not run at this profile".
    Seed claims of no chapter, or of a chapter not in ``records``, close the list with their reason.
    Each row: ``chapter``, ``claim``, ``source``, ``paper``, ``ours``, ``verdict``.
    """
    rows: list[dict[str, str]] = []
    for chapter, record in records.items():
        saved = (record or {}).get("results", {}).get("claims") or []
        if saved:
            for item in saved:
                rows.append(
                    {
                        "chapter": chapter,
                        "claim": str(item.get("claim", "-")),
                        "source": str(item.get("source", "-")),
                        "paper": str(item.get("paper", "-")),
                        "ours": str(item.get("ours", item.get("kdlab", "-"))),
                        "verdict": str(item.get("verdict", "-")),
                    }
                )
            continue
        why = "no saved results" if record is None else "its results record no claims"
        rows += [
            {
                "chapter": chapter,
                "claim": c["claim"],
                "source": c["source"],
                "paper": c["paper"],
                "ours": "-",
                "verdict": f"not run at this profile ({why})",
            }
            for c in seed_claims
            if c["chapter"] == chapter
        ]
    rows += [
        {
            "chapter": "-",
            "claim": c["claim"],
            "source": c["source"],
            "paper": c["paper"],
            "ours": "-",
            "verdict": f"not run, because {c['why'] or 'its chapter is not in this book'}",
        }
        for c in seed_claims
        if c["chapter"] not in records
    ]
    return rows


def chapter_points(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The (model, parameters, test error %) points a chapter's saved results let one plot.

    Reads, where present: ``results["points"]`` (a list of ``{"model", "parameters",
    "error_percent"}``); else ``teacher_parameters`` / ``student_parameters`` with either
    ``teacher_errors`` and ``errors`` (``{name: [count per seed]}``, of ``test_size`` images, or
    of the knob ``test_size``, default 10,000) or ``teacher_accuracy`` and ``accuracy`` (``{name:
    [accuracy per seed]}``, in percent or as fractions). Mean over seeds; anything else is skipped.
    """
    found = record.get("results", {})
    chapter = record.get("chapter", "?")
    if isinstance(found.get("points"), list):
        return [
            {"chapter": chapter, **p}
            for p in found["points"]
            if {"model", "parameters", "error_percent"} <= set(p)
        ]
    teacher_n, student_n = found.get("teacher_parameters"), found.get("student_parameters")
    points: list[dict[str, Any]] = []

    def add(model: str, parameters: Any, values: Any, to_percent: Callable[[float], float]) -> None:
        values = values if isinstance(values, list) else [values]
        if parameters is None or not values or not all(isinstance(v, (int, float)) for v in values):
            return
        points.append(
            {
                "chapter": chapter,
                "model": model,
                "parameters": int(parameters),
                "error_percent": to_percent(sum(values) / len(values)),
            }
        )

    if isinstance(found.get("errors"), dict):
        size = found.get("test_size") or record.get("knobs", {}).get("test_size") or 10000

        def from_count(count: float) -> float:
            return 100.0 * count / size

        add("teacher", teacher_n, found.get("teacher_errors"), from_count)
        for name, values in found["errors"].items():
            add(name, student_n, values, from_count)
    elif isinstance(found.get("accuracy"), dict):

        def from_accuracy(value: float) -> float:
            return 100.0 - (100.0 * value if value <= 1.0 else value)

        add("teacher", teacher_n, found.get("teacher_accuracy"), from_accuracy)
        for name, values in found["accuracy"].items():
            add(name, student_n, values, from_accuracy)
    return points
