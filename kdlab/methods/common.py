"""The one train-and-cache path: seed, build, train and, with ``cache=True``, store or load.

Every recipe that trains a network is either :func:`train_model` (a model, data, an objective) or
a function decorated with :func:`recipe`, which returns a :class:`Plan` (how to build the model,
how to train it). The decorator does the rest the same way for all of them: it seeds with the
call's ``seed``, builds, trains, and with ``cache=True`` keys the entry by *every argument of the
call* (bound by the recipe's own signature, defaults included; data, teachers and objectives by
content, see :mod:`kdlab.cache`) and by the built model's initial state. A knob added to a recipe
is in its key without anyone listing it; only the factories (their product, the initial state,
is keyed instead) and what says how visibly a run goes (``progress``, ``desc``) stay out, and of
``device`` only its kind is keyed (CUDA trains under bf16 autocast).
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn

from kdlab import cache as kd_cache
from kdlab import loggers, models, runtime, train
from kdlab.augment import Augment
from kdlab.data import TensorLoader, Tensors
from kdlab.train import History, Objective

M = TypeVar("M", bound=nn.Module)
ModelOrFactory = nn.Module | Callable[[], nn.Module]
Trained = History | list[History]


class Result(tuple):
    """What every recipe returns: the trained ``model`` (a cohort ``nn.ModuleList`` for mutual
    learning) and the ``history`` of the stage that trained it last, so ``model, history =
    recipe(...)`` reads it; and ``stages``, every stage's History by name, in order, and
    ``produced``, what a stage made besides the model (FitNets' regressor, Born-Again's
    generations)."""

    stages: dict[str, History]
    produced: dict[str, Any]

    def __new__(
        cls,
        model: nn.Module,
        history: History,
        stages: Mapping[str, History] | None = None,
        produced: Mapping[str, Any] | None = None,
    ) -> Result:
        result = super().__new__(cls, (model, history))
        result.stages = dict(stages) if stages else {"training": history}
        result.produced = dict(produced or {})
        return result

    def __reduce__(self) -> tuple[Any, ...]:  # copy, deepcopy, pickle, torch.save
        return (Result, (self[0], self[1], self.stages, self.produced))

    @property
    def model(self) -> nn.Module:
        return self[0]

    @property
    def history(self) -> History:
        return self[1]

# Which device of its kind a run uses, how visibly it runs, and whether it is cached: never part of a
# key. The kind of device is (a CUDA run trains under bf16 autocast, a CPU run in float32).
NOT_KEYED = ("cache", "device", "progress", "desc")

# How a run is kept and watched, never what it computes: a resumed run equals an unbroken one, and a
# cache hit trains nothing and writes no log. A recipe that takes these passes them to its fit; its key
# leaves them out (``val`` is keyed: it chooses the returned epoch).
RUN_KNOBS_NOT_KEYED = ("checkpoint", "resume", "log", "tensorboard", "callbacks")


def as_factory(model: ModelOrFactory, role: str = "student") -> Callable[[], nn.Module]:
    """A factory for a recipe: a fresh copy of ``model`` on each call (its weights are the starting
    point; ``model`` itself is never trained), or ``model`` itself when it is already a factory."""
    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(model)
    if callable(model):
        return model
    raise TypeError(f"{role} must be an nn.Module or a function returning one, got {type(model).__name__}")


@dataclass
class Plan(Generic[M]):
    """What a :func:`recipe` trains: ``build()`` makes the untrained model (called after seeding),
    ``run(model)`` trains it in place and returns its History (or one per stage); ``finish(model,
    trained)``, if given, makes the recipe's :class:`Result` of them (trained or loaded alike;
    by default ``Result(model, history)``)."""

    build: Callable[[], M]
    run: Callable[[M], Trained]
    finish: Callable[[M, Trained], Result] | None = None


def _keyed_arguments(
    signature: inspect.Signature, bound: inspect.BoundArguments, left_out: Sequence[str]
) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in left_out:
            continue
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            parts.update({k: v for k, v in value.items() if k not in left_out})
        else:
            parts[name] = value
    return parts


def _argument(bound: inspect.BoundArguments, name: str, default: Any = None) -> Any:
    if name in bound.arguments:
        return bound.arguments[name]
    for parameter, value in bound.arguments.items():
        if bound.signature.parameters[parameter].kind is inspect.Parameter.VAR_KEYWORD:
            return value.get(name, default)
    return default


def recipe(
    name: str, *, factories: Sequence[str] = (), not_keyed: Sequence[str] = ()
) -> Callable[[Callable[..., Plan]], Callable[..., Result]]:
    """Turn ``plan_of(...) -> Plan`` into a recipe ``(...) -> Result`` (the trained model and its
    History, or what the plan's ``finish`` makes of them).

    The decorated function must take ``seed`` and ``cache``. ``factories`` names its arguments
    that build models (keyed by what they build); ``not_keyed`` names further arguments that do
    not change the result (e.g. whether an intermediate is precomputed). Every other argument,
    including ``**knobs``, is in the key.
    """
    left_out = (*NOT_KEYED, *factories, *not_keyed)

    def decorate(plan_of: Callable[..., Plan]) -> Callable[..., Result]:
        signature = inspect.signature(plan_of)
        missing = [p for p in ("seed", "cache") if p not in signature.parameters]
        if missing:
            raise TypeError(f"recipe {plan_of.__qualname__} must take {missing}")

        @functools.wraps(plan_of)
        def call(*args: Any, **kwargs: Any) -> Result:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            plan = plan_of(*args, **kwargs)
            seed = bound.arguments["seed"]

            def build() -> nn.Module:
                runtime.seed_everything(seed)
                return plan.build()

            if bound.arguments["cache"]:
                parts = _keyed_arguments(signature, bound, left_out)
                parts["device type"] = runtime.device(_argument(bound, "device")).type
                model, result = kd_cache.trained(build, plan.run, name, **parts)
                model.to(runtime.device(_argument(bound, "device")))
            else:
                model = build()
                result = plan.run(model)
            return Result(model, result) if plan.finish is None else plan.finish(model, result)

        return call

    return decorate


@recipe("model", factories=("model",), not_keyed=RUN_KNOBS_NOT_KEYED)
def train_model(
    model: ModelOrFactory,
    data: Tensors | tuple[Tensor, ...] | Iterable[tuple[Tensor, ...]],
    objective: Objective = train.cross_entropy,
    *,
    test: Tensors | tuple[Tensor, Tensor] | None = None,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    schedule: str | train.Steps | None = None,
    augment: Augment | None = None,
    device: str | torch.device | None = None,
    cache: bool = False,
    progress: bool | None = None,
    desc: str = "train",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    val: Tensors | tuple[Tensor, Tensor] | None = None,
    log: str | os.PathLike | None = None,
    tensorboard: str | os.PathLike | None = None,
    callbacks: Sequence[loggers.Callback] | loggers.Callback = (),
) -> Plan:
    """Seed with ``seed``, build ``model`` (a factory, or a module whose copy is trained) and
    :func:`~kdlab.train.fit` it on ``data`` with ``objective``; returns the :class:`Result`
    ``(model, History)``.

    ``data`` is ``Tensors``, ``(x, y)`` or ``(x, y, teacher_logits, ...)``, shuffled together into
    a :class:`~kdlab.data.TensorLoader` of ``batch_size``; or a loader already made (a
    ``DataLoader``, any iterable of batches), used as it is (not with ``cache``: a key needs the
    data's content). ``augment`` (:mod:`kdlab.augment`) shifts and flips the inputs of every
    batch on the device (tensors only). Max-norm layers (:class:`kdlab.models.MaxNormLinear`) are
    projected after every step. With ``cache`` the result is trained once per key (:func:`recipe`).

    ``checkpoint``/``resume`` (:func:`~kdlab.train.fit`'s: a resumed run equals an unbroken one, so
    they are not keyed), ``log`` (a CSV of the epochs' rows), ``tensorboard`` (a folder of
    TensorBoard events; neither log is keyed: a cache hit trains nothing and writes none) and
    ``val`` (a validation split: the weights of the epoch with the fewest val errors are returned,
    ``History.best_epoch`` names it; keyed, as it changes the result) and ``callbacks`` (called with
    each epoch's row and the model; not keyed) go to :func:`~kdlab.train.fit`.
    """
    make = as_factory(model, "model")
    where = runtime.device(device)
    if isinstance(data, Tensors):
        tensors: tuple[Tensor, ...] | None = data.tensors
    elif isinstance(data, (tuple, list)):
        tensors = tuple(data)
    elif cache:
        raise ValueError(
            f"cache=True needs the training data as tensors (the cache key holds their content), got a "
            f"{type(data).__name__}; pass Tensors or a tuple of tensors, or cache=False"
        )
    else:
        tensors = None
    if augment is not None and tensors is None:
        raise ValueError(
            f"augment works on tensors in memory (it augments the TensorLoader's batches), got a "
            f"{type(data).__name__}; augment in your own loader instead, or pass tensors"
        )

    def run(net: nn.Module) -> History:
        loader = data
        if tensors is not None:
            loader = TensorLoader(*tensors, batch_size=batch_size, seed=seed, device=where, augment=augment)
        return train.fit(
            net, loader, objective, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
            schedule=schedule, test=test, device=where, after_step=models.constrain_, progress=progress,
            desc=desc, checkpoint=checkpoint, resume=resume, val=val, log=log, tensorboard=tensorboard,
            callbacks=callbacks,
        )

    return Plan(make, run)
