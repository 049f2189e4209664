"""Bugs a practitioner hit using kdlab on their own models and data (the project's issue), one test each."""

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from toys import FIT, net, toy

from kdlab import api as kdlab_api
from kdlab import cli, cli_distill, data, export, features, models
from kdlab.api import distill, mutual
from kdlab.book import runner
from kdlab.data import Tensors
from kdlab.methods import fitnets

ROOT = Path(__file__).resolve().parents[1]






# 1. A torch.export (.pt2) teacher.

def test_a_pt2_teacher_loaded_from_a_file_distils(tmp_path):
    split = data.load("digits", train_size=100, test_size=50)
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    export.export_program(teacher, split.train.x[:2], tmp_path / "t.pt2")
    teacher = cli_distill.load_module(tmp_path / "t.pt2", "teacher")
    student, history = distill(teacher, lambda: models.mlp((64, 16, 10)), split.train, split.test, **FIT)
    assert len(history) == 1 and 0.0 <= history.last("test_accuracy") <= 1.0
    program = torch.export.load(str(tmp_path / "t.pt2"))
    for given in (program, program.module()):  # the program itself, or its module, as a teacher
        _, history = distill(given, lambda: models.mlp((64, 16, 10)), split.train, split.test, **FIT)
        assert len(history) == 1
    argv = ["--teacher", str(tmp_path / "t.pt2"), "--student", "mlp((64, 16, 10))", "--data", "digits",
            "--train-size", "100", "--test-size", "50", "-p", "epochs=1", "--out", str(tmp_path / "out")]
    assert cli.main(["distill", *argv]) == 0
    with pytest.raises(ValueError, match=r"'fitnets' reads the teacher's intermediate layers"):
        distill(program, models.mlp((64, 16, 10)), split.train, method="fitnets", hint="x", guided="y", **FIT)


# 2. NaN or infinite values in the data.

def test_nan_or_inf_in_tensors_is_named_before_training():
    train = toy()
    train.x[3, 0, 0, 0] = float("nan")
    train.x[7, 0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match=r"train\.x holds 2 NaN/inf values at rows \[3, 7\]"):
        distill(net(), net, train, **FIT)
    with pytest.raises(ValueError, match=r"test\.x holds 2 NaN/inf values at rows \[3, 7\]"):
        distill(net(), net, toy(), train, **FIT)
    with pytest.raises(ValueError, match=r"train\.x holds 2 NaN/inf values"):
        mutual([net, net], train, **FIT)


def test_nan_in_a_loader_batch_is_named_as_it_arrives():
    train = toy()
    train.x[20, 0, 0, 0] = float("nan")
    loader = DataLoader(TensorDataset(*train.tensors), batch_size=16)
    with pytest.raises(ValueError, match=r"train batch 1: x holds 1 NaN/inf value.* at rows \[4\]"):
        distill(net(), net, loader, **FIT)
    with pytest.raises(ValueError, match=r"train batch 1: x holds 1 NaN/inf value"):
        mutual([net, net], loader, **FIT)


# 3. The caller's train/eval mode is left as it was.

def test_cache_with_a_loader_names_the_loader_before_training():
    loader = DataLoader(TensorDataset(*toy().tensors), batch_size=16)
    with pytest.raises(ValueError, match="cache=True needs the training set as tensors.*DataLoader"):
        distill(net(), net, loader, cache=True, **FIT)
    with pytest.raises(ValueError, match="cache=True needs the training set as tensors.*DataLoader"):
        mutual([net, net], loader, cache=True, **FIT)


def test_a_loader_leaves_the_teacher_in_its_mode():
    teacher = net().train()
    distill(teacher, net, DataLoader(TensorDataset(*toy().tensors), batch_size=16), **FIT)
    assert teacher.training


def test_export_leaves_the_model_in_its_mode(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Dropout(0.1)).train()
    export.export_program(model, torch.randn(2, 1, 4, 4))
    assert model.training
    pytest.importorskip("onnx")
    export.to_onnx(model, torch.randn(2, 1, 4, 4), tmp_path / "m.onnx")
    assert model.training


# 4. FSP's default pairs on a model that is not kdlab's.

def test_fsp_without_pairs_on_another_model_says_pairs_must_be_given():
    with pytest.raises(ValueError, match=r"pairs must be given.*'conv'"):
        distill(net(), net, toy(), method="fsp", **FIT)
    with pytest.raises(ValueError, match=r"teacher_pairs must be given.*'conv'"):
        distill(net(), lambda: models.resnet(8, in_channels=1, num_classes=3), toy(), method="fsp", **FIT)


