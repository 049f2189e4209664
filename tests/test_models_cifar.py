"""CRD's CIFAR-100 benchmark zoo (Tian et al. 2020): names, counts by hand, feature points, channels-last."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from kdlab import models
from kdlab.features import capture
from kdlab.losses.features import fsp_matrix
from kdlab.models.cifar import FEATURE_POINTS, FSP_PAIRS, NAMES, create

CLASSES = 100


@functools.cache
def built(name: str) -> nn.Module:
    """Each network is built once for the whole file (the large ones take a moment to initialise)."""
    torch.manual_seed(0)
    return create(name, CLASSES).eval()


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- parameter counts by hand, from the benchmark's definitions --------------------------------
# RepDistiller's models/resnet.py, wrn.py and vgg.py (repeated by mdistiller), layer by layer.


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight and bias; the running statistics are buffers


def fc(c_in: int, classes: int) -> int:
    return c_in * classes + classes


def resnet_count(depth: int, widths: tuple[int, int, int, int], classes: int) -> int:
    """Stem conv + BN; per stage n basic blocks (two 3x3 convs + BNs), the first projecting with
    a 1x1 conv + BN when it halves the size (stages 2, 3) or changes the width; then fc."""
    n = (depth - 2) // 6
    total, c_in = conv(3, widths[0]) + bn(widths[0]), widths[0]
    for stage, c in enumerate(widths[1:], start=1):
        block = conv(c, c) + bn(c) + conv(c, c) + bn(c)
        first = conv(c_in, c) + bn(c) + conv(c, c) + bn(c)
        if stage > 1 or c_in != c:
            first += conv(c_in, c, 1) + bn(c)
        total += first + (n - 1) * block
        c_in = c
    return total + fc(c_in, classes)


def wrn_count(depth: int, k: int, classes: int) -> int:
    """Stem conv (16 channels); per group n pre-activation blocks (BN, 3x3 conv, BN, 3x3 conv),
    the first with a 1x1 shortcut conv when the width changes; final BN, then fc."""
    n = (depth - 4) // 6
    total, c_in = conv(3, 16), 16
    for c in (16 * k, 32 * k, 64 * k):
        block = bn(c) + conv(c, c) + bn(c) + conv(c, c)
        first = bn(c_in) + conv(c_in, c) + bn(c) + conv(c, c) + (conv(c_in, c, 1) if c_in != c else 0)
        total += first + (n - 1) * block
        c_in = c
    return total + bn(c_in) + fc(c_in, classes)


def vgg_count(cfg: list[list[int]], classes: int) -> int:
    """Each 3x3 conv with its bias and a BN (the ``_bn`` variants that the benchmark's names
    map to); pools have no parameters; one linear classifier on the 512 pooled channels."""
    total, c_in = 0, 3
    for c in [width for section in cfg for width in section]:
        total += conv(c_in, c, bias=True) + bn(c)
        c_in = c
    return total + fc(c_in, classes)


SMALL, X4 = (16, 16, 32, 64), (32, 64, 128, 256)
VGG_S = [[64], [128], [256], [512], [512]]  # vgg8
VGG_A = [[64], [128], [256, 256], [512, 512], [512, 512]]  # vgg11
VGG_B = [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]  # vgg13

BY_HAND = {
    **{f"resnet{d}": functools.partial(resnet_count, d, SMALL) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": functools.partial(resnet_count, 8, X4),
    "resnet32x4": functools.partial(resnet_count, 32, X4),
    "wrn_16_1": functools.partial(wrn_count, 16, 1),
    "wrn_16_2": functools.partial(wrn_count, 16, 2),
    "wrn_40_1": functools.partial(wrn_count, 40, 1),
    "wrn_40_2": functools.partial(wrn_count, 40, 2),
    "vgg8": functools.partial(vgg_count, VGG_S),
    "vgg11": functools.partial(vgg_count, VGG_A),
    "vgg13": functools.partial(vgg_count, VGG_B),
}

# The counts for 100 classes, as the formulas above give them (resnet56, resnet110 and vgg8
# were also added up by hand, layer by layer).
EXACT = {
    "resnet8": 83_892,
    "resnet14": 181_108,
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet44": 667_188,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "wrn_16_1": 180_916,
    "wrn_16_2": 703_284,
    "wrn_40_1": 569_780,
    "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028,
    "vgg11": 9_277_284,
    "vgg13": 9_462_180,
}

# Totals in millions as the CRD benchmark's tables print them (two decimals). They are not
# rounded one way: resnet110 (1.7366 M) and vgg8 (3.9650 M) are truncated, wrn_40_2 (2.2552 M)
# is rounded; every figure is one of the two readings of the exact count.
PUBLISHED_MILLIONS = {
    "resnet56": 0.86,
    "resnet110": 1.73,
    "resnet32x4": 7.43,
    "resnet8x4": 1.23,
    "wrn_40_2": 2.26,
    "wrn_16_2": 0.70,
    "vgg13": 9.46,
    "vgg8": 3.96,
}


def test_names_are_the_benchmarks_zoo():
    assert NAMES == (
        "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
        "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2",
        "vgg8", "vgg11", "vgg13",
    )  # fmt: skip
    assert models.create is create and models.NAMES is NAMES
    assert set(FEATURE_POINTS) == set(FSP_PAIRS) == set(NAMES)


def test_create_rejects_an_unknown_name_and_too_few_classes():
    with pytest.raises(ValueError, match=r"name must be one of \['resnet8', .*'vgg13'\], got 'resnet18'"):
        create("resnet18")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        create("resnet8", num_classes=1)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_follows_the_definition(name):
    assert BY_HAND[name](CLASSES) == EXACT[name]
    assert count(built(name)) == EXACT[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_parameter_count_matches_the_published_total(name):
    millions = EXACT[name] / 1e6
    readings = {round(millions, 2), math.floor(millions * 100) / 100}
    assert PUBLISHED_MILLIONS[name] in readings, (name, millions)


def test_other_class_counts_change_only_the_classifier():
    model = create("wrn_16_1", num_classes=10)
    assert count(model) == EXACT["wrn_16_1"] - 90 * (64 + 1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# --- feature points ----------------------------------------------------------------------------


def expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Per-example shapes of every feature point for a 32x32 input, from the definitions."""
    if name.startswith("vgg"):
        channels = {"stem": 64, "stage1": 128, "stage2": 256, "stage3": 512, "stage4": 512}
        sizes = {"stem": 32, "stage1": 16, "stage2": 8, "stage3": 4, "stage4": 4}
        last = 512
    else:
        if name.startswith("wrn"):
            k = int(name.split("_")[2])
            widths = (16, 16 * k, 32 * k, 64 * k)
        else:
            widths = X4 if name.endswith("x4") else SMALL
        channels = dict(zip(("stem", "stage1", "stage2", "stage3"), widths, strict=True))
        sizes = {"stem": 32, "stage1": 32, "stage2": 16, "stage3": 8}
        last = widths[3]
    shapes = {point: (channels[point], sizes[point], sizes[point]) for point in channels}
    return {**shapes, "pool": (last, 1, 1), "flatten": (last,), "fc": (CLASSES,)}


