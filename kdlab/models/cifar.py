"""The CIFAR-100 distillation benchmark's networks, by name (Tian et al. 2020, CRD).

Tian, Krishnan and Isola, "Contrastive Representation Distillation" (ICLR 2020), compare
distillation methods on CIFAR-100 with one zoo of teachers and students, and later work
(mdistiller among it) reuses the same definitions: CIFAR ResNets (He et al. 2016, sec. 4.2),
their 4x wider ``x4`` versions, wide ResNets (Zagoruyko & Komodakis 2016, in
:mod:`kdlab.models.wrn`) and VGG nets with batch norm (Simonyan & Zisserman 2015).
:func:`create` builds each with the layers of those definitions, hence their parameter counts
(resnet56: 861,620 for 100 classes; the table is in ``tests/test_models_cifar.py``).

Every network is an ``nn.Sequential`` whose feature points are module names for
:func:`kdlab.features.capture`: :data:`FEATURE_POINTS` lists them per name (the stem, each
stage, the pooled and flattened pre-logit feature, the logits ``fc``), and :data:`FSP_PAIRS`
the (first, last) map of each section that keeps one spatial size, for FSP. The nets are
plain convs, batch norms, element-wise sums and pools, with no ``view``, so they run in
``torch.channels_last`` as they do contiguous.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence

from torch import nn

from kdlab import _checks
from kdlab.models._parts import add_stages, with_head
from kdlab.models.resnet import BasicBlock
from kdlab.models.wrn import wide_resnet


def cifar_resnet(depth: int, widths: Sequence[int], *, num_classes: int = 100) -> nn.Sequential:
    """He et al. (2016), sec. 4.2, as the benchmark defines it: ``depth = 6n + 2`` with basic blocks.

    ``widths`` are four channel counts, the stem's and the three stages': (16, 16, 32, 64) for
    resnet8 ... resnet110, (32, 64, 128, 256) for the ``x4`` nets. Modules, with their output
    shapes for a (batch, 3, 32, 32) input: ``stem`` (3x3 conv, batch norm, ReLU:
    (widths[0], 32, 32)), ``stage1`` (widths[1], 32, 32), ``stage2`` (widths[2], 16, 16),
    ``stage3`` (widths[3], 8, 8), each of n :class:`BasicBlock` named ``block1`` ...
    ``blockn``; then global average ``pool`` (widths[3], 1, 1), ``flatten`` (widths[3]) and
    the classifier ``fc``. These are the benchmark code's ``f0`` ... ``f4`` (after ReLU).

    Shortcuts are 1x1 convs with batch norm wherever size or width changes (in the first
    block of stages 2 and 3, and of stage 1 in the ``x4`` nets, where the stem's 32 channels
    become 64); the benchmark's code also has a bottleneck block, but selects it only by name
    and none of its named nets uses it. The benchmark pools with a fixed 8x8 window; adaptive
    pooling is the same on 32x32 inputs. Convs start from He et al. (2015)'s normal
    initialisation (fan out), as in the benchmark's code.

    Shapes: (batch, 3, h, w) -> (batch, num_classes).
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 for an integer n >= 1 (8, 14, 20, 32, ...), got {depth!r}")
    widths = list(widths)
    if len(widths) != 4:
        raise ValueError(f"widths must list the stem's and three stages' channels, got {widths}")
    for k, width in enumerate(widths):
        _checks.at_least(f"widths[{k}]", width, 1)
    _checks.at_least("num_classes", num_classes, 1)
    blocks = (depth - 2) // 6

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["stem"] = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(widths[0]),
            relu=nn.ReLU(),
        )
    )
    # The benchmark's option B: a 1x1 conv and batch norm on the shortcut where the shape changes.
    block = functools.partial(BasicBlock, projection=True)
    channels = add_stages(layers, block, widths[0], widths[1:], blocks)
    return with_head(layers, channels, num_classes)


