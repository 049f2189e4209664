import argparse
import json

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from toys import FIT, net, same_weights, toy

from kdlab import adapters, cli_distill
from kdlab.api import distill, knobs_of, mutual
from kdlab.data import Tensors
from kdlab.methods import born_again, hinton, tsne
from kdlab.methods import mutual as dml


@pytest.fixture
def teacher() -> nn.Module:
    torch.manual_seed(1)
    return net(width=6)




def test_hinton_is_the_recipe_called_with_the_teachers_logits(teacher):
    train = toy()
    student, history = distill(teacher, lambda: net(), train, toy(seed=1), method="hinton",
                               temperature=4.0, alpha=0.7, seed=3, **FIT)
    logits = teacher(train.x).detach()
    direct, direct_history = hinton.distill(lambda: net(), train, logits, temperature=4.0, alpha=0.7,
                                            test=toy(seed=1), seed=3, **FIT)
    assert same_weights(student, direct)
    assert history.last("loss") == pytest.approx(direct_history.last("loss"))
    assert "test_accuracy" in history.keys()


def test_a_student_module_is_copied_not_trained_in_place(teacher):
    start = net()
    before = {k: v.clone() for k, v in start.state_dict().items()}
    student, _ = distill(teacher, start, toy(), method="logits", **FIT)
    assert student is not start
    assert all(torch.equal(before[k], v) for k, v in start.state_dict().items())
    assert not same_weights(student, start)


def test_logits_method_is_mimic_with_mse(teacher):
    train = toy()
    student, _ = distill(teacher, lambda: net(), train, method="logits", seed=2, **FIT)
    direct, _ = hinton.mimic(lambda: net(), train.x, teacher(train.x).detach(), loss="mse", seed=2, **FIT)
    assert same_weights(student, direct)


def test_born_again_chains_hinton_generations_each_seeded_afresh_as_the_recipe(teacher):
    train = toy()
    student, _ = distill(teacher, lambda: net(), train, method="born_again", generations=2, seed=3, **FIT)
    knobs = dict(temperature=1.0, alpha=0.5, **FIT)
    first, _ = hinton.distill(lambda: net(), train, teacher(train.x).detach(), seed=3 + 1000, **knobs)
    second, _ = hinton.distill(lambda: net(), train, first(train.x).detach(), seed=3 + 2000, **knobs)
    assert same_weights(student, second)
    same_seed, _ = hinton.distill(lambda: net(), train, first(train.x).detach(), seed=3, **knobs)
    assert not same_weights(student, same_seed)
    result = born_again.born_again(lambda: net(), train, generations=2, seed=3, **knobs)
    sequence = result.produced["generations"]
    assert [born_again.generation_seed(3, g.index) for g in sequence] == [3, 1003, 2003]


def test_per_batch_teacher_gives_the_loss_of_cached_logits(teacher):
    x, y = toy().tensors
    inner = hinton.objective(4.0, 0.5)
    student = net()
    per_batch = adapters.with_teacher(teacher, inner, classes=3)(student, (x, y))
    cached = inner(student, (x, y, teacher.eval()(x).detach()))
    assert per_batch["loss"].item() == pytest.approx(cached["loss"].item(), rel=1e-6)
    per_batch["loss"].backward()  # the teacher's logits are ordinary tensors, usable in autograd


class Noisy(Dataset):
    def __init__(self, tensors: Tensors) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, i):
        return self.tensors.x[i] + 0.1 * torch.randn(1, 4, 4), self.tensors.y[i]


@pytest.mark.parametrize("method", ["hinton", "logits", "born_again"])
def test_datasets_and_loaders_train_with_the_teacher_per_batch(teacher, method):
    test = toy(seed=1)
    loader = DataLoader(TensorDataset(*test.tensors), batch_size=16)
    student, history = distill(teacher, lambda: net(), Noisy(toy()), loader, method=method, **FIT)
    assert len(history) == 1 and 0.0 <= history.last("test_accuracy") <= 1.0
    assert student(test.x).shape == (len(test), 3)


def test_materialize_reads_a_loader_once_in_order():
    test = toy()
    again = adapters.materialize(DataLoader(TensorDataset(*test.tensors), batch_size=10))
    assert torch.equal(again.x, test.x) and torch.equal(again.y, test.y)
    pair = adapters.as_tensors((test.x, test.y))
    assert torch.equal(pair.x, test.x)
    with pytest.raises(TypeError, match="Dataset or a DataLoader"):
        adapters.as_tensors("digits")


def test_fitnets_and_fsp_read_layers_by_name(teacher):
    student, history = distill(teacher, lambda: net(), toy(), toy(seed=1), method="fitnets", hint="relu",
                               guided="relu", **FIT)
    assert len(history) == 1
    # FSP needs equal channel counts between the paired layers of teacher and student.
    student, history = distill(net(width=6), lambda: net(width=6), toy(), method="fsp",
                               pairs=[("conv", "relu")], **FIT)
    assert len(history) == 1


