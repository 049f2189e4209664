"""Small CIFAR-style residual nets (He et al. 2016, sec. 4.2), the teachers and students of FSP.

Yim et al. (2017) distil a 26-layer residual teacher into an 8-layer student on CIFAR-10 (32
into 14 on CIFAR-100); their FSP matrices are taken inside the three sections that keep one
spatial size, and such nets share those sizes whatever their depth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from kdlab import _checks
from kdlab.models._parts import add_stages, with_head

# The first and last feature maps of each section, both at the section's spatial size, for
# kdlab.losses.features.fsp_loss. Section 1 starts at the stem's output (its input); sections
# 2 and 3 start by halving the size inside their first block, so their first map at the new
# size is that block's first conv (after batch norm and ReLU).
FSP_PAIRS = (
    ("stem", "stage1"),
    ("stage2.block1.relu1", "stage2"),
    ("stage3.block1.relu1", "stage3"),
)


class PadShortcut(nn.Module):
    """He et al.'s option A shortcut: subsample by ``stride`` and zero-pad the new channels.

    Parameter-free, so a residual net's parameter count is that of its convs, batch norms and
    classifier (ResNet-20 on CIFAR-10: 0.27M, as in the paper's Table 6).
    """

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels)) if self.extra_channels else x


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm, ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``.

    ``conv1`` carries the stride, so ``relu1`` is the block's first map at its output size. Where
    the shape changes, the shortcut is He et al.'s option A (:class:`PadShortcut`: subsample and
    zero-pad the channels, no parameters), or with ``projection`` option B (``shortcut.conv``, a
    1x1 conv of stride ``stride`` without bias, and ``shortcut.bn``), as the CIFAR-100 KD
    benchmark's nets have it (:func:`kdlab.models.cifar.cifar_resnet`).
    Shapes: (batch, in_channels, h, w) -> (batch, out_channels, h / stride, w / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, projection: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        elif projection:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(out_channels),
            ))
        else:
            self.shortcut = PadShortcut(stride, out_channels - in_channels)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def resnet(
    depth: int,
    widths: Sequence[int] = (16, 32, 64),
    *,
    num_classes: int = 10,
    in_channels: int = 3,
) -> nn.Sequential:
    """He et al. (2016), sec. 4.2: a residual net of ``depth = 6n + 2`` layers for small images.

    A 3x3 conv stem (``stem``: conv, batch norm, ReLU) and three stages (``stage1``,
    ``stage2``, ``stage3``) of n basic blocks each (``stageK.block1`` ... ``stageK.blockn``),
    of ``widths`` channels; stages 2 and 3 halve the spatial size in their first conv. Then
    global average pooling (``pool``), ``flatten`` and the ``logits`` layer: 6n convs in the
    stages, plus the stem and the classifier, make the depth. Convs have no bias (batch norm
    follows), shortcuts are the paper's parameter-free option A (:class:`PadShortcut`), and
    convs start from He et al. (2015)'s normal initialisation, as in the paper.

    Feature points: ``stem`` (the input of stage 1) and each stage's output; :data:`FSP_PAIRS`
    lists the same-size (first, last) map of each section for FSP. Any image size works:
    CIFAR-10's 32 -> 32, 16, 8 and MNIST's 28 (``in_channels=1``) -> 28, 14, 7. Depth 8, 14,
    20, 26 and 32 have n = 1, 2, 3, 4, 5 blocks per stage.

    Shapes: (batch, in_channels, h, w) -> (batch, num_classes).
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth must be 6n + 2 for an integer n >= 1 (8, 14, 20, 26, 32, ...), got {depth!r}"
        )
    widths = list(widths)
    if len(widths) != 3:
        raise ValueError(f"widths must list the three stages' channels, e.g. (16, 32, 64), got {widths}")
    for k, width in enumerate(widths):
        _checks.at_least(f"widths[{k}]", width, 1)
    if widths != sorted(widths):
        raise ValueError(f"widths must not decrease (option A shortcuts pad channels), got {widths}")
    _checks.at_least("num_classes", num_classes, 1)
    _checks.at_least("in_channels", in_channels, 1)
    blocks = (depth - 2) // 6

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["stem"] = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(widths[0]),
            relu=nn.ReLU(),
        )
    )
    channels = add_stages(layers, BasicBlock, widths[0], widths, blocks)
    return with_head(layers, channels, num_classes, name="logits")
