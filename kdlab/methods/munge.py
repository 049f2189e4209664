"""MUNGE (Bucila, Caruana & Niculescu-Mizil 2006, *Model Compression*): an ensemble compressed
into a small net through synthetic points.

Algorithm MUNGE makes synthetic points by swapping attributes between an example and its nearest
neighbour, with Gaussian smearing of continuous values: :func:`munge`, :func:`munge_transfer_set`
(the ensemble labels them) and :func:`munge_student` (the paper's one-hidden-layer net of 128
units, trained on them through :func:`kdlab.methods.common.train_model`). On a table, as the
paper ran it: :func:`table_split` (train / validation / test, standardised with training
statistics, :func:`standardise`), a teacher of mixed model kinds (:func:`mixed_ensemble`,
optionally weighted by Caruana et al.'s :func:`ensemble_selection`) and the whole comparison over
splits and transfer-set sizes, :func:`compare_munge`. Error rates are fractions of examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from torch import Tensor

from kdlab import _checks, dry_run, metrics, models
from kdlab.data import Tensors
from kdlab.methods.common import Result, train_model
from kdlab.methods.compression import RNG, _matrix


def munge(
    x: np.ndarray | Tensor,
    *,
    size_multiplier: int,
    p: float,
    s: float,
    nominal: Sequence[int] = (),
    rng: RNG = None,
) -> np.ndarray:
    """Bucila, Caruana & Niculescu-Mizil (2006), Algorithm MUNGE: synthetic data for compression.

    For each example e, its nearest neighbour e' (Euclidean) is found; each attribute a is,
    with probability ``p``, taken from e': a nominal attribute is copied, a continuous one is
    drawn from Normal(e'_a, sd = |e_a - e'_a| / s), so the local variance parameter ``s``
    shrinks the smear toward the neighbour. ``size_multiplier`` (k) passes give k * n points.

    Distances use continuous columns scaled to [0, 1] (so one attribute in large units does not
    pick the neighbour alone) and count 1 per differing ``nominal`` column; values come back in
    the original units. The paper walks the examples in turn over a copy of the data and
    smears e' in the same swap; here every pass starts from the original data and changes only
    e (e' has its own turn as an example), which makes passes independent and vectorised.

    Shapes: x (examples, features) -> (size_multiplier * examples, features), float32, pass by
    pass, examples in input order within a pass.
    """
    x = _matrix("x", x, 2)
    _checks.at_least("size_multiplier", size_multiplier, 1)
    _checks.in_range("p", p, 0.0, 1.0)
    _checks.positive("s", s)
    rows, features = x.shape
    is_nominal = np.zeros(features, dtype=bool)
    for column in nominal:
        if not (isinstance(column, (int, np.integer)) and 0 <= column < features):
            raise ValueError(f"nominal must hold column indices in [0, {features - 1}], got {column!r}")
        is_nominal[column] = True
    rng = np.random.default_rng(rng)

    continuous = x[:, ~is_nominal]
    span = np.ptp(continuous, axis=0)
    parts = [(continuous - continuous.min(axis=0)) / np.where(span > 0, span, 1.0)]
    for column in np.flatnonzero(is_nominal):
        # One-hot codes scaled by 1/sqrt(2) put two differing values at distance exactly 1.
        codes = np.unique(x[:, column], return_inverse=True)[1]
        parts.append(np.eye(codes.max() + 1)[codes] / math.sqrt(2))
    # Querying the fitted points themselves leaves each point out of its own neighbours.
    neighbours = NearestNeighbors(n_neighbors=1).fit(np.hstack(parts)).kneighbors(return_distance=False)
    partner = x[neighbours[:, 0]]

    swap = rng.random((size_multiplier, rows, features)) < p
    spread = np.abs(x - partner) / s
    drawn = np.where(is_nominal, partner, rng.normal(partner, spread, size=swap.shape))
    return np.where(swap, drawn, x).reshape(-1, features).astype(np.float32)


def _probabilities(ensemble: Callable[[Tensor], Tensor] | ClassifierMixin, inputs: Tensor) -> Tensor:
    """The ensemble's class probabilities on ``inputs`` (m, ...): (m, classes) float32 on their device.

    A scikit-learn classifier gives its ``predict_proba`` (columns placed at its integer
    ``classes_``); a callable gives scores (logits), turned into probabilities by the softmax.
    """
    if hasattr(ensemble, "predict_proba"):
        if not hasattr(ensemble, "classes_"):
            raise ValueError(
                f"ensemble must be a fitted classifier, got an unfitted {type(ensemble).__name__}"
            )
        classes = np.asarray(ensemble.classes_)
        if classes.dtype.kind not in "iu" or classes.min() < 0:
            raise ValueError(f"ensemble.classes_ must be class indices >= 0, got {classes.tolist()}")
        found = ensemble.predict_proba(inputs.flatten(1).cpu().numpy())
        probabilities = np.zeros((inputs.shape[0], int(classes.max()) + 1), dtype=np.float32)
        probabilities[:, classes] = found
        return torch.from_numpy(probabilities).to(inputs.device)
    scores = ensemble(inputs)
    _checks.logits("ensemble(x)", scores)
    if scores.shape[0] != inputs.shape[0]:
        raise ValueError(f"ensemble must return one row per input ({inputs.shape[0]}), got {scores.shape[0]}")
    return scores.float().softmax(dim=1).to(inputs.device)


TARGETS = ("votes", "probabilities")


def munge_transfer_set(
    ensemble: Callable[[Tensor], Tensor] | ClassifierMixin,
    x: Tensor | np.ndarray,
    *,
    size_multiplier: int,
    p: float,
    s: float,
    nominal: Sequence[int] = (),
    targets: str = "votes",
    rng: RNG = None,
) -> Tensors:
    """Bucila et al. (2006): the training inputs and their MUNGE copies, labelled by ``ensemble``.

    ``ensemble`` is a fitted scikit-learn classifier (its ``predict_proba``, e.g. a
    :func:`mixed_ensemble`) or a callable mapping inputs (m, ...) to scores (m, classes), e.g.
    the logits of an averaged ensemble of nets (:func:`kdlab.losses.ensemble_logits`).
    ``targets="votes"``: each point's label is the ensemble's arg-max class (int64, (m,)), the
    source's "Label them by ensemble"; ``targets="probabilities"``: its class probabilities
    (float32, (m, classes)), which the same plain cross-entropy takes as soft targets
    (:func:`munge_student`). Inputs of any shape are flattened for :func:`munge` (``nominal``
    and ``rng`` go to it) and reshaped back. The original inputs come first, relabelled too,
    as the training set of :func:`born_again_tree` is, then the ``size_multiplier`` synthetic
    passes, each an independent draw: the first ``n * (1 + k)`` rows are a transfer set of
    multiplier k, so one large draw serves every smaller size.
    Shapes: x (n, ...) -> x (m, ...) float32 and targets (m,) or (m, classes), m = n * (1 +
    size_multiplier), on ``x``'s device (a numpy ``x`` gives CPU tensors).
    """
    _checks.choice("targets", targets, TARGETS)
    if not isinstance(x, Tensor):
        x = torch.from_numpy(_matrix("x", x, 2).astype(np.float32))
    synthetic = munge(x.flatten(1), size_multiplier=size_multiplier, p=p, s=s, nominal=nominal, rng=rng)
    inputs = torch.cat([x.float(), torch.from_numpy(synthetic).to(x.device).view(-1, *x.shape[1:])])
    probabilities = _probabilities(ensemble, inputs)
    if targets == "probabilities":
        return Tensors(inputs, probabilities)
    return Tensors(inputs, probabilities.argmax(dim=1).to(x.device))


def munge_student(
    transfer: Tensors,
    *,
    classes: int,
    hidden: int = 128,
    test: Tensors | None = None,
    cache: bool = False,
    **fit_knobs: Any,
) -> Result:
    """Bucila et al. (2006): the compressed model, a net of one hidden layer of ``hidden`` units.

    The student, ``mlp((features, hidden, classes))``, minimises the plain cross-entropy (batch
    mean) with the targets of ``transfer``: for compression, the ensemble's votes or its class
    probabilities on a :func:`munge_transfer_set` (source: "Training with no special loss
    function"; with probabilities q the loss is -sum_c q_c log p_c, the same cross-entropy with
    a soft target); given the original labelled set instead, the same call trains the small-data
    baseline. ``fit_knobs`` as in :func:`kdlab.methods.common.train_model` (``val=`` keeps the
    epoch with the fewest errors on a held-out split); with ``cache`` the trained net is stored,
    keyed by the content of ``transfer``. Shapes: ``transfer.x`` (m, ...), ``transfer.y`` (m,)
    int64 labels or (m, classes) probabilities.
    """
    _checks.at_least("hidden", hidden, 1)
    _checks.at_least("classes", classes, 2)
    _checks.finite("transfer.x", transfer.x)
    if transfer.y.is_floating_point() and transfer.y.dim() == 2:
        _check_probabilities("transfer.y", transfer.y, len(transfer), classes)
    else:
        _checks.labels("transfer.y", transfer.y, len(transfer), classes)
    features = int(math.prod(transfer.x.shape[1:]))
    return train_model(
        lambda: models.mlp((features, hidden, classes)), transfer, test=test, cache=cache, **fit_knobs
    )


def _check_probabilities(name: str, y: Tensor, rows: int, classes: int) -> None:
    if y.shape != (rows, classes):
        raise ValueError(f"{name} must have shape ({rows}, {classes}), got shape {tuple(y.shape)}")
    _checks.finite(name, y)
    if bool((y < 0).any()) or not torch.allclose(y.sum(dim=1), torch.ones(rows, device=y.device), atol=1e-4):
        raise ValueError(f"{name} must hold probabilities (>= 0, rows summing to 1)")


# ----------------------------------------------------------------- MUNGE on a table, as the paper ran it

# The source's list of the ensemble's model types (Bucila et al. 2006, after Caruana et al. 2004):
# "SVMs, bagged trees, boosted trees, boosted stumps, simple decision trees, random forests, neural
# nets, logistic regression, k-nearest neighbor, and naive Bayes". kdlab's mixed ensemble draws one
# model of each kind that scikit-learn has; the neural nets are left out, as the net trained on
# the original data is the baseline the compressed net is compared with.
MIXED_MEMBERS = (
    "svm",
    "bagged_trees",
    "boosted_trees",
    "boosted_stumps",
    "decision_tree",
    "random_forest",
    "extra_trees",
    "logistic_regression",
    "knn",
    "naive_bayes",
)
# The teacher of the chapter, chosen on validation rows of small slices of breast cancer and digits
# (splits 100-107; the test parts were not looked at): boosted trees, bagged trees, boosted stumps,
# a single tree and naive Bayes were each well behind the others there (digits, 200 rows: 17 to
# 38 % errors against 8 to 10 %) and made the equal-weight average worse. The RBF SVM was among
# the best single models, but its probabilities (Platt scaling of one class against the rest, as
# scikit-learn computes them without libsvm's pairwise coupling) taught the MUNGE net worse on
# digits (8.2 % validation errors against 6.7 % without it), so it is left out.
TEACHER_MEMBERS = ("random_forest", "extra_trees", "logistic_regression", "knn")


def _member(name: str, random_state: int) -> ClassifierMixin:
    """One model of the mixed ensemble, with scikit-learn's usual settings (none tuned here)."""
    if name == "svm":  # RBF kernel; probabilities by Platt scaling fitted on 5-fold held-out scores
        return CalibratedClassifierCV(SVC(), method="sigmoid", ensemble=False)
    if name == "bagged_trees":
        return BaggingClassifier(DecisionTreeClassifier(), n_estimators=25, random_state=random_state)
    if name == "boosted_trees":
        return GradientBoostingClassifier(n_estimators=50, random_state=random_state)
    if name == "boosted_stumps":
        stump = DecisionTreeClassifier(max_depth=1)
        return AdaBoostClassifier(stump, n_estimators=50, random_state=random_state)
    if name == "decision_tree":
        return DecisionTreeClassifier(min_samples_leaf=2, random_state=random_state)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=100, random_state=random_state)
    if name == "extra_trees":
        return ExtraTreesClassifier(n_estimators=100, random_state=random_state)
    if name == "logistic_regression":
        return LogisticRegression(max_iter=2000)
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=5)
    return GaussianNB()


