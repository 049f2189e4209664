"""Source 004's experiment: hint-pretrained mutual learning. Each student's layers up to its hint
point ``H`` are first trained to match the teacher's guided layer ``G`` (FitNets' hint stage,
Romero et al. 2015, through a regressor), each from its own random start; then the students
learn together by Deep Mutual Learning (:mod:`kdlab.methods.mutual`).

The nets are :func:`kdlab.models.vgg.vgg` built from source 004's configuration lists;
:func:`scaled_vgg` divides every width by a factor, for runs on a CPU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import _checks, runtime
from kdlab.data import TensorLoader, Tensors
from kdlab.methods import mutual
from kdlab.methods.common import ModelOrFactory, Plan, Result, as_factory, recipe
from kdlab.methods.fitnets import hint_objective
from kdlab.models.regressor import regressor
from kdlab.models.vgg import vgg
from kdlab.train import History, fit

INITS = ("default", "kaiming")


def scaled_vgg(
    cfg: Sequence[int | str],
    width: float = 1.0,
    *,
    hidden: Sequence[int] = (256, 256),
    init: str = "default",
    **vgg_knobs: Any,
) -> nn.Sequential:
    """:func:`kdlab.models.vgg.vgg` with every conv width of ``cfg`` and every ``hidden`` width
    multiplied by ``width`` (rounded, at least 1); the markers stay where they are. ``width=1``
    with ``init="default"`` is ``vgg(cfg, hidden=hidden, ...)`` itself: source 004's nets.

    ``init="kaiming"`` redraws every conv and linear weight from He et al.'s (2015) normal
    distribution for ReLU nets (std sqrt(2 / fan_in)) and zeroes the biases. PyTorch's default
    (uniform, std sqrt(1 / (3 fan_in))) shrinks the signal at each layer; through the student's
    13 convs without batch norm it leaves thin nets at chance for hundreds of steps. Source 004
    does not say which it used.
    """
    _checks.positive("width", width)
    _checks.choice("init", init, INITS)
    cfg = list(cfg)
    scaled = [max(1, round(item * width)) if isinstance(item, int) and not isinstance(item, bool) else item
              for item in cfg]
    model = vgg(scaled, hidden=[max(1, round(h * width)) for h in hidden], **vgg_knobs)
    if init == "kaiming":
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return model


def prefix(model: nn.Module, point: str) -> nn.Sequential:
    """The layers of a sequential ``model`` up to and including the feature point ``point``
    (``"hint"`` for a student, ``"guided"`` for a teacher), sharing the model's modules: training
    the prefix trains those layers of the model. ``ValueError`` when the model has no such point."""
    names = [name for name, _ in model.named_children()]
    if point not in names:
        marker = {"hint": "'H'", "guided": "'G'"}.get(point, repr(point))
        raise ValueError(
            f"the model has no feature point {point!r}: hints need a {marker} marker in its cfg "
            f"(its layers are {names})"
        )
    layers = OrderedDict()
    for name, module in model.named_children():
        layers[name] = module
        if name == point:
            break
    return nn.Sequential(layers)


def hint_targets(teacher: nn.Module, x: Tensor, *, point: str = "guided", batch_size: int = 500) -> Tensor:
    """The teacher's features at ``point`` (its ``G`` marker) on ``x``, in eval mode, computed once
    for all the hint training. Shapes: (n, ...) -> (n, c, h, w)."""
    teacher_prefix = prefix(teacher, point)
    was_training = teacher.training
    teacher.eval()
    try:
        device = next(teacher.parameters()).device
        with torch.inference_mode():
            parts = [teacher_prefix(x[i : i + batch_size].to(device)).float()
                     for i in range(0, len(x), batch_size)]
    finally:
        teacher.train(was_training)
    return torch.cat(parts)


def pretrain(
    student: nn.Module,
    x: Tensor,
    targets: Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    point: str = "hint",
    device: str | torch.device | None = None,
    progress: bool | None = None,
    desc: str = "hint",
) -> History:
    """Train ``student``'s layers up to ``point`` in place so that a regressor of them matches
    ``targets`` (:func:`hint_targets` of the teacher on ``x``), with Adam at ``lr`` (source 004:
    1e-3, 10 epochs). The regressor (:func:`kdlab.models.regressor.regressor`, a conv when the
    maps allow, with a ReLU like the teacher's point) is built here and dropped afterwards: the
    hint stage only places the student's first layers."""
    student_prefix = prefix(student, point)
    where = runtime.device(device)
    student_prefix.to(where)
    with torch.no_grad():
        shape = tuple(student_prefix(x[:1].to(where)).shape[1:])
    bridge = regressor(shape, tuple(targets.shape[1:]), relu=True)
    model = nn.Sequential(OrderedDict(prefix=student_prefix, regressor=bridge))
    loader = TensorLoader(x, targets, batch_size=batch_size, seed=seed, device=where)
    return fit(
        model, loader, hint_objective, epochs=epochs, lr=lr, device=where, progress=progress, desc=desc
    )


@recipe("hint+dml", factories=("students",))
def train(
    students: Sequence[ModelOrFactory],
    teacher: nn.Module,
    train: Tensors,
    *,
    stage_epochs: int,
    stage_lr: float = 1e-3,
    seed: int = 0,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    cache: bool = False,
    **mutual_knobs: Any,
) -> Plan:
    """Source 004's hint-pretrained mutual learning: seed with ``seed``, build one student per
    factory (each from its own random start, the same starts as :func:`kdlab.methods.mutual.train`
    with this seed; a module starts from a copy of its weights), pre-train each up to its ``H``
    point against the teacher's ``G`` point for ``stage_epochs`` at ``stage_lr``, then train the
    cohort with :func:`kdlab.methods.mutual.fit_cohort` (``mutual_knobs``: ``epochs``, ``test``,
    ``lr``, ``betas``, ``update``...; source 004: Adam 3e-4, betas (0.5, 0.99)). Returns the
    :class:`~kdlab.methods.common.Result` of the cohort and its History, with the hint stage of
    each student k in ``stages["hint, student k"]``; with ``cache=True`` all of it is trained once
    per key (:func:`kdlab.methods.common.recipe`)."""
    students = list(students)
    if len(students) < 2:
        raise ValueError(f"a cohort needs at least 2 students (K >= 2), got {len(students)}")
    _checks.at_least("stage_epochs", stage_epochs, 1)
    where = runtime.device(device)
    teacher.to(where)
    factories = [as_factory(s, f"students[{k}]") for k, s in enumerate(students)]

    def build() -> nn.ModuleList:
        cohort = mutual.cohort([make() for make in factories])
        for student in cohort:
            prefix(student, "hint")  # fail before any training when a student has no 'H'
        return cohort

    def run(cohort: nn.ModuleList) -> list[History]:
        targets = hint_targets(teacher, train.x.to(where))
        hints = [
            pretrain(student, train.x, targets, epochs=stage_epochs, lr=stage_lr, batch_size=batch_size,
                     seed=seed + k, device=where, progress=progress, desc=f"hint, student {k}")
            for k, student in enumerate(cohort)
        ]
        _, history = mutual.fit_cohort(
            cohort, train, seed=seed, batch_size=batch_size, device=where, progress=progress, **mutual_knobs
        )
        return [history, *hints]

    def finish(cohort: nn.ModuleList, trained: list[History]) -> Result:
        hints = {f"hint, student {k}": history for k, history in enumerate(trained[1:])}
        return Result(cohort, trained[0], {**hints, "cohort": trained[0]})

    return Plan(build, run, finish)
