"""One call for the common case: distil a user's own teacher into a user's own student.

:func:`distill` and :func:`mutual` are thin: they check the arguments, bring the data into
kdlab's form (:mod:`kdlab.adapters`) and call the same :mod:`kdlab.methods` recipes the book's
chapters use. Any ``nn.Module`` classifier works: intermediate features (FitNets' hint, FSP's
sections) are read by module name through :func:`kdlab.features.capture`, never by editing the
model; the names a model has are listed by :func:`kdlab.features.layer_names`.

Data: ``Tensors`` (a :class:`~kdlab.data.Split` part) or an ``(x, y)`` pair of tensors keep
everything in memory, and the teacher's outputs are computed once (and cached when the teacher
came from :mod:`kdlab.cache`). A ``Dataset`` or ``DataLoader`` (e.g. with augmentation) is read
batch by batch and the teacher runs on each batch in eval mode under ``torch.inference_mode()``
(:func:`kdlab.adapters.with_teacher`): slower, but right for inputs that change every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from kdlab import _checks, adapters, cache, features, models, runtime
from kdlab import train as training
from kdlab.data import Tensors
from kdlab.methods import common, fitnets, fsp, hinton, tsne
from kdlab.methods import mutual as dml
from kdlab.train import History

METHODS = ("hinton", "logits", "fitnets", "fsp", "tsne", "born_again")

# Training knobs every method takes (those of kdlab.methods.common.train_model), with defaults.
FIT_KNOBS: dict[str, Any] = {
    "epochs": 10, "lr": 1e-3, "batch_size": 128, "seed": 0, "optimizer": "adam", "weight_decay": 0.0,
    "schedule": None, "device": None, "progress": None, "cache": False,
}

# Each method's own knobs and defaults. Hinton's T = 20 and alpha = 0.9 are the book's soft-targets
# chapter's (Hinton et al. 2015 used T = 20 on MNIST); born-again's T = 1, alpha = 0.5 is
# Furlanello et al.'s loss; None means "see the docstring of distill".
METHOD_KNOBS: dict[str, dict[str, Any]] = {
    "hinton": {"temperature": 20.0, "alpha": 0.9},
    "logits": {},
    "fitnets": {"hint": None, "guided": None, "hint_epochs": None, "temperature": 20.0, "alpha": 0.9,
                "anneal": True, "regressor": "conv"},
    "fsp": {"pairs": None, "teacher_pairs": None, "weights": None, "fsp_epochs": None},
    "tsne": {"beta": 0.1, "tsne_alpha": math.inf, "perplexity": 20.0, "pca_dim": 50, "layer": None,
             "teacher_layer": None, "temperature": None, "alpha": None},
    "born_again": {"generations": 1, "temperature": 1.0, "alpha": 0.5},
}

MUTUAL_KNOBS: dict[str, Any] = {"update": "in_turn", "temperature": 1.0, "ensemble": False, "betas": None,
                                "eval_every": 1}

# Methods whose first stage needs every training example in memory (the recipes cache the
# teacher's features over the whole set): a Dataset or DataLoader is refused for them.
TENSORS_ONLY = ("fitnets", "fsp", "tsne")


def _knobs(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    defaults = {**FIT_KNOBS, **METHOD_KNOBS[method]}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown knob(s) {unknown} for method {method!r}; its knobs are {sorted(METHOD_KNOBS[method])} "
            f"and the training knobs {sorted(FIT_KNOBS)}"
        )
    knobs = {**defaults, **given}
    _checks.at_least("epochs", knobs["epochs"], 1)
    _checks.at_least("batch_size", knobs["batch_size"], 1)
    return knobs


def _fit_knobs(knobs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: knobs[name] for name in FIT_KNOBS if name != "cache"}


def distill(
    teacher: nn.Module,
    student: nn.Module | Callable[[], nn.Module],
    train: adapters.Data,
    test: adapters.Data | None = None,
    method: str = "hinton",
    **knobs: Any,
) -> tuple[nn.Module, History]:
    """Train ``student`` from ``teacher`` on ``train`` with ``method``; returns the trained student and
    its :class:`~kdlab.train.History` (last-epoch test metrics when ``test`` is given).

    ``student`` is a module (a trained copy is returned; the module passed is left as it is, and
    its weights are the starting point) or a function building one (built after seeding with
    ``seed``). ``teacher`` is a trained classifier; both return logits (batch, classes) for the
    same number of classes. ``train``/``test``: ``Tensors``, ``(x, y)``, a ``Dataset`` or a
    ``DataLoader`` (see the module; a test loader is read once into memory). Losses are batch
    means, as in each recipe.

    Methods and their knobs (each method's knobs with the training knobs ``epochs``, ``lr``,
    ``batch_size``, ``seed``, ``optimizer``, ``weight_decay``, ``schedule``, ``device``,
    ``progress``, ``cache``):

    - ``"hinton"``: Hinton, Vinyals & Dean (2015), eq. 2's soft targets,
      ``alpha * T^2 KL(p_t^T || p_s^T) + (1 - alpha) CE(y, p_s)``
      (:func:`kdlab.methods.hinton.distill`); ``temperature``, ``alpha``.
    - ``"logits"``: Ba & Caruana (2014), regression of the teacher's logits, no labels
      (:func:`kdlab.methods.hinton.mimic` with ``loss="mse"``).
    - ``"fitnets"``: Romero et al. (2015): the student up to layer ``guided`` learns the teacher's
      layer ``hint`` for ``hint_epochs`` (default ``epochs``) through a ``regressor`` (``"conv"``
      or ``"fc"``), then KD with ``alpha`` decayed to 0 when ``anneal``
      (:func:`kdlab.methods.fitnets.hint_stage`, :func:`kdlab.methods.fitnets.distill`).
    - ``"fsp"``: Yim et al. (2017): the student's FSP matrices between the layer ``pairs`` learn
      the teacher's (``teacher_pairs``, default the same names; ``weights`` the lambda_i) for
      ``fsp_epochs`` (default ``epochs``), then normal training
      (:func:`kdlab.methods.fsp.fsp_stage`, :func:`kdlab.methods.fsp.train_from`).
    - ``"born_again"``: Furlanello et al. (2018): ``generations`` students of ``student``'s
      architecture, the first distilled from ``teacher``, each next one from the previous one,
      with Hinton's loss at ``temperature`` and ``alpha`` (the paper's T = 1, alpha = 0.5);
      returns the last generation.
    - ``"tsne"``: Qiao's tsneNet: CE + ``beta`` * KL(P || Q) between the t-SNE similarities of the
      teacher's ``teacher_layer`` features (P: ``perplexity``, PCA to ``pca_dim``) and the student's
      ``layer`` features (Q: Student-t with ``tsne_alpha`` degrees of freedom, ``math.inf`` the
      Gaussian) on fixed batches; with ``temperature`` and ``alpha`` Hinton's soft targets join
      in (:func:`kdlab.methods.tsne.distill`, whose ``alpha`` is ``tsne_alpha`` here and whose
      ``soft_alpha`` is ``alpha``; layers default to its ``"fc"``; no ``weight_decay``).

    ``fitnets``, ``fsp`` and ``tsne`` need tensors in memory. Errors: an unknown method or knob (listing
    the valid ones), teacher and student with different class counts, a layer name the model
    lacks (listing close matches), labels outside ``[0, classes)``.
    """
    _checks.choice("method", method, METHODS)
    knobs = _knobs(method, knobs)
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
    make_student = adapters.model_factory(student, "student")
    where = runtime.device(knobs["device"])
    knobs["device"] = where
    tensors = adapters.as_tensors(train, "train")
    test_set = adapters.materialize(test, "test") if test is not None else None
    if tensors is None and method in TENSORS_ONLY:
        raise ValueError(
            f"method {method!r} needs the training set as tensors in memory (Tensors or (x, y)), got a "
            f"{type(train).__name__}; read it once with kdlab.adapters.materialize(train)"
        )
    teacher.to(where)
    probe = adapters.first_batch(tensors if tensors is not None else train)[0].to(where)
    student_probe = student if isinstance(student, nn.Module) else make_student()
    student_probe.to(where)
    classes = adapters.check_classes(teacher, student_probe, probe)
    if tensors is not None:
        tensors = tensors.to(where)
        _checks.labels("train labels", tensors.y, len(tensors), classes)
    if test_set is not None:
        _checks.labels("test labels", test_set.y, len(test_set), classes)
    run = {"hinton": _hinton, "logits": _logits, "fitnets": _fitnets, "fsp": _fsp, "tsne": _tsne,
           "born_again": _born_again}
    data = tensors if tensors is not None else adapters.as_loader(train, knobs["batch_size"], knobs["seed"])
    return run[method](teacher, make_student, student_probe, data, test_set, classes, knobs)


def _hinton(teacher, make_student, _probe, data, test, classes, knobs) -> tuple[nn.Module, History]:
    if isinstance(data, Tensors):
        return hinton.distill(
            make_student, data, cache.logits(teacher, data.x), temperature=knobs["temperature"],
            alpha=knobs["alpha"], test=test, cache=knobs["cache"], desc="hinton", **_fit_knobs(knobs),
        )
    objective = hinton.objective(knobs["temperature"], knobs["alpha"])
    objective = adapters.with_teacher(teacher, objective, classes)
    return common.train_model(make_student, data, objective, test=test, desc="hinton", **_fit_knobs(knobs))


def _logits(teacher, make_student, _probe, data, test, classes, knobs) -> tuple[nn.Module, History]:
    if isinstance(data, Tensors):
        return hinton.mimic(
            make_student, data.x, cache.logits(teacher, data.x), loss="mse", test=test, cache=knobs["cache"],
            desc="logits", **_fit_knobs(knobs),
        )
    objective = adapters.with_teacher(teacher, hinton.mimic_objective("mse"), classes, labels=False)
    return common.train_model(make_student, data, objective, test=test, desc="logits", **_fit_knobs(knobs))


def _fitnets(teacher, make_student, probe, data, test, _classes, knobs) -> tuple[nn.Module, History]:
    for name, role in (("hint", "teacher"), ("guided", "student")):
        if knobs[name] is None:
            raise ValueError(f"method 'fitnets' needs {name}=<a layer name of the {role}>")
    features.check_layers(teacher, knobs["hint"], "hint (a teacher layer)")
    features.check_layers(probe, knobs["guided"], "guided (a student layer)")
    fit = _fit_knobs(knobs)
    guided_student, _, _ = fitnets.hint_stage(
        make_student, teacher, data, hint=knobs["hint"], guided=knobs["guided"],
        epochs=knobs["hint_epochs"] or knobs["epochs"], lr=fit["lr"], batch_size=fit["batch_size"],
        seed=fit["seed"], regressor=knobs["regressor"], device=fit["device"], cache=knobs["cache"],
        progress=fit["progress"],
    )
    return fitnets.distill(
        guided_student, data, cache.logits(teacher, data.x), temperature=knobs["temperature"],
        alpha=knobs["alpha"], anneal=knobs["anneal"], test=test, cache=knobs["cache"],
        desc="fitnets", **fit,
    )


def _fsp(teacher, make_student, probe, data, test, _classes, knobs) -> tuple[nn.Module, History]:
    pairs = knobs["pairs"] if knobs["pairs"] is not None else models.FSP_PAIRS
    teacher_pairs = knobs["teacher_pairs"] if knobs["teacher_pairs"] is not None else pairs
    features.check_layers(probe, [name for pair in pairs for name in pair], "pairs (student layers)")
    features.check_layers(
        teacher, [name for pair in teacher_pairs for name in pair], "teacher_pairs (teacher layers)"
    )
    fit = _fit_knobs(knobs)
    init, _ = fsp.fsp_stage(
        make_student, teacher, data, epochs=knobs["fsp_epochs"] or knobs["epochs"], pairs=pairs,
        teacher_pairs=teacher_pairs, weights=knobs["weights"], lr=fit["lr"], batch_size=fit["batch_size"],
        seed=fit["seed"], device=fit["device"], cache=knobs["cache"], progress=fit["progress"],
    )
    return fsp.train_from(init, data, test=test, cache=knobs["cache"], desc="fsp", **fit)


def _tsne(teacher, make_student, probe, data, test, _classes, knobs) -> tuple[nn.Module, History]:
    layer, teacher_layer = knobs["layer"] or tsne.LAYER, knobs["teacher_layer"] or tsne.LAYER
    features.check_layers(probe, layer, "layer (a student layer)")
    features.check_layers(teacher, teacher_layer, "teacher_layer (a teacher layer)")
    if knobs["weight_decay"]:
        raise ValueError(f"method 'tsne' takes no weight_decay, got {knobs['weight_decay']!r}")
    fit = {k: v for k, v in _fit_knobs(knobs).items() if k != "weight_decay"}
    return tsne.distill(
        make_student, data, teacher, beta=knobs["beta"], alpha=knobs["tsne_alpha"],
        perplexity=knobs["perplexity"], pca_dim=knobs["pca_dim"], layer=layer, teacher_layer=teacher_layer,
        temperature=knobs["temperature"], soft_alpha=knobs["alpha"], test=test, cache=knobs["cache"], **fit,
    )


def _born_again(teacher, make_student, _probe, data, test, classes, knobs) -> tuple[nn.Module, History]:
    _checks.at_least("generations", knobs["generations"], 1)
    # born_again.born_again trains its own generation 0 on the labels; here the user's teacher is
    # generation 0, so each generation k is hinton.distill against generation k - 1, as in that recipe.
    previous, history = teacher, History()
    for k in range(1, knobs["generations"] + 1):
        if isinstance(data, Tensors):
            previous, history = hinton.distill(
                make_student, data, cache.logits(previous, data.x), temperature=knobs["temperature"],
                alpha=knobs["alpha"], test=test, cache=knobs["cache"], desc=f"BAN-{k}", **_fit_knobs(knobs),
            )
        else:
            objective = hinton.objective(knobs["temperature"], knobs["alpha"])
            objective = adapters.with_teacher(previous, objective, classes)
            previous, history = common.train_model(
                make_student, data, objective, test=test, desc=f"BAN-{k}", **_fit_knobs(knobs)
            )
    return previous, history


def mutual(
    cohort: Sequence[nn.Module | Callable[[], nn.Module]],
    train: adapters.Data,
    test: adapters.Data | None = None,
    **knobs: Any,
) -> tuple[nn.ModuleList, History]:
    """Zhang et al. (2018), Deep Mutual Learning: train the K >= 2 students of ``cohort`` together, each on
    the labels and on the KL divergence to its peers' predictions (batch means), with no teacher.

    ``cohort`` holds modules (trained copies are returned, the modules passed are left as they are)
    or functions building them. Knobs: ``update`` (``"in_turn"``, the paper's Algorithm 1,
    ``"simultaneous"`` or ``"independent"``), ``temperature``, ``ensemble``, Adam's ``betas``,
    ``eval_every``, and the training knobs of :func:`distill` but ``cache``. Returns the trained
    cohort (``nn.ModuleList``; student k is ``cohort[k]``) and the History of
    :func:`kdlab.methods.mutual.evaluation` (``test_error/k``, ``test_error/ensemble``...).
    Calls :func:`kdlab.methods.mutual.train` on tensors; a ``Dataset``/``DataLoader`` goes through
    :func:`kdlab.train.fit` with :func:`kdlab.methods.mutual.objective`.
    """
    defaults = {**{k: v for k, v in FIT_KNOBS.items() if k != "cache"}, **MUTUAL_KNOBS}
    unknown = sorted(set(knobs) - set(defaults))
    if unknown:
        raise ValueError(f"unknown knob(s) {unknown} for mutual; its knobs are {sorted(defaults)}")
    knobs = {**defaults, **knobs}
    if isinstance(cohort, nn.Module) and not isinstance(cohort, nn.ModuleList):
        raise TypeError("cohort must be a sequence of students (modules or factories), got a single module")
    factories = [adapters.model_factory(s, f"cohort[{k}]") for k, s in enumerate(cohort)]
    if len(factories) < 2:
        raise ValueError(f"a cohort needs at least 2 students (K >= 2), got {len(factories)}")
    where = runtime.device(knobs["device"])
    tensors = adapters.as_tensors(train, "train")
    test_set = adapters.materialize(test, "test") if test is not None else None
    probe = adapters.first_batch(tensors if tensors is not None else train)[0].to(where)
    classes = {adapters.num_classes(make().to(where), probe, f"cohort[{k}]")
               for k, make in enumerate(factories)}
    if len(classes) != 1:
        raise ValueError(
            f"every student of a cohort must predict the same number of classes, got {sorted(classes)}"
        )
    (count,) = classes
    if tensors is not None:
        _checks.labels("train labels", tensors.y, len(tensors), count)
    if test_set is not None:
        _checks.labels("test labels", test_set.y, len(test_set), count)
    shared = ("update", "temperature", "ensemble", "betas", "lr", "batch_size", "optimizer", "weight_decay",
              "schedule", "progress")
    dml_knobs = {name: knobs[name] for name in shared}
    if tensors is not None:
        return dml.train(factories, tensors, seed=knobs["seed"], epochs=knobs["epochs"], test=test_set,
                         eval_every=knobs["eval_every"], device=where, **dml_knobs)
    if knobs["betas"] is not None:
        raise ValueError("betas is only supported with tensors in memory; use the optimizer's defaults")
    runtime.seed_everything(knobs["seed"])
    students = dml.cohort([make() for make in factories])
    objective = adapters.checked_labels(
        dml.objective(knobs["update"], temperature=knobs["temperature"], ensemble=knobs["ensemble"]), count
    )
    evaluate = None
    if test_set is not None:
        evaluate = dml.evaluation(test_set, every=knobs["eval_every"], epochs=knobs["epochs"])
    history = training.fit(
        students, adapters.as_loader(train, knobs["batch_size"], knobs["seed"]), objective,
        epochs=knobs["epochs"], lr=knobs["lr"], optimizer=knobs["optimizer"],
        weight_decay=knobs["weight_decay"], schedule=knobs["schedule"], evaluate=evaluate, device=where,
        progress=knobs["progress"], desc="cohort",
    )
    return students, history


def knobs_of(method: str) -> dict[str, Any]:
    """The knobs of ``method`` (``"mutual"`` included) and their defaults, training knobs included."""
    if method == "mutual":
        return {**{k: v for k, v in FIT_KNOBS.items() if k != "cache"}, **MUTUAL_KNOBS}
    _checks.choice("method", method, METHODS)
    return {**FIT_KNOBS, **METHOD_KNOBS[method]}


__all__ = ["distill", "mutual", "knobs_of", "METHODS"]