def mixed_ensemble(members: Sequence[str] = TEACHER_MEMBERS, *, random_state: int = 0) -> VotingClassifier:
    """Bucila et al. (2006): a teacher ensemble of mixed model types, probabilities averaged.

    The paper's ensemble came from ensemble selection (Caruana et al. 2004) over about 2,000
    models of ten kinds; kdlab takes one unfitted model of each kind in ``members`` (a subset of
    :data:`MIXED_MEMBERS`, each with scikit-learn's usual settings; by default
    :data:`TEACHER_MEMBERS`) and averages their class probabilities with equal weights
    (``VotingClassifier(voting="soft")``); :func:`ensemble_selection` weights a fitted one on
    held-out data instead. ``random_state`` seeds every member that draws random numbers.
    """
    members = list(members)
    if not members:
        raise ValueError("members must name at least one model, got none")
    for name in members:
        _checks.choice("members", name, MIXED_MEMBERS)
    if len(set(members)) != len(members):
        raise ValueError(f"members must not repeat a model, got {members}")
    return VotingClassifier([(name, _member(name, random_state)) for name in members], voting="soft")


@dataclass
class SelectedEnsemble:
    """An ensemble found by ensemble selection (:func:`ensemble_selection`).

    ``members`` are the fitted models of the library by name, ``counts`` how many times the
    selection picked each (the weights are counts over their sum; models never picked are
    dropped), ``classes_`` the class labels in the members' column order, ``val_rmse`` the
    selection's score on the held-out part after each round (``rounds`` picks), and
    ``size`` how many of those picks were kept. Duck-types the part of a scikit-learn classifier
    that :func:`munge_transfer_set` uses: ``predict_proba`` and ``predict`` on (rows, features).
    """

    members: dict[str, ClassifierMixin]
    counts: dict[str, int]
    classes_: np.ndarray
    val_rmse: list[float]
    size: int

    @property
    def weights(self) -> dict[str, float]:
        return {name: count / self.size for name, count in self.counts.items()}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The members' class probabilities averaged with the selection's weights: (rows, classes)."""
        return sum(w * self.members[name].predict_proba(x) for name, w in self.weights.items())

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def _rmse(probabilities: np.ndarray, onehot: np.ndarray) -> float:
    return float(np.sqrt(np.mean((probabilities - onehot) ** 2)))


def ensemble_selection(
    library: VotingClassifier | Mapping[str, ClassifierMixin],
    x_val: np.ndarray | Tensor,
    y_val: np.ndarray | Tensor,
    *,
    rounds: int = 25,
) -> SelectedEnsemble:
    """Caruana et al. (2004), ensemble selection, the teacher of Bucila et al. (2006).

    Forward stepwise selection with replacement from a library of fitted models: starting from
    the empty ensemble, each round adds the model (possibly again) whose addition gives the
    averaged probabilities the least root-mean-squared error against the one-hot labels of the
    held-out ``(x_val, y_val)`` (the first in library order on ties); after ``rounds`` rounds
    the prefix of picks with the least error is kept, so a model's weight is the number of times
    it was picked. RMSE, Caruana et al.'s "RMS" metric, is smooth where accuracy on a small
    held-out part moves in steps, and bounded where log-loss punishes a single zero
    probability without limit. ``library`` is a fitted :func:`mixed_ensemble` (its members) or
    a mapping name -> fitted classifier, all with the same ``classes_``.
    Shapes: x_val (rows, features), y_val (rows,).
    """
    members = dict(library.named_estimators_) if isinstance(library, VotingClassifier) else dict(library)
    if not members:
        raise ValueError("library must hold at least one fitted model, got none")
    _checks.at_least("rounds", rounds, 1)
    x_val = _matrix("x_val", x_val, 1)
    y_val = np.asarray(y_val.cpu() if isinstance(y_val, Tensor) else y_val)
    if y_val.shape != (x_val.shape[0],):
        raise ValueError(f"y_val must have shape ({x_val.shape[0]},), got shape {y_val.shape}")
    classes = np.asarray(library.classes_ if isinstance(library, VotingClassifier)
                         else next(iter(members.values())).classes_)
    for name, model in members.items():
        if not np.array_equal(getattr(model, "classes_", None), classes):
            raise ValueError(f"library member {name!r} must be fitted, with classes {classes.tolist()}")
    onehot = (y_val[:, None] == classes[None, :]).astype(np.float64)
    found = {name: model.predict_proba(x_val) for name, model in members.items()}
    total = np.zeros_like(onehot)
    picks: list[str] = []
    scores: list[float] = []
    for round_ in range(1, rounds + 1):
        trial = {name: _rmse((total + found[name]) / round_, onehot) for name in found}
        best = min(trial, key=trial.__getitem__)  # min keeps the first of equal scores
        total += found[best]
        picks.append(best)
        scores.append(trial[best])
    size = int(np.argmin(scores)) + 1
    counts: dict[str, int] = {}
    for name in picks[:size]:
        counts[name] = counts.get(name, 0) + 1
    return SelectedEnsemble(members, counts, classes, scores, size)


def standardise(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each column minus the training part's mean, over the training part's standard deviation.

    Only ``x_train`` gives the statistics, so nothing of the held-out parts leaks into the
    model; a column constant on the training part (sd 0) is only centred. Returns float32
    arrays: ``x_train`` and then each of ``others``, standardised alike. Shapes: (rows, features).
    """
    x_train = _matrix("x_train", x_train, 1)
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    parts = [x_train] + [_matrix(f"others[{k}]", x, 1) for k, x in enumerate(others)]
    for k, x in enumerate(parts[1:]):
        if x.shape[1] != x_train.shape[1]:
            raise ValueError(f"others[{k}] must have {x_train.shape[1]} columns, got {x.shape[1]}")
    return tuple(((x - mean) / sd).astype(np.float32) for x in parts)


