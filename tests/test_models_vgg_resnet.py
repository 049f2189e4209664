"""VGG nets of seed 004, FitNets regressors and CIFAR-style residual nets: counts, shapes, feature points."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdlab.features import capture
from kdlab.losses.features import fsp_loss, hint_loss
from kdlab.models.regressor import regressor
from kdlab.models.resnet import FSP_PAIRS, PadShortcut, resnet
from kdlab.models.vgg import STUDENT_CFG, TEACHER_CFG, vgg


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- vgg ---------------------------------------------------------------------------------------


def test_vgg_reproduces_the_seed_parameter_counts():
    # Seed 004: "The teacher has 2440394 parameters", the student "1497434 parameters" (CIFAR-10).
    assert count(vgg(TEACHER_CFG)) == 2_440_394
    assert count(vgg(STUDENT_CFG)) == 1_497_434


def test_vgg_count_by_hand_for_a_small_cfg():
    model = vgg((4, "M", 8, "G", "M"), num_classes=3, in_channels=2, image_size=8, hidden=(5,))
    convs = (3 * 3 * 2 * 4 + 4) + (3 * 3 * 4 * 8 + 8)  # 76 + 296
    head = (8 * 2 * 2 * 5 + 5) + (5 * 3 + 3)  # 8 -> 4 -> 2 pixels: 165 + 18
    assert count(model) == convs + head == 555


def test_vgg_batch_norm_adds_two_parameters_per_channel():
    widths = [item for item in TEACHER_CFG if isinstance(item, int)]
    assert count(vgg(TEACHER_CFG, batch_norm=True)) == 2_440_394 + 2 * sum(widths)


@pytest.mark.parametrize(
    ("cfg", "point", "channels"), [(TEACHER_CFG, "guided", 128), (STUDENT_CFG, "hint", 64)]
)
def test_vgg_shapes_on_cifar_and_mnist(cfg, point, channels):
    torch.manual_seed(0)
    cifar = vgg(cfg)
    with capture(cifar, point) as features:
        logits = cifar(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert features[point].shape == (2, channels, 8, 8)  # two pools before each marker

    mnist = vgg(cfg, in_channels=1, image_size=28)
    with capture(mnist, point) as features:
        logits = mnist(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    assert features[point].shape == (2, channels, 7, 7)
    # The map ends at 1x1 either way, so only the first conv loses 2 input channels' weights.
    first = next(item for item in cfg if isinstance(item, int))
    assert count(mnist) == count(cifar) - 2 * 9 * first


def test_vgg_marker_sees_the_activation_before_it():
    torch.manual_seed(1)
    model = vgg(TEACHER_CFG).eval()
    with capture(model, ["relu4", "guided"]) as features:
        model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(features["guided"], features["relu4"])


def test_vgg_ceil_mode_matches_floor_on_even_sizes_and_only_ceil_fits_mnist():
    torch.manual_seed(2)
    ceil = vgg(STUDENT_CFG).eval()
    floor = vgg(STUDENT_CFG, ceil_mode=False).eval()
    floor.load_state_dict(ceil.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ceil(x), floor(x))
    with pytest.raises(ValueError, match=r"image_size 28 .* cfg\[17\] .*ceil_mode=True"):
        vgg(STUDENT_CFG, in_channels=1, image_size=28, ceil_mode=False)


def test_vgg_head_follows_image_size():
    model = vgg(TEACHER_CFG, image_size=64)  # 64 / 2^5 = 2: the head sees 256 * 2 * 2 inputs
    assert model.get_submodule("fc1").in_features == 256 * 2 * 2
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_vgg_dropout_adds_layers_not_parameters():
    model = vgg(STUDENT_CFG, dropout=0.5, num_classes=100)
    assert isinstance(model.get_submodule("fc_dropout2"), nn.Dropout)
    assert count(model) == 1_497_434 + 90 * 256 + 90  # 90 more logits


@pytest.mark.parametrize("bad", ["X", -3, 0, True, 2.5])
def test_vgg_rejects_unknown_markers(bad):
    with pytest.raises(ValueError, match=r"cfg\[1\] must be a positive integer .*'M', 'G', 'H'"):
        vgg((16, bad, "M"))


def test_vgg_other_errors():
    with pytest.raises(ValueError, match="marks 'G' more than once"):
        vgg((16, "G", 16, "G"))
    with pytest.raises(ValueError, match="at least one conv width"):
        vgg(("M", "H"))
    with pytest.raises(ValueError, match="dropout must be in"):
        vgg(STUDENT_CFG, dropout=1.5)


# --- regressor ---------------------------------------------------------------------------------


def test_conv_regressor_for_the_seed_pair():
    torch.manual_seed(3)
    student, teacher = vgg(STUDENT_CFG), vgg(TEACHER_CFG)
    x = torch.randn(2, 3, 32, 32)
    with capture(student, "hint") as s, capture(teacher, "guided", detach=True) as t:
        student(x), teacher(x)
    r = regressor(s["hint"].shape[1:], t["guided"].shape[1:])
    conv = r[0]
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)  # 8 - 8 + 1
    assert count(r) == 1 * 1 * 64 * 128 + 128 == 8_320
    assert r(s["hint"]).shape == t["guided"].shape
    assert hint_loss(r(s["hint"]), t["guided"]).item() > 0


def test_conv_regressor_kernel_fills_the_size_gap():
    r = regressor((16, 10, 9), (32, 6, 6))
    assert r[0].kernel_size == (5, 4)  # 10 - 6 + 1, 9 - 6 + 1
    assert count(r) == 5 * 4 * 16 * 32 + 32
    assert r(torch.randn(2, 16, 10, 9)).shape == (2, 32, 6, 6)


@pytest.mark.parametrize(
    ("student_shape", "teacher_shape"),
    [((8, 4, 4), (16, 8, 8)), ((32,), (16,)), ((4, 3, 3), (12,))],
)
def test_fully_connected_regressor(student_shape, teacher_shape):
    r = regressor(student_shape, teacher_shape)
    n_in = torch.Size(student_shape).numel()
    n_out = torch.Size(teacher_shape).numel()
    assert not any(isinstance(m, nn.Conv2d) for m in r.modules())
    assert count(r) == n_in * n_out + n_out
    assert r(torch.randn(2, *student_shape)).shape == (2, *teacher_shape)


def test_fully_connected_regressor_count_for_the_seed_pair():
    # The chapter's contrast: the same pair with a fully connected regressor.
    r = regressor((64, 8, 8), (128, 8, 8))
    assert isinstance(r[0], nn.Conv2d)
    flat = regressor((64 * 8 * 8,), (128, 8, 8))
    assert count(flat) == 4096 * 8192 + 8192 == 33_562_624


def test_regressor_relu_and_errors():
    r = regressor((4, 5, 5), (6, 3, 3), relu=True)
    assert isinstance(r[-1], nn.ReLU)
    assert (r(torch.randn(3, 4, 5, 5)) >= 0).all()
    with pytest.raises(ValueError, match=r"teacher_shape must list positive integers .*got \(0, 3\)"):
        regressor((4, 5, 5), (0, 3))
    with pytest.raises(ValueError, match=r"student_shape must list positive integers .*got \(\)"):
        regressor((), (3,))


# --- resnet ------------------------------------------------------------------------------------


def test_resnet8_count_by_hand():
    stem = 3 * 3 * 3 * 16 + 2 * 16  # conv without bias + batch norm's scale and shift
    stage1 = 2 * (9 * 16 * 16 + 2 * 16)
    stage2 = (9 * 16 * 32 + 2 * 32) + (9 * 32 * 32 + 2 * 32)
    stage3 = (9 * 32 * 64 + 2 * 64) + (9 * 64 * 64 + 2 * 64)
    head = 64 * 10 + 10
    assert count(resnet(8)) == stem + stage1 + stage2 + stage3 + head == 75_290


@pytest.mark.parametrize("depth", [14, 20, 26, 32])
def test_resnet_each_extra_block_pair_adds_its_convs(depth):
    # Going from n to n + 1 blocks per stage adds one full-width block to each stage.
    per_block = sum(2 * (9 * w * w + 2 * w) for w in (16, 32, 64))
    assert count(resnet(depth)) == 75_290 + (depth - 8) // 6 * per_block


def test_resnet20_has_the_papers_027m():
    assert round(count(resnet(20)) / 1e6, 2) == 0.27  # He et al. (2016), Table 6


@pytest.mark.parametrize(("in_channels", "size", "sides"), [(3, 32, (32, 16, 8)), (1, 28, (28, 14, 7))])
def test_resnet_shapes_and_feature_points(in_channels, size, sides):
    torch.manual_seed(4)
    model = resnet(8, num_classes=7, in_channels=in_channels)
    names = ["stem", "stage1", "stage2", "stage3"]
    with capture(model, names + [first for first, _ in FSP_PAIRS]) as features:
        logits = model(torch.randn(2, in_channels, size, size))
    assert logits.shape == (2, 7)
    assert features["stem"].shape == (2, 16, sides[0], sides[0])
    for name, width, side in zip(names[1:], (16, 32, 64), sides, strict=True):
        assert features[name].shape == (2, width, side, side)
    for first, last in FSP_PAIRS:
        assert features[first].shape == features[last].shape


def test_fsp_between_resnet_teacher_and_student():
    torch.manual_seed(5)
    teacher, student = resnet(26).eval(), resnet(8)
    x = torch.randn(2, 3, 32, 32)
    names = [name for pair in FSP_PAIRS for name in pair]
    with capture(teacher, names, detach=True) as t, capture(student, names) as s:
        teacher(x), student(x)
    loss = fsp_loss([(s[a], s[b]) for a, b in FSP_PAIRS], [(t[a], t[b]) for a, b in FSP_PAIRS])
    loss.backward()
    assert loss.item() > 0
    assert student.get_submodule("stem.conv").weight.grad.abs().sum() > 0


def test_pad_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(6))
    out = PadShortcut(stride=2, extra_channels=2)(x)
    assert out.shape == (2, 5, 3, 3)
    torch.testing.assert_close(out[:, :3], x[:, :, ::2, ::2])
    assert (out[:, 3:] == 0).all()


@pytest.mark.parametrize("depth", [7, 9, 2, 0, "8", True])
def test_resnet_rejects_depths_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 2"):
        resnet(depth)


def test_resnet_width_errors():
    with pytest.raises(ValueError, match="three stages"):
        resnet(8, widths=(16, 32))
    with pytest.raises(ValueError, match="must not decrease"):
        resnet(8, widths=(32, 16, 64))
