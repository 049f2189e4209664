"""Every claim of the five source documents, and the claims each chapter checked.

:data:`SEED_CLAIMS` lists each claim with its paper's number and the chapter that checks it;
:func:`gather_claims` reads the chapters' saved ``results["claims"]`` (:func:`kdlab.book.results.claim`)
and falls back on this list where a chapter has not run; :func:`chapter_points` gathers the
(parameters, error) points a chapter saved, for the results chapter's accuracy-vs-cost plot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kdlab.book import results as kd_results

CHAPTERS = (
    "soft_targets",
    "born_again",
    "fitnets",
    "fsp",
    "tsne_regularizer",
    "mutual_learning",
    "hint_mutual",
)


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
    (
        "the t-SNE regularizer (beta = 0.1, alpha = inf) halves the student-teacher error gap",
        _S000,
        "gap 1.4 % -> 0.7 % (50 % closed)",
        "tsne_regularizer",
        "",
    ),
    (
        "beta in 0.05 .. 0.5 works; beta = 0.02 helps too little, larger beta overwhelms training",
        _S000,
        "good for 0.05 <= beta <= 0.5",
        "tsne_regularizer",
        "",
    ),
    (
        "a higher Student-t alpha is always better; alpha = inf (Gaussian Q) is best",
        _S000,
        "alpha = +inf optimal",
        "tsne_regularizer",
        "",
    ),
    (
        "with P cached, the regularizer only adds Q and a KL divergence to a step",
        _S000,
        "'minimal computational cost'",
        "tsne_regularizer",
        "",
    ),
    ("the 32-64-512 teacher reaches 99.0 % test accuracy on MNIST", _S000, "99.0 %", "tsne_regularizer", ""),
    (
        "on MNIST, accuracy falls as the weight lambda of the teacher loss rises; lambda = 0 is best",
        _S001,
        "lambda = 0 best, lambda = 1 worst",
        "soft_targets",
        "",
    ),
    (
        "the teacher-student cross-entropy barely decreases (stays near 80 % of its maximum)",
        _S001,
        "~80 % (a normal loss: ~10 %)",
        "soft_targets",
        "",
    ),
    (
        "on CIFAR-10 a small lambda (0.05, 0.1) beats normal training",
        _S001,
        "lambda 0.05 and 0.1 above lambda = 0",
        None,
        _NO_CIFAR_CAFFE,
    ),
    (
        "the CIFAR-10 'mini' student plateaus at 78 % alone and 77 % taught (lambda = 0.1)",
        _S001,
        "78 % vs 77 %; full net 80-81 %",
        None,
        _NO_CIFAR_CAFFE,
    ),
    (
        "the taught CIFAR-10 student leads early, then the one trained alone overtakes it",
        _S001,
        "ahead for 20,000 iterations, then 77 % vs 78 %",
        None,
        _NO_CIFAR_CAFFE,
    ),
    (
        "model blending: a student of another family (a CNN) can beat its LSTM teacher (Geras 2016)",
        _S001,
        "no number",
        None,
        "no chapter distils across model families on sequence data",
    ),
    (
        "a teacher can label new data: its soft labels carry more than hard labels",
        _S001,
        "no number",
        "soft_targets",
        "",
    ),
    (
        "a noisy teacher (80 % on CIFAR-10) may cause the taught student's plateau",
        _S001,
        "no number",
        "soft_targets",
        "",
    ),
    (
        "temperature changes a teacher's calibration, never its ranking of the classes",
        _S001,
        "no number",
        "soft_targets",
        "",
    ),
    (
        "dropout 0.5 and a max-norm constraint help the cumbersome model make fewer errors",
        _S002,
        "no number (experiment unfinished)",
        "soft_targets",
        "",
    ),
    (
        "distillation brings the small MNIST net close to the cumbersome one",
        _HINTON,
        "67 / 146 / 74 errors (teacher / small / small with KD)",
        "soft_targets",
        "",
    ),
    (
        "a shallow net regressing a deep net's logits (L2) beats one trained on labels",
        _BA,
        "CIFAR-10: 21.8 % -> 15.1 % error (teacher 12.0 %)",
        "soft_targets",
        "",
    ),
    (
        "mimicking an ensemble beats mimicking a single teacher",
        _BA,
        "CIFAR-10: 15.1 % -> 14.2 % error",
        "soft_targets",
        "",
    ),
    (
        "a born-again tree (CART on smeared data labelled by an ensemble) beats CART",
        _BREIMAN,
        "breast cancer: 3.9 % vs 5.9 % error",
        "born_again",
        "",
    ),
    (
        "born-again trees on ionosphere, glass, soybean and sonar",
        _BREIMAN,
        "6.1 vs 11.2, 28.2 vs 30.4, 8.4 vs 8.6, 25.1 vs 32.1 % error",
        None,
        "only the breast-cancer table ships with scikit-learn, and nothing may be downloaded",
    ),
    (
        "a born-again network (BAN-1) beats its identical teacher",
        _BAN,
        "CIFAR-100, DenseNet-112-33: 18.25 -> 17.61 % error",
        "born_again",
        "",
    ),
    (
        "ensembles of born-again generations (Ens*k) beat every single generation",
        _BAN,
        "CIFAR-100: Ens*2 15.77 %, Ens*3 15.68 %",
        "born_again",
        "",
    ),
    (
        "a small net trained on MUNGE data labelled by an ensemble keeps its accuracy",
        _BUCILA,
        "no table number (mean over eight problems)",
        "born_again",
        "",
    ),
    (
        "a thin deep FitNet beats its wider teacher with fewer parameters",
        _ROMERO,
        "CIFAR-10: 91.61 % (2.5 M) vs 90.18 % (9 M); CIFAR-100: 64.96 vs 63.54 %",
        "fitnets",
        "",
    ),
    (
        "a convolutional regressor needs fewer parameters than a fully connected one",
        _ROMERO,
        "no number",
        "fitnets",
        "",
    ),
    (
        "the deeper the guided layer, the more a FitNet is over-regularised",
        _ROMERO,
        "no number",
        "fitnets",
        "",
    ),
    (
        "FSP pre-training beats the student alone and FitNets (CIFAR-10, ResNet-8 from ResNet-26)",
        _YIM,
        "88.70 vs 87.91 (alone), 88.57 (FitNet) % accuracy",
        "fsp",
        "",
    ),
    (
        "FSP pre-training beats the student alone and FitNets (CIFAR-100, ResNet-14 from ResNet-32)",
        _YIM,
        "63.33 vs 58.65 (alone), 61.28 (FitNet) % accuracy",
        "fsp",
        "",
    ),
    ("FSP optimises fast: a third of the teacher's training steps", _YIM, "1/3 of the steps", "fsp", ""),
    (
        "the bulkier VGG-style teacher generalises better than the thin-deep student alone",
        _S004,
        "CIFAR-10: 74 % vs 67 % accuracy",
        "mutual_learning",
        "",
    ),
    (
        "a cohort of two students trained by mutual learning beats each student alone",
        _S004,
        "CIFAR-10: 67 % alone -> 74.17 % and 73 %",
        "mutual_learning",
        "",
    ),
    (
        "hint pre-training (10 epochs) then mutual learning beats plain mutual learning",
        _S004,
        "CIFAR-10: 76.7 % and 77.03 % vs 74.17 % and 73 %",
        "hint_mutual",
        "",
    ),
    (
        "hint pre-training gives a faster rise of accuracy at the start",
        _S004,
        "no number (curves)",
        "hint_mutual",
        "",
    ),
    (
        "the VGG-style teacher and the thin-deep student have 2,440,394 and 1,497,434 parameters",
        _S004,
        "2,440,394 / 1,497,434 ('a reduction 63 %'; the counts give 38.6 %)",
        "hint_mutual",
        "",
    ),
]
SEED_CLAIMS: tuple[dict[str, Any], ...] = tuple(
    {"claim": c, "source": s, "paper": p, "chapter": ch, "why": w} for c, s, p, ch, w in _SEED_CLAIMS
)


def load_records(
    chapters: Sequence[str], profile: str, folder: str | Path | None = None
) -> dict[str, dict[str, Any] | None]:
    """Each chapter's saved results at ``profile`` (:func:`kdlab.book.results.load`), ``None`` where the
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

    A chapter whose record holds ``results["claims"]`` (dicts made by :func:`kdlab.book.results.claim`)
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
