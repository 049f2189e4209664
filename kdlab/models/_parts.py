"""What the residual and VGG nets share: their stages of blocks and their classifier head."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from torch import nn

Block = Callable[[int, int, int], nn.Module]


def add_stages(
    layers: OrderedDict[str, nn.Module], block: Block, channels: int, widths: Sequence[int], blocks: int
) -> int:
    """Append ``stage1`` .. ``stageN`` to ``layers``: ``blocks`` blocks ``block(in, out, stride)`` each,
    of ``widths[k]`` channels, the first block of every stage but the first halving the spatial
    size (stride 2). Returns the channels of the last stage."""
    for stage, width in enumerate(widths, start=1):
        stage_blocks: OrderedDict[str, nn.Module] = OrderedDict()
        for b in range(1, blocks + 1):
            stage_blocks[f"block{b}"] = block(channels, width, 2 if stage > 1 and b == 1 else 1)
            channels = width
        layers[f"stage{stage}"] = nn.Sequential(stage_blocks)
    return channels


def with_head(
    layers: OrderedDict[str, nn.Module], channels: int, num_classes: int, name: str = "fc"
) -> nn.Sequential:
    """``layers`` then global average pooling (``pool``), ``flatten`` and the linear classifier
    ``name``, as one ``nn.Sequential``, with every conv drawn from He et al.'s (2015) normal for ReLU
    nets (fan out), as the CIFAR benchmark's code initialises them. Shapes: maps (batch, channels,
    h, w) -> (batch, num_classes)."""
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers[name] = nn.Linear(channels, num_classes)
    model = nn.Sequential(layers)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model
