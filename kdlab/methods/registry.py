"""The one table of methods: name -> recipe, its knobs with their defaults, its stages, its label.

:func:`kdlab.distill`, :func:`kdlab.mutual`, the ``kdlab distill`` command and the results
chapter's comparison (:mod:`kdlab.book.compare`) all read :data:`METHODS`; none keeps a table or
an ``if`` chain of its own. Each entry's ``run`` calls the method's recipes in
:mod:`kdlab.methods` with a teacher (a trained module; none for mutual learning), a student
factory, the training data (``Tensors``, or a loader for the methods that allow one), the test set
and the resolved knobs, and returns the recipes' :class:`~kdlab.methods.common.Result` (the
trained model, its History, every stage's History by name).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from torch import nn

from kdlab import _checks, adapters, cache, features, models
from kdlab.data import Tensors
from kdlab.methods import born_again, fitnets, fsp, hinton, modern, mutual, tsne
from kdlab.methods.common import Result, train_model

# The training knobs every method takes (those of kdlab.methods.common.train_model), with defaults.
TRAINING_KNOBS: Mapping[str, Any] = MappingProxyType({
    "epochs": 10, "lr": 1e-3, "batch_size": 128, "seed": 0, "optimizer": "adam", "weight_decay": 0.0,
    "schedule": None, "augment": None, "device": None, "progress": None, "cache": False,
    "checkpoint": None, "resume": False, "val": None, "log": None, "tensorboard": None, "callbacks": (),
})

# The training knobs that go only to the stage that trains the returned model (the last stage of a
# two-stage method, the last generation of Born-Again): fit's checkpoint and resume, the validation
# split that selects the returned epoch, the CSV and TensorBoard logs of its epochs and the callbacks.
LAST_STAGE_KNOBS = ("checkpoint", "resume", "val", "log", "tensorboard", "callbacks")

# Hinton et al. (2015) used T = 20 on MNIST; alpha = 0.9 weights the soft term as the book's chapters do.
HINTON_TEMPERATURE, HINTON_ALPHA = 20.0, 0.9


# run(teacher, student factory, train data, test set, knobs, number of classes) -> Result
Runner = Callable[
    [nn.Module | None, Callable[[], nn.Module], Any, Tensors | None, dict[str, Any], int], Result
]


@dataclass(frozen=True)
class Method:
    """One method: its ``name`` (``kdlab.distill(method=...)``), ``label`` (tables), ``paper``,
    ``stages`` (what it trains, in order, as its Result's ``stages`` names them), its own ``knobs``
    and their defaults (the training knobs, :data:`TRAINING_KNOBS`, come on top), ``run`` (see the
    module), whether it needs the training set as tensors in memory (``tensors_only``), whether
    it has a teacher and whether it reads the teacher's intermediate features (``teacher_features``:
    not from an exported program, whose layers give none). ``transfers`` (what the student learns
    from) and ``needs`` (what the method asks of the models) are the book's map of the methods, in
    words."""

    name: str
    label: str
    paper: str
    stages: tuple[str, ...]
    knobs: Mapping[str, Any]
    run: Runner
    tensors_only: bool = False
    teacher: bool = True
    teacher_features: bool = False
    transfers: str = ""
    needs: str = ""

    def defaults(self) -> dict[str, Any]:
        """Every knob of this method with its default, the training knobs included."""
        return {**TRAINING_KNOBS, **self.knobs}

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` over :meth:`defaults`; an unknown knob is an error listing the valid ones (and
        the likely one, for a misspelling or another library's name); the training knobs are checked."""
        unknown = sorted(set(given) - set(self.defaults()))
        if unknown:
            hints = "".join(f" ({name}: did you mean {_likely(name, self.defaults())!r}?)"
                            for name in unknown if _likely(name, self.defaults()))
            raise ValueError(
                f"unknown knob(s) {unknown} for method {self.name!r}{hints}; its knobs are "
                f"{sorted(self.knobs)} and the training knobs {sorted(TRAINING_KNOBS)}"
            )
        knobs = {**self.defaults(), **given}
        _checks.at_least("epochs", knobs["epochs"], 1)
        _checks.at_least("batch_size", knobs["batch_size"], 1)
        _checks.at_least("seed", knobs["seed"], 0)
        _checks.in_range("weight_decay", knobs["weight_decay"], 0.0, math.inf)
        for name in ("checkpoint", "log", "tensorboard"):
            _check_path(name, knobs[name])
        if knobs["resume"] and knobs["checkpoint"] is None:
            raise ValueError("resume=True needs checkpoint=<the path of the checkpoint to resume from>")
        return knobs