def table_split(
    x: np.ndarray, y: np.ndarray, *, train_size: int, val_size: int, seed: int = 0
) -> tuple[Tensors, Tensors, Tensors]:
    """A table split three ways, stratified by class: ``train_size`` training rows, ``val_size``
    validation rows (for choices: a net's epoch), the rest for the test; drawn by ``seed``.

    Every part is standardised with the training part's statistics (:func:`standardise`).
    Returns ``(train, val, test)`` as :class:`~kdlab.data.Tensors`, inputs float32 (rows,
    features), labels int64 in [0, classes). Shapes: x (rows, features), y (rows,).
    """
    x = _matrix("x", x, 3)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got shape {y.shape}")
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise ValueError("y must hold class indices >= 0")
    _checks.at_least("train_size", train_size, 2)
    _checks.at_least("val_size", val_size, 1)
    if train_size + val_size >= len(y):
        raise ValueError(
            f"train_size + val_size must leave rows for the test, got {train_size} + {val_size} "
            f"of {len(y)} rows"
        )
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=train_size, stratify=y, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, train_size=val_size, stratify=y_rest, random_state=seed
    )
    parts = zip(standardise(x_train, x_val, x_test), (y_train, y_val, y_test), strict=True)
    return tuple(Tensors(torch.from_numpy(a), torch.from_numpy(b.astype(np.int64))) for a, b in parts)


