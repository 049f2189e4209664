"""One call for the common case: distil a user's own teacher into a user's own student.

:func:`distill` and :func:`mutual` are thin: they check the arguments, bring the data into
kdlab's form (:mod:`kdlab.adapters`) and run the method's entry of the registry
(:mod:`kdlab.methods.registry`), which calls the same :mod:`kdlab.methods` recipes the book's
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

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import _checks, adapters, cache, inputs, runtime
from kdlab.data import Tensors
from kdlab.methods import registry
from kdlab.methods.common import Result, as_factory

# The methods of distill (mutual learning, which has no teacher, is mutual()).
METHODS = tuple(name for name, m in registry.METHODS.items() if m.teacher)


def _prepare(
    train: adapters.Data, test: adapters.Data | None, where: Any, keys: Sequence[str] | None
) -> tuple[Tensors | None, Tensors | None]:
    """The training set as tensors on ``where`` (``None`` for a loader, checked per batch instead) and the
    test set read into memory (dict batches with the input ``keys``); both checked for emptiness and
    NaN/inf inputs before any training."""
    tensors = adapters.as_tensors(train, "train")
    test_set = adapters.materialize(test, "test", keys) if test is not None else None
    if tensors is not None:
        tensors = adapters.check_tensors(tensors, "train").to(where)
    if test_set is not None:
        test_set = adapters.check_tensors(test_set, "test")
    return tensors, test_set


def _validation(
    val: adapters.Data | None, test_set: Tensors | None, keys: Sequence[str] | None
) -> Tensors | None:
    """``val`` read into memory as ``test`` is, and checked; refused when it is the test set itself
    (the same tensors by content): choosing the returned epoch on the test set is what ``val`` is
    there to avoid."""
    if val is None:
        return None
    val_set = adapters.check_tensors(adapters.materialize(val, "val", keys), "val")
    pairs = zip(val_set.tensors, test_set.tensors, strict=True) if test_set is not None else ()
    if test_set is not None and all(a.shape == b.shape and torch.equal(a.cpu(), b.cpu()) for a, b in pairs):
        raise ValueError(
            "val is the test set (the same tensors): selecting the returned epoch on the test set makes its "
            "test metrics optimistic; hold out a validation split from train (e.g. kdlab.data.load(..., "
            "train_size=...)) and pass that as val"
        )
    return val_set


def _check_val(val_set: Tensors | None, models: dict[str, nn.Module], classes: int) -> None:
    if val_set is not None:
        adapters.check_dtype("val.x", val_set.x, models)
        _checks.labels("val labels", val_set.y, len(val_set), classes)


def _check_labels(tensors: Tensors | None, test_set: Tensors | None, classes: int) -> None:
    if tensors is not None:
        _checks.labels("train labels", tensors.y, len(tensors), classes)
    if test_set is not None:
        _checks.labels("test labels", test_set.y, len(test_set), classes)


def _check_dtypes(
    tensors: Tensors | None, probe: Tensor, test_set: Tensors | None, models: dict[str, nn.Module]
) -> None:
    adapters.check_dtype("train.x" if tensors is not None else "train's x (batch 0)", probe, models)
    if test_set is not None:
        adapters.check_dtype("test.x", test_set.x, models)


def _check_numbers(knobs: dict[str, Any]) -> None:
    """The numeric knobs every method shares, checked before any training: ``temperature`` a finite
    number > 0, ``alpha`` a number in [0, 1], ``lr`` a finite number > 0 (None: the method's default)."""
    if knobs.get("temperature") is not None:
        _checks.finite_positive("temperature", knobs["temperature"])
    if knobs.get("alpha") is not None:
        _checks.in_range("alpha", knobs["alpha"], 0.0, 1.0)
    _checks.finite_positive("lr", knobs["lr"])


def _loader(
    train: adapters.Data, knobs: dict[str, Any], classes: int, keys: Sequence[str] | None
) -> adapters.CheckedBatches:
    """A loader over ``train`` whose batches are checked as they arrive (:class:`adapters.CheckedBatches`)."""
    if knobs["cache"]:
        raise ValueError(
            f"cache=True needs the training set as tensors in memory (Tensors or (x, y)): the cache key "
            f"holds their content; got a {type(train).__name__}, so pass cache=False"
        )
    loader = adapters.as_loader(train, knobs["batch_size"], knobs["seed"])
    return adapters.CheckedBatches(loader, classes, keys=keys)


def _wrap(model: nn.Module, keys: Sequence[str] | None, output: Callable[[Any], Tensor] | None) -> nn.Module:
    """``model`` taking kdlab's one input tensor (:func:`kdlab.inputs.keyword_inputs`) and giving logits
    (:func:`kdlab.adapters.select_logits`), through hooks; :func:`_release` removes them."""
    return adapters.select_logits(inputs.keyword_inputs(model, keys), output)


def _release(result: nn.Module) -> None:
    for model in result if isinstance(result, nn.ModuleList) else [result]:
        inputs.restore_inputs(adapters.restore_output(model))


def _classes(models: dict[str, nn.Module], probe: Tensor, keys: Sequence[str] | None) -> dict[str, int]:
    """The number of classes each of ``models`` predicts on ``probe`` (two training examples). A model
    that cannot run on them is named with their shape (an input of the wrong shape or channel count),
    or with the dict batches' keyword inputs when a forward does not take them."""
    found = {}
    for role, model in models.items():
        try:
            found[role] = adapters.num_classes(model, probe, role)
        except TypeError as error:
            if keys is None or len(keys) < 2:
                raise
            raise TypeError(
                f"the models are called with the dict batches' inputs {list(keys)} as keywords, and the "
                f"{role} failed: {error}"
            ) from error
        except RuntimeError as error:
            raise ValueError(
                f"the {role} cannot run on the training inputs, of shape {tuple(probe.shape[1:])} per "
                f"example ({probe.dtype}): {str(error).splitlines()[0]}; give inputs of the shape the {role} "
                "takes (channels, height, width for an image model)"
            ) from error
    return found


def _check_shapes(probe: Tensor, parts: dict[str, Tensors | None]) -> None:
    """Refuse a test or val set whose examples are not shaped as the training examples (images and
    features, where every example has one shape; token ids may differ in length)."""
    if not probe.is_floating_point():
        return
    for name, part in parts.items():
        if part is not None and part.x.shape[1:] != probe.shape[1:]:
            raise ValueError(
                f"{name}.x has examples of shape {tuple(part.x.shape[1:])}, the training set "
                f"{tuple(probe.shape[1:])}: {name} must be shaped as train"
            )


def distill(
    teacher: nn.Module,
    student: nn.Module | Callable[[], nn.Module],
    train: adapters.Data,
    test: adapters.Data | None = None,
    method: str = "hinton",
    output: Callable[[Any], Tensor] | None = None,
    **knobs: Any,
) -> Result:
    """Train ``student`` from ``teacher`` on ``train`` with ``method``; returns the
    :class:`~kdlab.methods.common.Result`, read as ``student, history = kdlab.distill(...)`` (the
    History has last-epoch test metrics when ``test`` is given; ``stages`` holds every stage's).

    ``student`` is a module (a trained copy is returned; the module passed is left as it is, and
    its weights are the starting point) or a function building one (built after seeding with
    ``seed``). ``teacher`` is a trained classifier; both return logits (batch, classes) for the
    same number of classes. ``train``/``test``: ``Tensors``, ``(x, y)``, a ``Dataset`` or a
    ``DataLoader`` (see the module; a test loader is read once into memory). Losses are batch
    means, as in each recipe.

    Methods and their knobs, as :data:`kdlab.methods.registry.METHODS` lists them (each method's
    knobs with the training knobs ``epochs``, ``lr``,
    ``batch_size``, ``seed``, ``optimizer``, ``weight_decay``, ``schedule``, ``device``,
    ``progress``, ``cache``, and ``checkpoint``, ``resume``, ``val``, ``log``, ``tensorboard``,
    ``callbacks``, which
    go only to the stage that trains the returned model, e.g. FitNets' KD stage, FSP's training
    stage, Born-Again's last generation):

    - ``checkpoint`` (a path) and ``resume=True``: :func:`kdlab.train.fit`'s; a run killed and
      resumed gives the same student as an unbroken one (bitwise on CPU), and a checkpoint of
      another run (method, knobs, data, epochs) is refused. Not in the cache key.
    - ``val``: a validation split, in any form ``test`` takes (never the test set itself: that is
      refused). It is evaluated every epoch (``val_error``...) and the weights of the epoch with
      the fewest val errors are returned; ``history.best_epoch`` names it and ``history.best(key)``
      reads that epoch's numbers, beside ``history.last(key)`` (the last epoch's). In the cache key.
    - ``log`` (a CSV path): one row per epoch, the History's keys, appended as each finishes.
    - ``tensorboard`` (a folder): the same rows as TensorBoard scalars, step = epoch (needs the
      ``tensorboard`` package, the extra ``kdlab[tensorboard]``). Neither log is in the cache key.
    - ``callbacks``: a function, or a list of them, called as ``callback(row, model)`` after each
      epoch with its History row and the model (e.g. to send metrics elsewhere); they watch and
      should not change the model. Not in the cache key: a cache hit trains, and calls, nothing.

    - ``"hinton"``: Hinton, Vinyals & Dean (2015), eq. 2's soft targets,
      ``alpha * T^2 KL(p_t^T || p_s^T) + (1 - alpha) CE(y, p_s)``
      (:func:`kdlab.methods.hinton.distill`); ``temperature``, ``alpha``, and ``standardize``: the
      soft term on z-scored logits (Sun et al. 2024, :func:`kdlab.losses.standardize_logits`).
    - ``"dkd"``: Zhao et al. (2022), decoupled KD: the labels plus ``tckd_weight`` * TCKD +
      ``nckd_weight`` * NCKD at ``temperature``, warmed up over ``warmup_epochs`` (default 1/12 of
      the epochs), ``standardize`` as above (:func:`kdlab.methods.modern.distill_dkd`).
    - ``"dist"``: Huang et al. (2022), DIST: the labels plus ``inter_weight`` and ``intra_weight``
      times the inter- and intra-class correlation losses (:func:`kdlab.methods.modern.distill_dist`).
    - ``"logits"``: Ba & Caruana (2014), regression of the teacher's logits, no labels
      (:func:`kdlab.methods.hinton.mimic` with ``loss="mse"``).
    - ``"fitnets"``: Romero et al. (2015): the student up to layer ``guided`` learns the teacher's
      layer ``hint`` for ``stage_epochs`` (default ``epochs``) through a ``regressor`` (``"conv"``
      or ``"fc"``), then KD with ``alpha`` decayed to 0 when ``anneal``
      (:func:`kdlab.methods.fitnets.hint_stage`, :func:`kdlab.methods.fitnets.distill`).
    - ``"fsp"``: Yim et al. (2017): the student's FSP matrices between the layer ``pairs`` learn
      the teacher's (``teacher_pairs``, default the same names; ``weights`` the lambda_i) for
      ``stage_epochs`` (default ``epochs``), then normal training
      (:func:`kdlab.methods.fsp.fsp_stage`, :func:`kdlab.methods.fsp.train_from`).
    - ``"born_again"``: Furlanello et al. (2018): ``generations`` students of ``student``'s
      architecture, the first distilled from ``teacher``, each next one from the previous one,
      with Hinton's loss at ``temperature`` and ``alpha`` (the paper's T = 1, alpha = 0.5), each
      generation seeded afresh as in :func:`kdlab.methods.born_again.born_again`; returns the last
      generation.
    - ``"tsne"``: Qiao's tsneNet: CE + ``beta`` * KL(P || Q) between the t-SNE similarities of the
      teacher's ``teacher_layer`` features (P: ``perplexity``, PCA to ``pca_dim``) and the student's
      ``layer`` features (Q: Student-t with ``tsne_alpha`` degrees of freedom, ``math.inf`` the
      Gaussian) on fixed batches; with ``temperature`` and ``alpha`` Hinton's soft targets join
      in (:func:`kdlab.methods.tsne.distill`, whose ``alpha`` is ``tsne_alpha`` here and whose
      ``soft_alpha`` is ``alpha``; layers default to its ``"fc"``; no ``weight_decay``).

    ``fitnets``, ``fsp`` and ``tsne`` need tensors in memory. ``teacher`` may also be a
    ``torch.export`` program (or the module ``torch.export.load(path).module()`` gives), which runs
    as it was exported (:class:`kdlab.adapters.ExportedModule`); ``train``/``test`` may also be an
    ``(x, y)`` pair of NumPy arrays.

    Dict batches, as Hugging Face datasets and collators give them (``{"pixel_values": ..., "labels":
    ...}``, ``{"input_ids": ..., "attention_mask": ..., "token_type_ids": ..., "labels": ...}``, or
    one such dict of tensors as the whole training set): the attention mask and token types are
    passed to both models as keywords, so padded batches work (:mod:`kdlab.inputs`); test and val
    sets need the training batches' keys, each padded to one length.

    Models that return more than logits (a Hugging Face ``ModelOutput`` or dict with ``logits``, a
    tuple with the logits first) work as they are: kdlab reads their logits
    (:func:`kdlab.adapters.logits_of`), or ``output(model_output)`` when ``output`` is given, through
    a forward hook that leaves layer names unchanged. The teacher passed is restored afterwards, and
    the student returned gives its own outputs again. A selector is the user's code, which no cache
    key holds: ``output`` with ``cache=True``, or with a teacher loaded from kdlab's cache, is refused.

    Errors, all before any training: an unknown method or knob (listing the valid ones), a
    ``temperature`` that is not a finite number > 0, teacher and student with different class
    counts, a layer name the model lacks (listing close matches), labels outside ``[0, classes)``,
    an empty ``train`` or ``test``, NaN or infinite inputs (naming the rows; a loader's batches
    are checked as they arrive), uint8 inputs (convert with ``.float() / 255``), inputs of another
    floating dtype than the models' parameters, a dict batch without one input key and one label
    key (``pixel_values``/``input_ids``... and ``labels``) or with another key (named), models that
    cannot take its keyword inputs, test or val batches with other keys or of several lengths.
    """
    _checks.choice("method", method, METHODS)
    entry = registry.method(method)
    knobs = entry.resolve(knobs)
    _check_numbers(knobs)
    teacher = adapters.as_teacher(teacher)
    if output is not None and knobs["cache"]:
        raise ValueError(
            "output=<selector> with cache=True: the cache keys only kdlab's own code, so a run with another "
            "selector would load this run's student; leave cache off"
        )
    if output is not None and cache.key_of(teacher) is not None:
        raise ValueError(
            "output=<selector> with a teacher loaded from kdlab's cache: its logits are cached under the "
            "teacher's key, which cannot hold your selector; pass copy.deepcopy(teacher) instead"
        )
    own_student = as_factory(student, "student")
    keys = adapters.input_keys(train)

    def make_student() -> nn.Module:
        return _wrap(own_student(), keys, output)

    _wrap(teacher, keys, output)
    try:
        result = _distill(entry, method, teacher, make_student, train, test, knobs, keys)
    finally:
        _release(teacher)
    _release(result.model)
    return result


def _distill(
    entry: Any, method: str, teacher: nn.Module, make_student: Callable[[], nn.Module], train: adapters.Data,
    test: adapters.Data | None, knobs: dict[str, Any], keys: Sequence[str] | None,
) -> Result:
    where = runtime.device(knobs["device"])
    knobs["device"] = where
    tensors, test_set = _prepare(train, test, where, keys)
    val_set = _validation(knobs["val"], test_set, keys)
    knobs["val"] = val_set
    if entry.teacher_features and isinstance(teacher, adapters.ExportedModule):
        raise ValueError(
            f"method {method!r} reads the teacher's intermediate layers, which an exported program (.pt2) "
            "does not give (it runs as one flat graph); pass the teacher as the nn.Module, or use a method "
            "that needs only its outputs (hinton, dkd, dist, logits, born_again)"
        )
    if tensors is None and entry.tensors_only:
        raise ValueError(
            f"method {method!r} needs the training set as tensors in memory (Tensors or (x, y)), got a "
            f"{type(train).__name__}; read it once with kdlab.adapters.materialize(train)"
        )
    teacher.to(where)
    probe = adapters.first_batch(tensors if tensors is not None else train)[0].to(where)
    first_student = make_student().to(where)
    _check_dtypes(tensors, probe, test_set, {"teacher": teacher, "student": first_student})
    _check_shapes(probe, {"test": test_set, "val": val_set})
    counts = _classes({"teacher": teacher, "student": first_student}, probe, keys)
    if counts["teacher"] != counts["student"]:
        raise ValueError(
            f"teacher and student must predict the same number of classes, got {counts['teacher']} "
            f"(teacher) and {counts['student']} (student)"
        )
    classes = counts["teacher"]
    _check_labels(tensors, test_set, classes)
    _check_val(val_set, {"teacher": teacher, "student": first_student}, classes)
    data = tensors if tensors is not None else _loader(train, knobs, classes, keys)
    return entry.run(teacher, make_student, data, test_set, knobs, classes)


def mutual(
    cohort: Sequence[nn.Module | Callable[[], nn.Module]],
    train: adapters.Data,
    test: adapters.Data | None = None,
    **knobs: Any,
) -> Result:
    """Zhang et al. (2018), Deep Mutual Learning: train the K >= 2 students of ``cohort`` together, each on
    the labels and on the KL divergence to its peers' predictions (batch means), with no teacher.

    ``cohort`` holds modules (trained copies are returned, the modules passed are left as they are)
    or functions building them. Knobs: ``update`` (``"in_turn"``, the paper's Algorithm 1,
    ``"simultaneous"`` or ``"independent"``), ``temperature``, ``ensemble``, Adam's ``betas``,
    ``eval_every``, and the training knobs of :func:`distill`. Returns the trained cohort
    (``nn.ModuleList``; student k is ``cohort[k]``) and the History of
    :func:`kdlab.methods.mutual.evaluation` (``test_error/k``, ``test_error/ensemble``...), through
    :func:`kdlab.methods.mutual.train` (tensors or a loader). ``checkpoint``, ``resume``, ``log``,
    ``tensorboard`` and ``callbacks`` as in :func:`distill`; with ``val`` one epoch is chosen for the
    whole cohort, the one with the fewest val errors averaged over its students (``val_error``; each
    student's is ``val_error/k``). The data are checked as in :func:`distill`, before any training.
    """
    entry = registry.method("mutual")
    fixed = sorted(set(knobs) & {"students", "cohort"})
    if fixed:
        raise ValueError(f"unknown knob(s) {fixed} for mutual: the students are the cohort argument")
    knobs = entry.resolve(knobs)
    _check_numbers(knobs)
    if isinstance(cohort, nn.Module) and not isinstance(cohort, nn.ModuleList):
        raise TypeError("cohort must be a sequence of students (modules or factories), got a single module")
    owns = [as_factory(s, f"cohort[{k}]") for k, s in enumerate(cohort)]
    if len(owns) < 2:
        raise ValueError(f"a cohort needs at least 2 students (K >= 2), got {len(owns)}")
    keys = adapters.input_keys(train)
    factories = [lambda own=own: _wrap(own(), keys, None) for own in owns]
    where = runtime.device(knobs["device"])
    knobs["device"] = where
    tensors, test_set = _prepare(train, test, where, keys)
    probe = adapters.first_batch(tensors if tensors is not None else train)[0].to(where)
    students = {f"cohort[{k}]": make().to(where) for k, make in enumerate(factories)}
    _check_dtypes(tensors, probe, test_set, students)
    _check_shapes(probe, {"test": test_set})
    classes = set(_classes(students, probe, keys).values())
    if len(classes) != 1:
        raise ValueError(
            f"every student of a cohort must predict the same number of classes, got {sorted(classes)}"
        )
    (count,) = classes
    _check_labels(tensors, test_set, count)
    knobs["val"] = _validation(knobs["val"], test_set, keys)
    _check_shapes(probe, {"val": knobs["val"]})
    _check_val(knobs["val"], students, count)
    knobs["students"] = factories
    data = tensors if tensors is not None else _loader(train, knobs, count, keys)
    result = entry.run(None, factories[0], data, test_set, knobs, count)
    _release(result.model)
    return result


def knobs_of(method: str) -> dict[str, Any]:
    """The knobs of ``method`` (``"mutual"`` included) and their defaults, training knobs included, as
    :func:`distill` or :func:`mutual` takes them (mutual's cohort is its first argument, not a knob)."""
    knobs = registry.method(method).defaults()
    fixed = ("cohort", "students") if method == "mutual" else ()
    return {k: v for k, v in knobs.items() if k not in fixed}


__all__ = ["distill", "mutual", "knobs_of", "METHODS"]
