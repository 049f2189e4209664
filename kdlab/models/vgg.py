"""VGG-style conv nets built from configuration lists, as in the mutual-learning seed (004).

A configuration lists the layers in order: an integer is a 3x3 convolution of that many output
channels (padding 1, then a ReLU), ``"M"`` a 2x2 max-pool of stride 2, ``"G"`` marks the
teacher's guided layer and ``"H"`` the student's hint layer. The two markers add an
``nn.Identity`` named ``guided`` / ``hint`` at that place, so ``capture(model, "guided")``
reads the activation just before it (the preceding ReLU's output).

Words: source 004 calls the teacher's layer "guided" and the student's "hint"; FitNets (Romero
et al. 2015) uses them the other way round (the teacher's *hint* guides the student's *guided*
layer). kdlab names the points after the seed's markers, so ``G`` -> ``guided`` (teacher) and
``H`` -> ``hint`` (student), and :func:`kdlab.losses.features.hint_loss` takes its arguments as
``student_features`` and ``teacher_features`` to stay clear of either word.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from kdlab import _checks

# Source 004: the teacher has 2,440,394 parameters, the student 1,497,434 (CIFAR-10, see vgg()).
TEACHER_CFG = (32, "M", 64, "M", 128, 128, "G", "M", 256, 256, "M", 256, 256, "M")
STUDENT_CFG = (16, 16, "M", 32, 32, "M", 64, 64, 64, "H", "M", 128, 128, 128, "M", 256, 256, "M")

MARKERS = {"M": "pool", "G": "guided", "H": "hint"}


def _spatial_size(cfg: Sequence[int | str], image_size: int, ceil_mode: bool) -> int:
    size = image_size
    for k, item in enumerate(cfg):
        if item == "M":
            size = -(-size // 2) if ceil_mode else size // 2
            if size < 1:
                raise ValueError(
                    f"image_size {image_size} is too small for the max-pools of cfg: cfg[{k}] would pool "
                    "a 1x1 map to 0x0; pass ceil_mode=True (28 -> 14 -> 7 -> 4 -> 2 -> 1) or pad the images"
                )
    return size


def vgg(
    cfg: Sequence[int | str],
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    batch_norm: bool = False,
    hidden: Sequence[int] = (256, 256),
    dropout: float = 0.0,
    ceil_mode: bool = True,
) -> nn.Sequential:
    """A VGG-style net (Simonyan & Zisserman 2015) from a configuration list of source 004.

    Layers, in order (module names in brackets): for each integer of ``cfg`` a 3x3 conv with
    bias and padding 1 (``conv1``, ``conv2``, ...), optionally batch norm (``bn1``, ...), and a
    ReLU (``relu1``, ...); for each ``"M"`` a 2x2 max-pool (``pool1``, ...); ``"G"`` and ``"H"``
    add the feature points ``guided`` and ``hint``. Then ``flatten``, a ReLU classifier with
    the ``hidden`` widths (``fc1``, ``fc_relu1``, ...; ``fc_dropout1``, ... when ``dropout``
    > 0) and the ``logits`` layer.

    The defaults reproduce source 004's counts exactly on CIFAR-10 (32x32x3, 10 classes):
    2,440,394 parameters for ``TEACHER_CFG`` and 1,497,434 for ``STUDENT_CFG``. The difference
    of the two counts, 942,960, does not depend on the classifier (both nets end in 256
    channels at 1x1) and is met only by convs with biases and no batch norm (with affine
    parameters); the remaining 134,154 are a 256-256-256-10 classifier with biases. No head
    with one hidden layer fits; among two hidden layers (a, b) the integer solutions of
    257a + ab + 11b = 134,144 are (8, 6952), (16, 4816), (46, 2146), (70, 1434), (78, 1282),
    (160, 544), (256, 256) and (502, 10), and (256, 256) is the only one with VGG's two equal
    hidden widths (its 4096-4096, scaled to the last conv width). Dropout has no parameters
    and the seed does not mention it, so it is off by default.

    The head's input size is computed from ``image_size``. The pools use ``ceil_mode=True``,
    which is VGG's floor on every even size (CIFAR-10: 32 -> 16 -> 8 -> 4 -> 2 -> 1, so the
    counts above are unchanged) and keeps an odd size from vanishing: on MNIST
    (``in_channels=1, image_size=28``) the five pools give 28 -> 14 -> 7 -> 4 -> 2 -> 1, where
    floor pooling would reach 0 at the fifth pool (an error with ``ceil_mode=False``).

    Shapes: (batch, in_channels, image_size, image_size) -> (batch, num_classes).
    """
    cfg = list(cfg)
    _checks.at_least("num_classes", num_classes, 1)
    _checks.at_least("in_channels", in_channels, 1)
    _checks.at_least("image_size", image_size, 1)
    _checks.in_range("dropout", dropout, 0.0, 1.0)
    hidden = list(hidden)
    for k, width in enumerate(hidden):
        _checks.at_least(f"hidden[{k}]", width, 1)
    seen: set[str] = set()
    for k, item in enumerate(cfg):
        valid_width = isinstance(item, int) and not isinstance(item, bool) and item >= 1
        if not valid_width and not (isinstance(item, str) and item in MARKERS):
            raise ValueError(
                f"cfg[{k}] must be a positive integer (conv width) or one of the markers "
                f"{', '.join(repr(m) for m in MARKERS)}, got {item!r}"
            )
        if item in ("G", "H"):
            if item in seen:
                raise ValueError(
                    f"cfg marks {item!r} more than once (cfg[{k}]); each feature point is unique"
                )
            seen.add(item)
    if not any(isinstance(item, int) for item in cfg):
        raise ValueError(f"cfg must hold at least one conv width, got {cfg}")
    side = _spatial_size(cfg, image_size, ceil_mode)

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, convs, pools = in_channels, 0, 0
    for item in cfg:
        if item == "M":
            pools += 1
            layers[f"pool{pools}"] = nn.MaxPool2d(2, 2, ceil_mode=ceil_mode)
        elif isinstance(item, str):
            layers[MARKERS[item]] = nn.Identity()
        else:
            convs += 1
            layers[f"conv{convs}"] = nn.Conv2d(channels, item, 3, padding=1)
            if batch_norm:
                layers[f"bn{convs}"] = nn.BatchNorm2d(item)
            layers[f"relu{convs}"] = nn.ReLU()
            channels = item
    layers["flatten"] = nn.Flatten()
    width = channels * side * side
    for k, out in enumerate(hidden, start=1):
        layers[f"fc{k}"] = nn.Linear(width, out)
        layers[f"fc_relu{k}"] = nn.ReLU()
        if dropout:
            layers[f"fc_dropout{k}"] = nn.Dropout(dropout)
        width = out
    layers["logits"] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)