# Other libraries' and papers' names for kdlab's knobs, for the unknown-knob error.
SYNONYMS = {"hint_epochs": "stage_epochs", "fsp_epochs": "stage_epochs", "init_epochs": "stage_epochs",
            "T": "temperature", "tau": "temperature", "kd_weight": "alpha", "wd": "weight_decay"}


def _likely(name: str, names: Mapping[str, Any]) -> str | None:
    """The knob an unknown ``name`` most likely means: a synonym, or a close spelling."""
    return SYNONYMS.get(name) or next(iter(difflib.get_close_matches(name, list(names), 1)), None)


def _check_path(name: str, value: Any) -> None:
    """A path knob (``checkpoint``, ``log``, ``tensorboard``): ``None``, or a path whose folder exists;
    ``checkpoint`` and ``log`` are files, so not an existing folder."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (a str or pathlib.Path) or None, got {value!r}")
    path = Path(value)
    if not path.parent.is_dir():
        raise ValueError(f"{name}={str(value)!r}: no folder {str(path.parent)!r}; make it first")
    if name != "tensorboard" and path.is_dir():
        raise ValueError(f"{name}={str(value)!r} is a folder; give the path of a file in it (e.g. {name}.pt)")


def training(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """The training knobs of ``knobs`` (``cache`` included), for the recipes' ``**fit_knobs``."""
    return {name: knobs[name] for name in TRAINING_KNOBS}