def _epochs_for(rows: int, steps: int, batch_size: int) -> int:
    """Epochs that give at least ``steps`` optimiser steps over ``rows`` examples."""
    return max(1, math.ceil(steps / math.ceil(rows / batch_size)))


def _net_scores(
    data: Tensors, test: Tensors, ensemble_pred: Tensor, *, steps: int, batch_size: int, **knobs: Any
) -> tuple[float, float]:
    """Train a :func:`munge_student` on ``data`` for ``steps`` steps; its test error rate and the
    fraction of test rows on which it agrees with ``ensemble_pred``."""
    net, _ = munge_student(data, epochs=_epochs_for(len(data), steps, batch_size), batch_size=batch_size,
                           schedule="cosine", progress=False, **knobs)
    predicted = metrics.predict(net, test.x.to(next(net.parameters()).device)).argmax(dim=1).cpu()
    return float((predicted != test.y).float().mean()), float((predicted == ensemble_pred).float().mean())


def compare_munge(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    train_size: int,
    val_size: int,
    multipliers: Sequence[int] = (1, 4, 16),
    p: float = 0.5,
    s: float = 1.0,
    nominal: Sequence[int] = (),
    members: Sequence[str] = TEACHER_MEMBERS,
    selection_rounds: int = 0,
    targets: str = "probabilities",
    hidden: int = 128,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 3e-3,
    device: str | torch.device | None = None,
    cache: bool = False,
) -> list[dict]:
    """Bucila et al. (2006), Figure 2 on one table: the compressed net against its ensemble and
    against the same net trained on the original data, as the MUNGE set grows.

    For each seed: :func:`table_split` (``train_size`` / ``val_size`` / the rest for the test,
    standardised with training statistics); the teacher: a library of ``members``
    (:func:`mixed_ensemble`) fitted on the training part, weighted by :func:`ensemble_selection`
    on the validation part in ``selection_rounds`` rounds (0: every member with equal weight);
    the :func:`munge_student` net (one hidden layer of ``hidden`` units)
    trained (a) on the training part and its labels, (b) for each k in ``multipliers``, on the
    :func:`munge_transfer_set` of multiplier k (the training inputs and k * train_size MUNGE
    points with ``p``, ``s``, ``nominal``, drawn once per seed for the largest k, labelled by the
    ensemble: ``targets`` ``"probabilities"`` or ``"votes"``). Every net runs at least ``steps``
    Adam steps of ``batch_size`` (rate ``lr``, cosine annealing), so a larger set is not also a
    longer training, and keeps the epoch with the fewest errors on the validation part.

    Each row: ``seed``; test error rates (fractions) ``ensemble_error``, ``original_error`` and
    ``munge_error`` (``{k: error}``); ``member_errors`` (``{name: error}``); ``ensemble_weights``
    (``{name: weight}`` of the selected members; empty without selection); the fraction of test
    rows on which each net agrees with the ensemble (``original_fidelity``,
    ``munge_fidelity``); ``train_size``, ``val_size``, ``test_size``.
    Shapes: x (rows, features), y (rows,) class indices.
    """
    multipliers = sorted(int(k) for k in multipliers)
    if not multipliers or multipliers[0] < 1:
        raise ValueError(f"multipliers must be integers >= 1, got {multipliers}")
    _checks.at_least("steps", steps, 1)
    _checks.at_least("selection_rounds", selection_rounds, 0)
    _checks.at_least("batch_size", batch_size, 1)
    if dry_run.active():  # a dry run checks the path, not the statistics: two splits suffice
        seeds = list(seeds)[:2]
    rows = []
    for seed in seeds:
        train, val, test = table_split(x, y, train_size=train_size, val_size=val_size, seed=seed)
        classes = int(max(train.y.max(), val.y.max(), test.y.max())) + 1
        library = mixed_ensemble(members, random_state=seed).fit(train.x.numpy(), train.y.numpy())
        ensemble = library
        if selection_rounds:
            ensemble = ensemble_selection(library, val.x, val.y, rounds=selection_rounds)
        ensemble_pred = torch.from_numpy(ensemble.predict(test.x.numpy()).astype(np.int64))
        member_errors = {
            name: float(np.mean(model.predict(test.x.numpy()) != test.y.numpy()))
            for name, model in library.named_estimators_.items()
        }
        transfer = munge_transfer_set(
            ensemble, train.x, size_multiplier=multipliers[-1], p=p, s=s, nominal=nominal, targets=targets,
            rng=seed,
        )
        knobs = dict(classes=classes, hidden=hidden, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                     device=device, val=val, cache=cache)
        original_error, original_fidelity = _net_scores(train, test, ensemble_pred, **knobs)
        munge_error, munge_fidelity = {}, {}
        for k in multipliers:
            size = len(train) * (1 + k)
            munge_error[k], munge_fidelity[k] = _net_scores(
                Tensors(transfer.x[:size], transfer.y[:size]), test, ensemble_pred, **knobs
            )
        rows.append({
            "seed": int(seed),
            "ensemble_error": float((ensemble_pred != test.y).float().mean()),
            "original_error": original_error,
            "munge_error": munge_error,
            "member_errors": member_errors,
            "ensemble_weights": ensemble.weights if selection_rounds else {},
            "original_fidelity": original_fidelity,
            "munge_fidelity": munge_fidelity,
            "train_size": len(train),
            "val_size": len(val),
            "test_size": len(test),
        })
    return rows
