import pytest
import torch

from kdlab import features, metrics, models


def test_capture_reads_named_feature_points_and_removes_its_hooks():
    net = models.lenet(models.STUDENT_WIDTHS)
    x = torch.randn(2, 1, 28, 28)
    with features.capture(net, ["conv2", "fc"]) as found:
        logits = net(x)
    assert found["conv2"].shape == (2, 16, 7, 7)
    assert found["fc"].shape == (2, 32)
    assert logits.shape == (2, 10)
    assert all(not m._forward_hooks for m in net.modules())


def test_capture_of_an_unknown_layer_lists_close_matches_and_the_names():
    net = models.mlp((784, 800, 800, 10))
    with pytest.raises(KeyError, match=r"no layer named 'hiden1'; close matches: \['hidden1'"):
        with features.capture(net, "hiden1"):
            pass
    assert "hidden2" in features.layer_names(net)


def test_mlp_parameter_count_and_feature_points():
    net = models.mlp((784, 800, 800, 10))
    assert metrics.parameter_count(net) == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10
    with features.capture(net, ["hidden1", "hidden2"]) as found:
        net(torch.randn(3, 1, 28, 28))
    assert found["hidden1"].shape == (3, 800) and bool((found["hidden1"] >= 0).all())


def test_max_norm_projection_caps_each_units_incoming_weights():
    layer = models.MaxNormLinear(5, 4, max_norm=1.0)
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[3.0, 4, 0, 0, 0], [0.1, 0, 0, 0, 0], [0, 0, 2, 0, 0], [0, 0, 0, 0, 1]])
        )
    layer.project_()
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.tensor([1.0, 0.1, 1.0, 1.0]))
    torch.testing.assert_close(layer.weight[0], torch.tensor([0.6, 0.8, 0, 0, 0]))


def test_lenet_sizes_follow_tsnenet_and_digits():
    teacher = models.lenet(models.TEACHER_WIDTHS)
    conv = 1 * 32 * 25 + 32 + 32 * 64 * 25 + 64
    assert metrics.parameter_count(teacher) == conv + 64 * 7 * 7 * 512 + 512 + 512 * 10 + 10
    small = models.lenet((8, 16, 32), image_size=8)
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_model_constructors_reject_bad_sizes():
    with pytest.raises(ValueError, match="sizes must list >= 2 positive integers"):
        models.mlp((784,))
    with pytest.raises(ValueError, match="widths must be three positive integers"):
        models.lenet((8, 16))
    with pytest.raises(ValueError, match="image_size must be a multiple of 4"):
        models.lenet(image_size=30)
    with pytest.raises(ValueError, match=r"dropout must be in \[0.0, 1.0\], got 1.5"):
        models.mlp((4, 2), dropout=1.5)