def _split_last_stage(fit: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``fit`` without :data:`LAST_STAGE_KNOBS`, and those knobs alone."""
    return ({k: v for k, v in fit.items() if k not in LAST_STAGE_KNOBS},
            {k: fit[k] for k in LAST_STAGE_KNOBS})


def _targets(teacher: nn.Module, data: Tensors, knobs: Mapping[str, Any]) -> Any:
    """The teacher's logits on ``data.x``, computed once (and cached with the teacher), or the teacher
    itself, run on every batch, when ``augment`` changes the inputs every epoch."""
    augment = knobs.get("augment")
    return teacher if augment is not None and augment.active else cache.logits(teacher, data.x)


def _by_batch(teacher: nn.Module, objective: Any, classes: int, labels: bool = True) -> Any:
    return adapters.with_teacher(teacher, objective, classes, labels=labels)


def _hinton(teacher, make, data, test, knobs, classes) -> Result:
    loss = {name: knobs[name] for name in ("temperature", "alpha", "standardize")}
    if isinstance(data, Tensors):
        return hinton.distill(make, data, _targets(teacher, data, knobs), **loss, test=test, desc="hinton",
                              **training(knobs))
    objective = _by_batch(teacher, hinton.objective(**loss), classes)
    return train_model(make, data, objective, test=test, desc="hinton", **training(knobs))


def _dkd(teacher, make, data, test, knobs, classes) -> Result:
    loss = {name: knobs[name] for name in ("temperature", "tckd_weight", "nckd_weight", "standardize")}
    if isinstance(data, Tensors):
        return modern.distill_dkd(make, data, _targets(teacher, data, knobs),
                                  warmup_epochs=knobs["warmup_epochs"],
                                  **loss, test=test, desc="dkd", **training(knobs))
    warmup = modern.warmup_steps(knobs["warmup_epochs"], knobs["epochs"], len(data))  # fit needs len too
    objective = _by_batch(teacher, modern.dkd_objective(**loss, warmup=warmup), classes)
    return train_model(make, data, objective, test=test, desc="dkd", **training(knobs))


def _dist(teacher, make, data, test, knobs, classes) -> Result:
    loss = {name: knobs[name] for name in ("temperature", "inter_weight", "intra_weight")}
    if isinstance(data, Tensors):
        return modern.distill_dist(make, data, _targets(teacher, data, knobs), **loss, test=test, desc="dist",
                                   **training(knobs))
    objective = _by_batch(teacher, modern.dist_objective(**loss), classes)
    return train_model(make, data, objective, test=test, desc="dist", **training(knobs))


def _logits(teacher, make, data, test, knobs, classes) -> Result:
    if isinstance(data, Tensors):
        return hinton.mimic(make, data.x, _targets(teacher, data, knobs), loss="mse", test=test,
                            desc="logits", **training(knobs))
    objective = _by_batch(teacher, hinton.mimic_objective("mse"), classes, labels=False)
    return train_model(make, data, objective, test=test, desc="logits", **training(knobs))


def _stage_epochs(knobs: Mapping[str, Any]) -> int:
    epochs = knobs["stage_epochs"] if knobs["stage_epochs"] is not None else knobs["epochs"]
    _checks.at_least("stage_epochs", epochs, 1)
    return epochs


def _fitnets(teacher, make, data, test, knobs, classes) -> Result:
    for name, role in (("hint", "teacher"), ("guided", "student")):
        if knobs[name] is None:
            raise ValueError(f"method 'fitnets' needs {name}=<a layer name of the {role}>")
    features.check_layers(teacher, knobs["hint"], "hint (a teacher layer)")
    features.check_layers(make(), knobs["guided"], "guided (a student layer)")
    fit = training(knobs)  # the hint stage takes none of LAST_STAGE_KNOBS; the KD stage all of them
    guided, hint_history = fitnets.hint_stage(
        make, teacher, data, hint=knobs["hint"], guided=knobs["guided"], epochs=_stage_epochs(knobs),
        lr=fit["lr"], batch_size=fit["batch_size"], seed=fit["seed"], regressor=knobs["regressor"],
        device=fit["device"], cache=fit["cache"], progress=fit["progress"],
    )
    model, history = fitnets.distill(
        guided, data, _targets(teacher, data, knobs), temperature=knobs["temperature"], alpha=knobs["alpha"],
        anneal=knobs["anneal"], form=knobs["form"], test=test, desc="fitnets", **fit,
    )
    return Result(model, history, {"hint stage": hint_history, "KD": history})


def _check_default(model: nn.Module, wanted: list[str], *, method: str, knob: str, role: str, default: str,
                   give: str) -> None:
    """Refuse the default of ``knob`` when ``model`` lacks its layers ``wanted`` (a model not built by
    kdlab): an error saying that ``knob`` must be given for this model, with some of its layer names."""
    names = features.layer_names(model)
    missing = [name for name in wanted if name not in names]
    if missing:
        shown = names if len(names) <= 12 else names[:12] + ["..."]
        raise ValueError(
            f"method {method!r}: {knob} must be given for this {role}: the default {default}, and the {role} "
            f"has no layer {missing[0]!r}; give {give} from its layers {shown} (kdlab.features.layer_names "
            "lists them all)"
        )


def _default_pairs(model: nn.Module, knob: str, role: str) -> fsp.Pairs:
    """kdlab's resnet pairs (:data:`kdlab.models.FSP_PAIRS`) when ``model`` has those layers."""
    _check_default(
        model, [name for pair in models.FSP_PAIRS for name in pair], method="fsp", knob=knob, role=role,
        default="pairs are the layers of kdlab's resnet (kdlab.models.FSP_PAIRS)",
        give=f"{knob}=[(first, second), ...], two layers with maps of one spatial size each,",
    )
    return models.FSP_PAIRS


def _check_pairs(knob: str, pairs: Any) -> None:
    if pairs is None:
        return
    if isinstance(pairs, str) or not all(
        isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(n, str) for n in p) for p in pairs
    ):
        raise ValueError(
            f"{knob} must be a list of (first, second) layer-name pairs, e.g. [('stage1.0', 'stage1.1')], "
            f"got {pairs!r}"
        )


def _fsp(teacher, make, data, test, knobs, classes) -> Result:
    _check_pairs("pairs", knobs["pairs"])
    _check_pairs("teacher_pairs", knobs["teacher_pairs"])
    student, given = make(), knobs["pairs"]
    pairs = given if given is not None else _default_pairs(student, "pairs", "student")
    teacher_pairs = knobs["teacher_pairs"]
    if teacher_pairs is None:
        teacher_pairs = pairs if given is not None else _default_pairs(teacher, "teacher_pairs", "teacher")
    features.check_layers(student, [name for pair in pairs for name in pair], "pairs (student layers)")
    features.check_layers(
        teacher, [name for pair in teacher_pairs for name in pair],
        "teacher_pairs (teacher layers; by default the names of pairs)",
    )
    fit = training(knobs)  # the FSP stage takes none of LAST_STAGE_KNOBS; the training stage all of them
    init, stage = fsp.fsp_stage(
        make, teacher, data, epochs=_stage_epochs(knobs), pairs=pairs, teacher_pairs=teacher_pairs,
        weights=knobs["weights"], lr=fit["lr"], batch_size=fit["batch_size"], seed=fit["seed"],
        device=fit["device"], cache=fit["cache"], progress=fit["progress"],
    )
    model, history = fsp.train_from(init, data, test=test, desc="fsp", **fit)
    return Result(model, history, {"FSP stage": stage, "training": history})


