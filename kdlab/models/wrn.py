"""Wide residual networks (Zagoruyko & Komodakis 2016) as the CIFAR-100 distillation benchmark builds them.

WRN-d-k has ``n = (d - 4) / 6`` pre-activation blocks in each of three stages of 16k, 32k and
64k channels, after a 16-channel 3x3 conv; the benchmark of CRD (Tian et al. 2020) uses
WRN-16-1, WRN-16-2, WRN-40-1 and WRN-40-2 with no dropout. :func:`kdlab.models.create` builds
them by name; :data:`kdlab.models.cifar.FEATURE_POINTS` lists their feature points.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from kdlab import _checks
from kdlab.models._parts import add_stages, with_head


class PreActBlock(nn.Module):
    """Zagoruyko & Komodakis (2016), fig. 1(c) without dropout: BN-ReLU-conv3x3, BN-ReLU-conv3x3.

    ``conv2(relu2(bn2(conv1(relu1(bn1(x)))))) + shortcut``, with no activation after the sum
    (the next block, or the net's final batch norm, starts with one). When the block keeps its
    width the shortcut is ``x`` itself; when it widens (the first block of a stage, except
    WRN-d-1's first stage, whose 16 channels equal the stem's) the shortcut is a 1x1 conv of
    stride ``stride`` and no bias applied to ``relu1(bn1(x))``, the pre-activated input, as
    the benchmark's code does. ``conv1`` carries the stride, so ``relu2`` is the block's first
    map at its output size.

    Shapes: (batch, in_channels, h, w) -> (batch, out_channels, h / stride, w / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        # The published block tests only the widths (a stride-2 block of equal widths would
        # add an unsampled x); every stage that halves the size here also widens.
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            if in_channels != out_channels
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(activated))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


def wide_resnet(depth: int, widen_factor: int, *, num_classes: int = 100) -> nn.Sequential:
    """Zagoruyko & Komodakis (2016), table 1: WRN-depth-widen_factor for 32x32 images.

    Modules, with their output shapes for a (batch, 3, 32, 32) input and k = ``widen_factor``:
    ``stem`` (3x3 conv, 16 channels, no bias: (batch, 16, 32, 32)), ``stage1`` (16k, 32, 32),
    ``stage2`` (32k, 16, 16), ``stage3`` (64k, 8, 8), each of n = (depth - 4) / 6
    :class:`PreActBlock` named ``block1`` ... ``blockn`` (stages 2 and 3 halve the size in
    their first block); then the final ``bn`` and ``relu`` (the pre-activation net's last
    activation), global average ``pool`` (64k, 1, 1), ``flatten`` (64k) and the classifier
    ``fc`` (num_classes). Stem and stage outputs are the benchmark code's ``f0`` ... ``f3``,
    ``flatten`` its ``f4``; the stage outputs are sums before batch norm.

    Dropout has no parameters and the benchmark sets its rate to 0, so the blocks have none.
    The benchmark pools with a fixed 8x8 window; adaptive pooling is the same on 32x32 inputs.
    Convs start from He et al. (2015)'s normal initialisation (fan out), the classifier's bias
    from 0, as in the benchmark's code.

    Shapes: (batch, 3, h, w) -> (batch, num_classes).
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"depth must be 6n + 4 for an integer n >= 1 (10, 16, 22, 28, 40, ...), got {depth!r}"
        )
    _checks.at_least("widen_factor", widen_factor, 1)
    _checks.at_least("num_classes", num_classes, 1)
    blocks = (depth - 4) // 6
    widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["stem"] = nn.Conv2d(3, 16, 3, padding=1, bias=False)
    channels = add_stages(layers, PreActBlock, 16, widths, blocks)
    layers["bn"] = nn.BatchNorm2d(channels)
    layers["relu"] = nn.ReLU()
    model = with_head(layers, channels, num_classes)
    nn.init.zeros_(model.fc.bias)
    return model