# The benchmark's VGG configurations: the 3x3 conv widths of the stem and the four stages.
VGG_CFGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def cifar_vgg(cfg: Sequence[Sequence[int]], *, num_classes: int = 100) -> nn.Sequential:
    """Simonyan & Zisserman (2015)'s VGG with batch norm, as the benchmark cuts it for CIFAR.

    ``cfg`` lists five sections of 3x3 conv widths (:data:`VGG_CFGS`). Each conv (padding 1,
    with a bias, as the benchmark's code has it even before batch norm) is followed by batch
    norm and a ReLU (``conv1``, ``bn1``, ``relu1``, ...). Modules, with their output shapes
    for a (batch, 3, 32, 32) input: ``stem`` (cfg[0][-1], 32, 32), then ``stage1`` (16x16),
    ``stage2`` (8x8) and ``stage3`` (4x4), each starting with a 2x2 max-``pool`` of stride 2,
    and ``stage4`` (4x4, no pool), each of the last widths of its cfg entry; then global
    average ``pool`` (1, 1), ``flatten`` and the one linear classifier ``fc`` (VGG's three
    fully connected layers are dropped). These are the benchmark code's ``f0`` ... ``f5``.

    The benchmark's code pools before its last section only for 64x64 inputs; kdlab builds
    the 32x32 net (other sizes run, with stage 4 at stage 3's size). Convs start from He et
    al. (2015)'s normal initialisation (fan out) with zero bias, the classifier from N(0,
    0.01^2) with zero bias, as in the benchmark's code.

    Shapes: (batch, 3, h, w) -> (batch, num_classes).
    """
    cfg = [list(section) for section in cfg]
    if len(cfg) != 5 or not all(cfg):
        raise ValueError(f"cfg must list five non-empty sections of conv widths, got {cfg}")
    for k, section in enumerate(cfg):
        for j, width in enumerate(section):
            _checks.at_least(f"cfg[{k}][{j}]", width, 1)
    _checks.at_least("num_classes", num_classes, 1)

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 3
    for k, section in enumerate(cfg):
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        if k in (1, 2, 3):
            parts["pool"] = nn.MaxPool2d(2, 2)
        for j, width in enumerate(section, start=1):
            parts[f"conv{j}"] = nn.Conv2d(channels, width, 3, padding=1)
            parts[f"bn{j}"] = nn.BatchNorm2d(width)
            parts[f"relu{j}"] = nn.ReLU()
            channels = width
        layers["stem" if k == 0 else f"stage{k}"] = nn.Sequential(parts)
    model = with_head(layers, channels, num_classes)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.zeros_(module.bias)
    nn.init.normal_(model.fc.weight, 0.0, 0.01)
    nn.init.zeros_(model.fc.bias)
    return model


_SMALL, _X4 = (16, 16, 32, 64), (32, 64, 128, 256)
_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    **{
        f"resnet{depth}": (lambda k, depth=depth: cifar_resnet(depth, _SMALL, num_classes=k))
        for depth in (8, 14, 20, 32, 44, 56, 110)
    },
    "resnet8x4": lambda k: cifar_resnet(8, _X4, num_classes=k),
    "resnet32x4": lambda k: cifar_resnet(32, _X4, num_classes=k),
    **{
        f"wrn_{depth}_{widen}": (lambda k, d=depth, w=widen: wide_resnet(d, w, num_classes=k))
        for depth in (16, 40)
        for widen in (1, 2)
    },
    **{name: (lambda k, cfg=cfg: cifar_vgg(cfg, num_classes=k)) for name, cfg in VGG_CFGS.items()},
}

NAMES: tuple[str, ...] = tuple(_BUILDERS)

FAMILY: dict[str, str] = {
    name: "resnet" if name.startswith("resnet") else "wrn" if name.startswith("wrn") else "vgg"
    for name in NAMES
}

# Feature points of each family, in forward order (shapes in the builders' docstrings).
_POINTS = {
    "resnet": ("stem", "stage1", "stage2", "stage3", "pool", "flatten", "fc"),
    "wrn": ("stem", "stage1", "stage2", "stage3", "pool", "flatten", "fc"),
    "vgg": ("stem", "stage1", "stage2", "stage3", "stage4", "pool", "flatten", "fc"),
}
FEATURE_POINTS: dict[str, tuple[str, ...]] = {name: _POINTS[FAMILY[name]] for name in NAMES}

# For kdlab.losses.features.fsp_loss: the first and last map of each section that keeps one
# spatial size (32, 16, 8 and, for VGG, 4 pixels on CIFAR). A ResNet section starts at its
# input (the stem's output) or, after a stride-2 block, at that block's first conv's
# activation; a WRN block's first map at its size is ``relu2`` (``relu1`` activates its
# input); a VGG section starts at its pool's output, and its 4-pixel section spans stages 3
# and 4. The stem of vgg8 has one conv, so its pair is one map twice (a Gram matrix).
_FSP = {
    "resnet": (("stem", "stage1"), ("stage2.block1.relu1", "stage2"), ("stage3.block1.relu1", "stage3")),
    "wrn": (("stem", "stage1"), ("stage2.block1.relu2", "stage2"), ("stage3.block1.relu2", "stage3")),
    "vgg": (
        ("stem.relu1", "stem"),
        ("stage1.pool", "stage1"),
        ("stage2.pool", "stage2"),
        ("stage3.pool", "stage4"),
    ),
}
FSP_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {name: _FSP[FAMILY[name]] for name in NAMES}


def create(name: str, num_classes: int = 100) -> nn.Module:
    """Build the benchmark network ``name`` (one of :data:`NAMES`) for ``num_classes`` classes.

    >>> teacher = create("resnet32x4")          # 7,433,860 parameters for CIFAR-100
    >>> with capture(teacher, FEATURE_POINTS["resnet32x4"]) as features:
    ...     logits = teacher(images)            # (batch, 3, 32, 32) -> (batch, 100)

    A fresh, randomly initialised ``nn.Sequential`` (nothing is downloaded); its feature
    points are :data:`FEATURE_POINTS` ``[name]``, its FSP pairs :data:`FSP_PAIRS` ``[name]``.

    Shapes: (batch, 3, 32, 32) -> (batch, num_classes).
    """
    _checks.choice("name", name, NAMES)
    _checks.at_least("num_classes", num_classes, 2)
    return _BUILDERS[name](num_classes)