def _tsne(teacher, make, data, test, knobs, classes) -> Result:
    layer = knobs["layer"] or tsne.LAYER
    teacher_layer = knobs["teacher_layer"] or tsne.LAYER
    default = f"is {tsne.LAYER!r}, the hidden layer before the logits of kdlab's lenet"
    for knob, model, role in (("layer", make(), "student"), ("teacher_layer", teacher, "teacher")):
        if knobs[knob] is None:
            _check_default(model, [tsne.LAYER], method="tsne", knob=knob, role=role, default=default,
                           give=f"{knob}=<the layer whose features are compared, e.g. the last hidden one>")
    features.check_layers(make(), layer, "layer (a student layer)")
    features.check_layers(teacher, teacher_layer, "teacher_layer (a teacher layer)")
    if knobs["weight_decay"]:
        raise ValueError(f"method 'tsne' takes no weight_decay, got {knobs['weight_decay']!r}")
    if knobs["augment"] is not None:
        raise ValueError(
            f"method 'tsne' takes no augment, got {knobs['augment']!r}: its P matrices belong to fixed "
            "batches of fixed inputs"
        )
    fit = {k: v for k, v in training(knobs).items() if k not in ("weight_decay", "augment")}
    return tsne.distill(
        make, data, teacher, beta=knobs["beta"], tsne_alpha=knobs["tsne_alpha"],
        perplexity=knobs["perplexity"], pca_dim=knobs["pca_dim"], layer=layer, teacher_layer=teacher_layer,
        temperature=knobs["temperature"], alpha=knobs["alpha"], test=test, **fit,
    )


def _born_again(teacher, make, data, test, knobs, classes) -> Result:
    """Generations 1 .. K; only the last one (the returned model) takes :data:`LAST_STAGE_KNOBS`."""
    generations = knobs["generations"]
    _checks.at_least("generations", generations, 1)
    fit, last_stage = _split_last_stage(training(knobs))
    loss = {"temperature": knobs["temperature"], "alpha": knobs["alpha"]}
    if isinstance(data, Tensors):
        return born_again.descend(teacher, make, data, generations=generations, test=test, last=last_stage,
                                  **loss, **fit)
    # A loader: the teacher of each generation runs per batch, with the same seeds as descend's.
    previous, stages = teacher, {}
    for k in range(1, generations + 1):
        objective = _by_batch(previous, hinton.objective(knobs["temperature"], knobs["alpha"]), classes)
        previous, stages[f"BAN-{k}"] = train_model(
            make, data, objective, test=test, desc=f"BAN-{k}",
            **{**fit, "seed": born_again.generation_seed(fit["seed"], k)},
            **(last_stage if k == generations else {}),
        )
    return Result(previous, stages[f"BAN-{generations}"], stages)


def _mutual(_teacher, make, data, test, knobs, classes) -> Result:
    _checks.at_least("eval_every", knobs["eval_every"], 1)
    fit = {k: v for k, v in training(knobs).items() if k != "seed"}
    students = knobs["students"] or [make] * knobs["cohort"]
    if not isinstance(data, (Tensors, adapters.CheckedBatches)):  # kdlab.mutual gives checked batches
        data = adapters.CheckedBatches(data, classes)
    dml = {name: knobs[name] for name in ("update", "temperature", "ensemble", "betas", "eval_every")}
    return mutual.train(students, data, seed=knobs["seed"], test=test, **dml, **fit)


METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    Method("hinton", "Hinton KD", "Hinton, Vinyals & Dean (2015)", ("training",),
           MappingProxyType({"temperature": HINTON_TEMPERATURE, "alpha": HINTON_ALPHA, "standardize": False}),
           _hinton,
           transfers="outputs: the teacher's class probabilities softened at a temperature T, and the labels "
                     "(standardize=True: of z-scored logits, Sun et al. 2024)",
           needs="a teacher's logits on the training inputs; any two architectures"),
    Method("logits", "logit regression", "Ba & Caruana (2014)", ("training",), MappingProxyType({}), _logits,
           transfers="outputs: the teacher's logits, regressed with a squared error; no labels",
           needs="a teacher's logits; unlabelled inputs suffice"),
    # The CIFAR-100 benchmark's DKD (T = 4, the paper's alpha = 1 and beta = 8 on TCKD and NCKD) with the
    # label term's weight 1; the warm-up is the authors' 20 of 240 epochs as a fraction (warmup_epochs=None).
    Method("dkd", "DKD", "Zhao, Cui, Song, Qiu & Liang (2022)", ("training",),
           MappingProxyType({"temperature": 4.0, "tckd_weight": 1.0, "nckd_weight": 8.0,
                             "warmup_epochs": None, "standardize": False}),
           _dkd,
           transfers="outputs, decoupled: the teacher's target-class confidence (TCKD) and its distribution "
                     "over the other classes (NCKD), each with its own weight, and the labels",
           needs="a teacher's logits and the labels; any two architectures"),
    # DIST's official loss: T = 1, the paper's beta = gamma = 1 on the two relations, the labels' weight 1.
    Method("dist", "DIST", "Huang, You, Wang, Qian & Xu (2022)", ("training",),
           MappingProxyType({"temperature": 1.0, "inter_weight": 1.0, "intra_weight": 1.0}), _dist,
           transfers="outputs, as correlations: how the teacher's probabilities co-vary over the classes of "
                     "an example and over the examples of a class, and the labels",
           needs="a teacher's logits and the labels; batches of two or more"),
    Method("fitnets", "FitNets", "Romero et al. (2015)", ("hint stage", "KD"),
           MappingProxyType({"hint": None, "guided": None, "stage_epochs": None,
                             "temperature": HINTON_TEMPERATURE, "alpha": HINTON_ALPHA, "anneal": True,
                             "form": "kd", "regressor": "conv"}),
           _fitnets, tensors_only=True, teacher_features=True,
           transfers="features: a middle layer of the teacher (the hint), regressed by a student layer; "
                     "then outputs",
           needs="a teacher layer and a student layer (a regressor bridges their shapes) and a hint stage"),
    Method("fsp", "FSP", "Yim et al. (2017)", ("FSP stage", "training"),
           MappingProxyType({"pairs": None, "teacher_pairs": None, "weights": None, "stage_epochs": None}),
           _fsp, tensors_only=True, teacher_features=True,
           transfers="relations between layers: the flow (FSP) matrices of pairs of the teacher's layers",
           needs="pairs of layers whose channel counts match between teacher and student"),
    Method("tsne", "t-SNE regularizer", "Qiao, tsneNet (2017)", ("training",),
           MappingProxyType({"beta": 0.1, "tsne_alpha": math.inf, "perplexity": 20.0, "pca_dim": 50,
                             "layer": None, "teacher_layer": None, "temperature": None, "alpha": None}),
           _tsne, tensors_only=True, teacher_features=True,
           transfers="relations between examples: which inputs are neighbours in the teacher's feature space",
           needs="a teacher layer's features; batches large enough to hold neighbourhoods"),
    # Furlanello et al.'s loss: cross-entropy plus the teacher's T = 1 probabilities (alpha = 0.5); one
    # stage per generation, BAN-1 .. BAN-<generations>.
    Method("born_again", "Born-Again", "Furlanello et al. (2018)", ("BAN-1",),
           MappingProxyType({"generations": 1, "temperature": 1.0, "alpha": 0.5}), _born_again,
           transfers="outputs of the previous generation, a net of the student's own architecture",
           needs="no separate teacher: generation 0 is trained on the labels"),
    Method("mutual", "DML", "Zhang, Xiang, Hospedales & Lu (2018)", ("training",),
           MappingProxyType({"cohort": 2, "students": None, "update": "in_turn", "temperature": 1.0,
                             "ensemble": False, "betas": None, "eval_every": 1}),
           _mutual, teacher=False,
           transfers="peers: each student learns the labels and the other students' outputs, all trained "
                     "at once",
           needs="no teacher: two or more students trained together"),
)})


def method(name: str) -> Method:
    """The registry entry of ``name``; an unknown name is an error listing the methods."""
    _checks.choice("method", name, METHODS)
    return METHODS[name]