def test_tsne_without_layers_on_another_model_says_which_must_be_given():
    def plain():  # no layer named 'fc', unlike kdlab's nets (and toys.net)
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

    with pytest.raises(ValueError, match=r"method 'tsne': layer must be given for this student.*layer 'fc'"):
        distill(net(), plain, toy(), method="tsne", **FIT)
    with pytest.raises(ValueError, match=r"teacher_layer must be given for this teacher"):
        distill(plain(), net, toy(), method="tsne", **FIT)


# 5. In-place operations after a captured layer (torchvision's ReLU(inplace=True)).

def test_capture_and_features_until_agree_on_a_layer_followed_by_an_inplace_relu():
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        stopped = fitnets.features_until(resnet, "layer1.0.bn1", x)
        with features.capture(resnet, "layer1.0.bn1") as found:
            resnet(x)
        assert (stopped < 0).any()  # a pre-ReLU value, which the in-place ReLU would have zeroed
        torch.testing.assert_close(found["layer1.0.bn1"], stopped)
        for _ in range(2):  # again, in a later forward and a later capture
            with features.capture(resnet, "layer1.0.bn1", detach=True) as found:
                resnet(x)
            torch.testing.assert_close(found["layer1.0.bn1"], stopped)
    with torch.inference_mode(), features.capture(resnet, "layer1.0.bn1") as found:
        resnet(x)
    torch.testing.assert_close(found["layer1.0.bn1"], stopped)
    with features.capture(resnet, ["layer1.0.bn1", "fc"]) as found:  # with gradients
        resnet(x).sum().backward()
    torch.testing.assert_close(found["layer1.0.bn1"].detach(), stopped)


# 6. The command line's student spec runs no code but a model factory.

def test_a_student_spec_outside_the_model_factories_is_refused_without_running(capfd):
    for spec in ("os.system('echo hi')", "builtins.print('hi')", "torch.hub.load('x', 'y')"):
        with pytest.raises(ValueError, match=r"kdlab\.models.*torchvision\.models.*timm"):
            cli_distill.build_student(spec)
    assert "hi" not in capfd.readouterr().out
    assert isinstance(cli_distill.build_student("torchvision.models.resnet18(num_classes=4)"), nn.Module)
    assert isinstance(cli_distill.build_student("kdlab.models.mlp((64, 16, 10))"), nn.Module)


# 7. Errors kdlab should speak itself, before any training.

def test_uint8_and_mismatched_dtypes_are_named():
    train = toy()
    with pytest.raises(TypeError, match=r"train\.x.*uint8.*\.float\(\) / 255"):
        distill(net(), net, (train.x.clamp(0, 1).mul(255).to(torch.uint8), train.y), **FIT)
    for dtype in (torch.float64, torch.bfloat16):
        with pytest.raises(TypeError, match=rf"train\.x.*{str(dtype)[6:]}.*torch\.float32"):
            distill(net(), net, (train.x.to(dtype), train.y), **FIT)
    with pytest.raises(TypeError, match=r"test\.x.*float64.*torch\.float32"):
        distill(net(), net, train, (train.x.double(), train.y), **FIT)
    with pytest.raises(TypeError, match=r"train\.x.*float64.*torch\.float32"):
        mutual([net, net], (train.x.double(), train.y), **FIT)


def test_empty_data_is_named():
    train = toy()
    with pytest.raises(ValueError, match="train holds no examples"):
        distill(net(), net, Tensors(train.x[:0], train.y[:0]), **FIT)
    with pytest.raises(ValueError, match="test holds no examples"):
        distill(net(), net, train, (train.x[:0], train.y[:0]), **FIT)
    with pytest.raises(ValueError, match="train holds no examples"):
        mutual([net, net], Tensors(train.x[:0], train.y[:0]), **FIT)


def test_numpy_arrays_are_accepted_as_train_and_test():
    train = toy()
    arrays = (train.x.numpy(), train.y.numpy())
    _, history = distill(net(), net, arrays, arrays, **FIT)
    assert len(history) == 1
    cohort, _ = mutual([net, net], arrays, arrays, **FIT)
    assert len(cohort) == 2


class Dicts(Dataset):
    def __init__(self, **extra) -> None:
        self.extra = extra

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i):
        return {"image": torch.randn(1, 4, 4), "label": i % 3, **self.extra}


def test_dict_batches_are_read_by_their_input_and_label_keys():
    for train in (Dicts(), DataLoader(Dicts(), batch_size=4)):
        _, history = distill(net(), net, train, Dicts(), **FIT)
        assert len(history) == 1 and "test_error" in history.keys()
        cohort, _ = mutual([net, net], train, **FIT)
        assert len(cohort) == 2