@pytest.mark.parametrize("name", NAMES)
def test_feature_points_capture_with_their_shapes(name):
    model = built(name)
    fsp_names = [point for pair in FSP_PAIRS[name] for point in pair]
    with torch.no_grad(), capture(model, list(FEATURE_POINTS[name]) + fsp_names) as features:
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, CLASSES)
    shapes = {point: tuple(features[point].shape[1:]) for point in FEATURE_POINTS[name]}
    assert shapes == expected_shapes(name)
    torch.testing.assert_close(features["fc"], logits)
    # FSP pairs: one spatial size per pair, one pair per size the net passes through.
    sizes = []
    for first, last in FSP_PAIRS[name]:
        assert features[first].shape[2:] == features[last].shape[2:], (first, last)
        sizes.append(features[last].shape[-1])
        assert fsp_matrix(features[first], features[last]).shape == (
            2, features[first].shape[1], features[last].shape[1],
        )  # fmt: skip
    assert sizes == ([32, 16, 8, 4] if name.startswith("vgg") else [32, 16, 8])


# --- channels-last -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet8x4", "wrn_16_2", "vgg8"])
def test_channels_last_gives_the_same_logits(name):
    model = create(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        contiguous = model(x)
        model = model.to(memory_format=torch.channels_last)
        with capture(model, "stage2") as features:
            last = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(last, contiguous, rtol=1e-4, atol=1e-5)
    # The maps stay channels-last through the net (no silent copies back to contiguous).
    assert features["stage2"].is_contiguous(memory_format=torch.channels_last)