def test_fitnets_needs_tensors_and_both_layer_names(teacher):
    with pytest.raises(ValueError, match="needs the training set as tensors"):
        distill(teacher, net(), Noisy(toy()), method="fitnets", hint="relu", guided="relu", **FIT)
    with pytest.raises(ValueError, match="needs guided="):
        distill(teacher, net(), toy(), method="fitnets", hint="relu", **FIT)


def test_unknown_method_and_knob_list_the_valid_ones(teacher):
    with pytest.raises(ValueError, match=r"method must be one of \['hinton', 'logits'"):
        distill(teacher, net(), toy(), method="kd")
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['temprature'\].*'temperature'"):
        distill(teacher, net(), toy(), method="hinton", temprature=4)
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['alpha'\]"):
        distill(teacher, net(), toy(), method="logits", alpha=0.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distill(teacher, net(), toy(), method="hinton", temperature=0.0, **FIT)
    assert knobs_of("hinton")["temperature"] == 20.0 and "update" in knobs_of("mutual")


def test_tsne_is_the_recipe_with_its_layers_by_name(teacher):
    train = toy()
    knobs = dict(epochs=1, batch_size=16, progress=False, device="cpu", seed=1)
    student, _ = distill(teacher, lambda: net(), train, method="tsne", beta=0.5, perplexity=4.0, pca_dim=None,
                         layer="flatten", teacher_layer="flatten", **knobs)
    direct, _ = tsne.distill(lambda: net(), train, teacher, beta=0.5, perplexity=4.0, pca_dim=None,
                             layer="flatten", teacher_layer="flatten", **knobs)
    assert same_weights(student, direct)
    with pytest.raises(KeyError, match="close matches: \\['flatten'"):
        distill(teacher, net(), train, method="tsne", layer="flaten", teacher_layer="flatten", **FIT)


def test_different_class_counts_are_an_error(teacher):
    with pytest.raises(ValueError, match=r"same number of classes, got 3 \(teacher\) and 5 \(student\)"):
        distill(teacher, net(classes=5), toy(), **FIT)


def test_labels_beyond_the_class_count_are_an_error(teacher):
    bad = toy(classes=5)
    with pytest.raises(ValueError, match=r"train labels must lie in \[0, 2\] for 3 classes"):
        distill(teacher, net(), bad, **FIT)
    with pytest.raises(ValueError, match=r"test labels must lie in \[0, 2\]"):
        distill(teacher, net(), toy(), bad, **FIT)
    with pytest.raises(ValueError, match=r"train labels must lie in \[0, 2\]"):
        distill(teacher, net(), Noisy(bad), **FIT)


def test_a_missing_torchvision_layer_lists_close_matches():
    resnet = torchvision.models.resnet18(weights=None, num_classes=3)
    resnet.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    with pytest.raises(KeyError, match=r"hint \(a teacher layer\).*'layer_1'.*close matches: \['layer1'"):
        distill(resnet, net(), toy(n=6), method="fitnets", hint="layer_1", guided="relu", **FIT)


def test_mutual_is_the_recipe_and_takes_loaders():
    train, test = toy(), toy(seed=1)
    cohort, history = mutual([net, net], train, test, seed=4, **FIT)
    direct, _ = dml.train([net, net], train, seed=4, test=test, **FIT)
    assert all(same_weights(a, b) for a, b in zip(cohort, direct, strict=True))
    cohort, history = mutual([net(), net()], Noisy(train), test, update="simultaneous", **FIT)
    assert len(cohort) == 2 and "test_error/ensemble" in history.keys()
    with pytest.raises(ValueError, match=r"same number of classes, got \[3, 5\]"):
        mutual([net(), net(classes=5)], train)
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['hint'\]"):
        mutual([net, net], train, hint="conv")
    cached, _ = mutual([net, net], train, test, seed=4, cache=True, **FIT)
    assert all(same_weights(a, b) for a, b in zip(cached, direct, strict=True))


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kdlab")
    cli_distill.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_distills_a_saved_teacher_and_writes_results(tmp_path):
    torch.manual_seed(0)
    teacher_path = tmp_path / "teacher.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), teacher_path)
    out = tmp_path / "out"
    code = run_cli(["distill", "--teacher", str(teacher_path), "--student", "mlp((64, 16, 10))",
                    "--data", "digits", "--train-size", "100", "--test-size", "50", "-p", "epochs=1",
                    "-p", "temperature=4", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert record["method"] == "hinton" and record["knobs"]["temperature"] == 4
    assert record["student"]["parameters"] == 64 * 16 + 16 + 16 * 10 + 10
    assert isinstance(torch.load(out / "student.pt", weights_only=False), nn.Module)


def test_cli_student_specs_and_bad_files(tmp_path):
    assert cli_distill.build_student("torchvision.models.resnet18(num_classes=4)").fc.out_features == 4
    with pytest.raises(ValueError, match="not a kdlab model"):
        cli_distill.build_student("lenett()")
    with pytest.raises(ValueError, match="Python literals"):
        cli_distill.build_student("mlp(sizes=open('x'))")
    torch.save({"weights": 1}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="not a module"):
        cli_distill.load_module(tmp_path / "state.pt", "teacher")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cli_distill.load_module(tmp_path / "none.pt", "teacher")