def test_dict_batches_kdlab_cannot_read_name_the_key_and_the_fix():
    no_label = DataLoader([{"image": torch.zeros(1, 4, 4), "class": 0}] * 4, batch_size=2)
    with pytest.raises(TypeError, match=r"keys \['class', 'image'\].*one label key"):
        distill(net(), net, no_label, **FIT)
    with pytest.raises(TypeError, match=r"the key 'mask'.*remove_columns\(\['mask'\]\)"):
        distill(net(), net, Dicts(mask=torch.ones(3)), **FIT)
    masked_images = DataLoader(Dicts(attention_mask=torch.tensor([1, 1, 0])), batch_size=4)
    with pytest.raises(TypeError, match=r"'image' is torch.float32 with keyword inputs \['attention_mask'\]"):
        distill(net(), net, masked_images, **FIT)
    with pytest.raises(TypeError, match=r"test batch 0 is a dict"):
        distill(net(), net, toy(), DataLoader([{"x": torch.zeros(1, 4, 4)}] * 2, batch_size=2), **FIT)


@pytest.mark.parametrize("value, match", [
    ("4", r"temperature must be a number, got '4' \(a str\)"),
    (float("inf"), r"temperature must be a finite number > 0, got inf"),
    (float("nan"), r"temperature must be a finite number > 0, got nan"),
])
def test_a_temperature_that_is_not_a_finite_number_is_named(value, match):
    with pytest.raises((TypeError, ValueError), match=match):
        distill(net(), net, toy(), temperature=value, **FIT)
    with pytest.raises((TypeError, ValueError), match=match):
        mutual([net, net], toy(), temperature=value, **FIT)


def test_stage_epochs_of_zero_is_an_error():
    with pytest.raises(ValueError, match="stage_epochs must be an integer >= 1, got 0"):
        distill(net(), net, toy(), method="fitnets", hint="relu", guided="relu", stage_epochs=0, **FIT)
    with pytest.raises(ValueError, match="stage_epochs must be an integer >= 1, got 0"):
        distill(net(), net, toy(), method="fsp", pairs=[("conv", "relu")], stage_epochs=0, **FIT)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_run_checks_the_device_before_running_a_chapter(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the chapter ran")

    monkeypatch.setattr(runner, "run_chapter", never)
    argv = ["--root", str(ROOT), "run", "soft_targets", "--device", "cuda", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "torch sees no CUDA GPU" in captured.err and "running" not in captured.out


def test_run_checks_the_chapter_name_before_saying_it_runs(tmp_path, capsys):
    assert cli.main(["--root", str(ROOT), "run", "nosuchchapter", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "chapter must be one of" in captured.err and "running" not in captured.out


def test_inputs_a_model_cannot_take_are_named_with_their_shape_before_training():
    train = toy()
    flat = Tensors(train.x.flatten(1), train.y)  # (16,) per example, for nets of convolutions
    with pytest.raises(ValueError, match=r"the teacher cannot run on the training inputs, of shape \(16,\)"):
        distill(net(), net, flat, **FIT)
    with pytest.raises(ValueError, match=r"test.x has examples of shape \(1, 2, 8\), the training set"):
        distill(net(), net, train, Tensors(train.x.reshape(-1, 1, 2, 8), train.y), **FIT)
    with pytest.raises(ValueError, match=r"val.x has examples of shape \(16,\)"):
        mutual([net, net], train, val=flat, **FIT)


def test_the_reviewers_other_inputs_are_taken_or_named_before_training(tmp_path):
    train = toy()
    x, y = train.x.numpy(), train.y.numpy().astype("int32")  # NumPy's default integer on some platforms
    _, history = distill(net(), net, (x, y), (x, y), **FIT)
    assert len(history) == 1
    examples = list(zip(train.x, train.y, strict=True))  # the simplest map-style dataset: a list of pairs
    _, history = distill(net(), net, examples, examples, **FIT)
    assert len(history) == 1
    for knobs, says in [
        (dict(seed="a"), "seed must be an integer >= 0, got 'a'"),
        (dict(weight_decay=-1.0), r"weight_decay must be in \[0.0, inf\], got -1.0"),
        (dict(device="gpu"), r"device must be one of \['cuda', 'mps', 'cpu'\]"),
        (dict(log=True), "log must be a path"),
        (dict(log=tmp_path / "none" / "l.csv"), "no folder"),
        (dict(checkpoint=tmp_path), "is a folder"),
        (dict(resume=True), "resume=True needs checkpoint="),
        (dict(hint_epochs=0), "did you mean 'stage_epochs'"),
        (dict(method="fsp", pairs=["hidden1"]), r"pairs must be a list of \(first, second\) layer-name"),
    ]:
        with pytest.raises((ValueError, TypeError), match=says):
            distill(net(), net, train, **{**FIT, **knobs})
    with pytest.raises(ValueError, match="eval_every must be an integer >= 1, got 0"):
        mutual([net, net], train, eval_every=0, **FIT)
    assert "cohort" not in kdlab_api.knobs_of("mutual") and "update" in kdlab_api.knobs_of("mutual")
