"""``kdlab distill`` on a practitioner's own data (image folders, .npz, .pt), ``--config`` files, the
saved ``config.yaml`` that repeats a run, and every method of ``kdlab.api.METHODS`` on the command line."""

import argparse
import json
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from kdlab import api, cli, cli_distill, models, userdata

CLASSES = ("ant", "bee", "cat")


def run_cli(argv: list[str]) -> int:
    """``kdlab distill ...`` with its errors raised (``cli.main`` prints them and returns 2)."""
    parser = argparse.ArgumentParser(prog="kdlab")
    cli_distill.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["distill", *argv])
    return args.handler(args)


def image_folder(root: Path, per_class: int = 6, size: int = 8, mode: str = "L",
                 classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/<k>.png``: images whose brightness depends on the class, so there is something
    to learn."""
    generator = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            shape = (size, size) if mode == "L" else (size, size, 3)
            pixels = np.clip(generator.normal(60 + 60 * label, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{k}.png")
    return root


def arrays(n: int = 36, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = (generator.normal(size=(n, 1, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    return x, y.astype(np.int64)


def save_teacher(path: Path, inputs: int = 64, classes: int = 3) -> Path:
    torch.manual_seed(1)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(inputs, classes)), path)
    return path


def read_results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def without_timings(record: dict) -> dict:
    record = dict(record)
    record["history"] = [{k: v for k, v in row.items() if k != "seconds"} for row in record["history"]]
    return record


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


FAST = ["-p", "epochs=1", "-p", "batch_size=8", "--device", "cpu"]


# 1. The user's own data.

def test_an_image_folder_distils_with_a_held_out_split(tmp_path):
    root = image_folder(tmp_path / "images")
    (root / "ant" / "notes.txt").write_text("not an image")  # skipped, as ImageFolder does
    teacher = save_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "out"
    assert run_cli(["--teacher", str(teacher), "--student", "mlp((64, 16, 3))", "--data", str(root),
                    "--out", str(out), *FAST]) == 0
    record = read_results(out)
    assert record["classes"] == list(CLASSES)
    assert record["test_fraction"] == 0.2
    # Class-stratified: round(6 * 0.2) = 1 of each class held out.
    assert (record["train_size"], record["test_size"]) == (15, 3)
    assert len(record["history"]) == 1 and 0.0 <= record["student"]["test_accuracy"] <= 1.0
    loaded = userdata.load(root)
    assert loaded.split.train.x.shape[1:] == (1, 8, 8)  # grayscale: one channel
    assert loaded.split.train.x.dtype == torch.float32
    assert 0.0 <= loaded.split.train.x.min() and loaded.split.train.x.max() <= 1.0
    assert sorted(loaded.split.test.y.tolist()) == [0, 1, 2]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data"] == str(root.resolve()) and config["test_fraction"] == 0.2


def test_rgb_images_of_several_sizes_are_resized_with_image_size_and_tsne_runs(tmp_path):
    root = image_folder(tmp_path / "images", mode="RGB", size=8)
    Image.new("RGB", (12, 10), (200, 10, 10)).save(root / "cat" / "big.png")
    with pytest.raises(ValueError, match=r"differ in size: ant/0\.png is 8x8 and cat/big\.png is 12x10.*"
                                         r"--image-size"):
        userdata.load(root, argument="--data")
    loaded = userdata.load(root, image_size=8)
    assert loaded.split.train.x.shape[1:] == (3, 8, 8)
    torch.manual_seed(1)
    lenet = "lenet(widths=(4, 8, 16), image_size=8, in_channels=3, num_classes=3)"
    torch.save(cli_distill.build_student(lenet), tmp_path / "teacher.pt")
    out = tmp_path / "out"
    assert run_cli(["--teacher", str(tmp_path / "teacher.pt"), "--student", lenet, "--data", str(root),
                    "--image-size", "8", "--method", "tsne", "-p", "perplexity=3.0", "-p", "pca_dim=None",
                    "--out", str(out), *FAST]) == 0
    record = read_results(out)
    assert record["method"] == "tsne" and record["knobs"]["perplexity"] == 3.0
    assert record["train_size"] + record["test_size"] == 19


def test_a_folder_with_train_and_test_folders_gives_both_parts(tmp_path):
    image_folder(tmp_path / "images" / "train", per_class=4)
    image_folder(tmp_path / "images" / "test", per_class=2, classes=("ant", "cat"))
    loaded = userdata.load(tmp_path / "images")
    assert loaded.test_fraction is None and loaded.classes == CLASSES
    assert len(loaded.split.train) == 12 and sorted(set(loaded.split.test.y.tolist())) == [0, 2]
    with pytest.raises(ValueError, match=r"--test-fraction 0\.3 draws a test part.*has its own test part"):
        userdata.load(tmp_path / "images", test_fraction=0.3)


def test_the_folder_is_listed_the_same_without_torchvision(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images", per_class=3)
    (root / "bee" / "deeper").mkdir()
    Image.new("L", (8, 8)).save(root / "bee" / "deeper" / "x.PNG")
    with_tv = userdata._listing(root, "--data")
    without = userdata._listing_without_torchvision(root, "--data")
    assert (with_tv.classes, with_tv.samples) == (without.classes, without.samples)
    assert len(without.samples) == 10
    read = userdata.load(root)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # importing it fails
    loaded = userdata.load(root)
    torch.testing.assert_close(loaded.split.train.x, read.split.train.x)
    assert torch.equal(loaded.split.test.y, read.split.test.y)
    assert len(loaded.split.train) + len(loaded.split.test) == 10


def test_a_npz_file_with_its_own_test_part(tmp_path):
    x, y = arrays()
    x_test, y_test = arrays(n=9, seed=1)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test, notes=np.array([1]))
    out = tmp_path / "out"
    assert run_cli(["--teacher", str(save_teacher(tmp_path / "t.pt")), "--student", "mlp((64, 16, 3))",
                    "--data", str(path), "--out", str(out), *FAST]) == 0
    record = read_results(out)
    assert (record["train_size"], record["test_size"], record["test_fraction"]) == (36, 9, None)
    assert "classes" not in record
    # uint8 inputs are images: divided by 255.
    np.savez(path, x=np.full((6, 4), 255, np.uint8), y=np.arange(6) % 2)
    assert userdata.load(path).split.train.x.max() == 1.0


def test_a_pt_file_gets_a_stratified_held_out_split_fixed_by_seed(tmp_path):
    x, y = arrays(n=40, classes=4)
    path = tmp_path / "mine.pt"
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    out = tmp_path / "out"
    assert run_cli(["--teacher", str(save_teacher(tmp_path / "t.pt", classes=4)),
                    "--student", "lenet(widths=(4, 8, 16), image_size=8, num_classes=4)", "--data", str(path),
                    "--test-fraction", "0.3", "--seed", "5", "--out", str(out), *FAST]) == 0
    record = read_results(out)
    assert (record["train_size"], record["test_size"], record["test_fraction"]) == (28, 12, 0.3)
    first = userdata.load(path, test_fraction=0.3, seed=5).split
    assert torch.bincount(first.test.y).tolist() == [3, 3, 3, 3]
    again = userdata.load(path, test_fraction=0.3, seed=5).split
    other = userdata.load(path, test_fraction=0.3, seed=6).split
    assert torch.equal(first.test.x, again.test.x) and not torch.equal(first.test.x, other.test.x)
    # Together the parts are the file's examples, each once.
    rows = torch.cat([first.train.x, first.test.x]).flatten(1)
    assert torch.equal(rows[torch.argsort(rows[:, 0])], torch.from_numpy(x).flatten(1)[
        torch.argsort(torch.from_numpy(x).flatten(1)[:, 0])])


# 2. Every method of the API on the command line.

def test_the_method_choices_are_the_apis():
    parser = argparse.ArgumentParser(prog="kdlab")
    distill = cli_distill.add_parser(parser.add_subparsers(dest="command"))
    (method,) = [a for a in distill._actions if a.dest == "method"]
    assert tuple(method.choices) == api.METHODS and "tsne" in method.choices


# 3 and 4. --config files, and the saved config.yaml.

def common(tmp_path: Path) -> tuple[Path, Path]:
    x, y = arrays()
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    return save_teacher(tmp_path / "teacher.pt"), tmp_path / "mine.npz"


def test_a_config_file_gives_the_same_results_as_the_flags(tmp_path):
    teacher, npz = common(tmp_path)
    flags = ["--teacher", str(teacher), "--student", "mlp((64, 16, 3))", "--data", str(npz),
             "--method", "hinton", "--seed", "2", "--test-fraction", "0.25", "--device", "cpu",
             "-p", "epochs=2", "-p", "temperature=4", "-p", "lr=1e-3", "-p", "batch_size=8"]
    assert run_cli([*flags, "--out", str(tmp_path / "flags")]) == 0
    (tmp_path / "run.yaml").write_text(
        f"teacher: {teacher}\nstudent: mlp((64, 16, 3))\ndata: {npz}\nmethod: hinton\nseed: 2\n"
        f"test-fraction: 0.25\ndevice: cpu\nout: {tmp_path / 'config'}\n"
        "knobs:\n  epochs: 2\n  temperature: 4\n  lr: 1e-3\n  batch_size: 8\n"
    )
    assert run_cli(["--config", str(tmp_path / "run.yaml")]) == 0
    by_flags, by_config = read_results(tmp_path / "flags"), read_results(tmp_path / "config")
    assert without_timings(by_flags) == without_timings(by_config)
    assert by_config["knobs"]["lr"] == 1e-3 and by_config["knobs"]["alpha"] == 0.9  # a default filled in
    assert same_weights(torch.load(tmp_path / "flags" / "student.pt", weights_only=False),
                        torch.load(tmp_path / "config" / "student.pt", weights_only=False))


def test_flags_override_the_config_file(tmp_path):
    teacher, npz = common(tmp_path)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "teacher": str(teacher), "student": "mlp((64, 16, 3))", "data": str(npz), "method": "hinton",
        "device": "cpu", "out": str(tmp_path / "unused"), "knobs": {"epochs": 1, "temperature": 4.0},
    }))
    out = tmp_path / "out"
    assert run_cli(["--config", str(tmp_path / "run.yaml"), "--method", "born_again", "-p", "epochs=2",
                    "-p", "temperature=2.0", "--out", str(out)]) == 0
    record = read_results(out)
    assert record["method"] == "born_again" and len(record["history"]) == 2
    assert record["knobs"]["temperature"] == 2.0 and record["knobs"]["generations"] == 1
    assert not (tmp_path / "unused").exists()


def test_the_saved_config_repeats_the_run_exactly(tmp_path):
    teacher, npz = common(tmp_path)
    first = tmp_path / "first"
    assert run_cli(["--teacher", str(teacher), "--student", "mlp((64, 16, 3))", "--data", str(npz),
                    "--method", "logits", "-p", "seed=3", "--out", str(first), *FAST]) == 0
    config = yaml.safe_load((first / "config.yaml").read_text())
    written = {k: v for k, v in api.knobs_of("logits").items() if k not in ("device", "callbacks", "val")}
    assert config["knobs"] == {**written,
                               "epochs": 1, "batch_size": 8, "seed": 3, "progress": False}
    assert config["device"] == "cpu" and config["test_fraction"] == 0.2 and config["seed"] == 0
    assert config["val_fraction"] is None and read_results(first)["best_epoch"] is None
    assert config["teacher"] == str(teacher.resolve()) and config["out"] == str(first.resolve())
    assert config["environment"]["kdlab"] and config["environment"]["torch"] == torch.__version__
    assert config["environment"]["device"] == "cpu"
    torch.manual_seed(123)  # another global random state: the run must not depend on it
    again = tmp_path / "again"
    assert cli.main(["distill", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    assert same_weights(torch.load(first / "student.pt", weights_only=False),
                        torch.load(again / "student.pt", weights_only=False))
    repeated = yaml.safe_load((again / "config.yaml").read_text())
    assert {**repeated, "out": None} == {**config, "out": None}
    assert without_timings(read_results(first)) == without_timings(read_results(again))


def test_config_file_errors(tmp_path):
    teacher, npz = common(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(f"teacher: {teacher}\nstudent: mlp((64, 16, 3))\ndata: {npz}\nepochs: 3\n")
    with pytest.raises(ValueError, match=r"unknown key 'epochs'; the valid keys are \['teacher', 'student', "
                                         r"'data', 'method', 'out', 'seed'.*'knobs', 'environment'\]"):
        run_cli(["--config", str(path)])
    path.write_text(f"teacher: {teacher}\nstudent: mlp((64, 16, 3))\ndata: {npz}\nknobs: {{temprature: 3}}\n")
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['temprature'\] for method 'hinton'.*'tempe"):
        run_cli(["--config", str(path)])
    path.write_text("teacher: [unclosed\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        run_cli(["--config", str(path)])
    path.write_text(f"teacher: {teacher}\nseed: two\n")
    with pytest.raises(ValueError, match=r"seed must be an integer, got 'two'"):
        run_cli(["--config", str(path)])
    path.write_text(f"teacher: {teacher}\n")
    with pytest.raises(ValueError, match=r"--student, --data are required.*--config"):
        run_cli(["--config", str(path)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_cli(["--config", str(tmp_path / "none.yaml")])
    with pytest.raises(ValueError, match=r"method must be one of \['hinton'.*'tsne'.*got 'mutual'"):
        run_cli(["--teacher", str(teacher), "--student", "mlp((64, 3))", "--data", str(npz),
                 "--config", str(write(tmp_path / "m.yaml", "method: mutual\n"))])
    with pytest.raises(ValueError, match=r"knob alpha = \{1, 2\} \(a set\) cannot be written"):
        run_cli(["--teacher", str(teacher), "--student", "mlp((64, 3))", "--data", str(npz), "-p",
                 "alpha={1, 2}"])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# 5. Bad inputs: the argument, the value and what is valid.

@pytest.mark.parametrize("contents, message", [
    ({"x": np.zeros((4, 2), np.float32)}, r"has no y: it holds \['x'\]; it needs x .* and y"),
    ({"inputs": np.zeros((4, 2)), "labels": np.zeros(4)}, r"has no x or y: it holds \['inputs', 'labels'\]"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(3, np.int64)}, r"x has 4 examples but y has 3"),
    ({"x": np.zeros((4, 2)), "y": np.array([0.0, 1.0, 0.5, 1.0])}, r"y must hold integer .*float64"),
    ({"x": np.zeros((4, 2)), "y": np.array(["a", "b", "a", "b"])}, r"y must hold integer class labels.*<U1"),
    ({"x": np.zeros((4, 2)), "y": np.eye(4, dtype=np.int64)}, r"shape \(n,\), got shape \(4, 4\).*one-hot"),
    ({"x": np.zeros((4, 2)), "y": np.array([0, 1, -1, 0])}, r"negative label \(-1 at row 2\)"),
    ({"x": np.zeros(4), "y": np.zeros(4, np.int64)}, r"x must have one row per example.*got shape \(4,\)"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4, np.int64), "x_test": np.zeros((2, 2))},
     r"holds x_test but no y_test"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(4, np.int64), "x_test": np.zeros((2, 3)),
      "y_test": np.zeros(2, np.int64)}, r"x_test's examples have shape \(3,\), x's \(2,\)"),
    ({"x": np.zeros((0, 2)), "y": np.zeros(0, np.int64)}, r"hold no examples"),
])
def test_bad_npz_files_are_named(tmp_path, contents, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **contents)
    with pytest.raises(ValueError, match=r"--data '.*bad\.npz'.*" + message):
        userdata.load(path, argument="--data")


def test_bad_pt_files_and_paths_are_named(tmp_path):
    teacher = save_teacher(tmp_path / "t.pt")
    torch.save([torch.zeros(3, 2), torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"holds a list, not a dict; save it with torch\.save\(\{'x': x"):
        userdata.load(tmp_path / "list.pt", argument="--data")
    torch.save({"x": torch.zeros(3, 2), "y": [0, 1, 0]}, tmp_path / "lists.pt")
    with pytest.raises(ValueError, match=r"y is a list, not a tensor"):
        userdata.load(tmp_path / "lists.pt", argument="--data")
    torch.save({"x": torch.zeros(3, 2), "y": torch.tensor([0.0, 1.0, 1.0])}, tmp_path / "float.pt")
    with pytest.raises(ValueError, match=r"y must hold integer class labels 0\.\.C-1, got dtype float32"):
        userdata.load(tmp_path / "float.pt", argument="--data")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(ValueError, match=r"cannot be read as a dict of tensors \(torch\.load with weights_"):
        userdata.load(tmp_path / "module.pt", argument="--data")
    (tmp_path / "table.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"'.*table\.csv' is a \.csv file; it must be an image folder"):
        userdata.load(tmp_path / "table.csv", argument="--data")
    argv = ["--teacher", str(teacher), "--student", "mlp((64, 3))", *FAST]
    with pytest.raises(FileNotFoundError, match=r"--data 'digitz' is neither one of kdlab's data sets "
                                                r"\['digits'.*nor an existing file or folder; a path must"):
        run_cli([*argv, "--data", "digitz"])
    with pytest.raises(ValueError, match=r"--test-fraction applies to your own data.*not to kdlab's"):
        run_cli([*argv, "--data", "digits", "--test-fraction", "0.1"])
    x, y = arrays()
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    with pytest.raises(ValueError, match=r"--image-size 8 resizes the images of a folder; --data .* a file"):
        run_cli([*argv, "--data", str(tmp_path / "mine.npz"), "--image-size", "8"])
    with pytest.raises(ValueError, match=r"--test-fraction must be a number in \(0, 1\), got 1\.5"):
        run_cli([*argv, "--data", str(tmp_path / "mine.npz"), "--test-fraction", "1.5"])
    with pytest.raises(ValueError, match=r"--train-size 99: size must be <= 30 \(the number of examples\)"):
        run_cli([*argv, "--data", str(tmp_path / "mine.npz"), "--train-size", "99"])
    one_each = tmp_path / "one.npz"
    np.savez(one_each, x=np.zeros((3, 2), np.float32), y=np.arange(3))
    with pytest.raises(ValueError, match=r"holds out no example.*each of its classes has a single example"):
        userdata.load(one_each, argument="--data")


def test_bad_image_folders_are_named(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"--data '.*empty' is not an image folder with images: .*class "
                                         r"folder.* one sub-folder per class, each holding images \(\.jpg"):
        userdata.load(empty, argument="--data")
    root = image_folder(tmp_path / "images", per_class=2)
    (root / "dog").mkdir()
    (root / "dog" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"not an image folder with images: .*for the classes dog"):
        userdata.load(root, argument="--data")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"dog/broken\.png cannot be read as an image"):
        userdata.load(root, argument="--data")
    # Through the command, the same message and exit status 2.
    teacher = save_teacher(tmp_path / "t.pt")
    code = cli.main(["distill", "--teacher", str(teacher), "--student", "mlp((64, 3))", "--data", str(empty)])
    assert code == 2 and "not an image folder with images" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--image-size must be an integer >= 1, got 0"):
        userdata.load(root, image_size=0, argument="--data")


def test_the_student_is_built_with_the_seed_knob(tmp_path):
    spec = "mlp((64, 16, 3))"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        expected = models.mlp((64, 16, 3))
    teacher, npz = common(tmp_path)
    out = tmp_path / "out"
    torch.manual_seed(99)
    assert run_cli(["--teacher", str(teacher), "--student", spec, "--data", str(npz), "-p", "lr=1e-12",
                    "--out", str(out), *FAST]) == 0
    trained = torch.load(out / "student.pt", weights_only=False)
    for name, value in expected.state_dict().items():  # lr 1e-12: the weights barely moved
        torch.testing.assert_close(trained.state_dict()[name], value, atol=1e-6, rtol=0)


def test_more_rejected_options_and_files(tmp_path):
    teacher, npz = common(tmp_path)
    argv = ["--teacher", str(teacher), "--student", "mlp((64, 3))", "--data", str(npz)]
    with pytest.raises(ValueError, match=r"must be a mapping of option: value, got a list"):
        run_cli(["--config", str(write(tmp_path / "list.yaml", "- teacher\n- student\n"))])
    with pytest.raises(ValueError, match=r"knobs must be a mapping of knob names to values"):
        run_cli([*argv, "--config", str(write(tmp_path / "k.yaml", "knobs: [epochs, 1]\n"))])
    with pytest.raises(ValueError, match=r"--device mps: .*MPS is not available"):
        run_cli([*argv, "--device", "mps"])
    with pytest.raises(ValueError, match=r"--image-size applies to your own data.*not to kdlab's"):
        run_cli([*argv[:4], "--data", "digits", "--image-size", "8"])
    with pytest.raises(ValueError, match=r"--test-size 99: size must be <= 6 \(the number of examples\)"):
        run_cli([*argv, "--test-size", "99", "-p", "epochs=1"])
    np.savez(tmp_path / "objects.npz", x=np.array([[1], "a"], dtype=object), y=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"objects\.npz'.*Object arrays cannot be loaded.*numeric arrays"):
        userdata.load(tmp_path / "objects.npz", argument="--data")
    np.savez(tmp_path / "bools.npz", x=np.zeros((4, 2)), y=np.array([True, False, True, False]))
    with pytest.raises(ValueError, match=r"y must hold integer class labels 0\.\.C-1, got dtype bool"):
        userdata.load(tmp_path / "bools.npz", argument="--data")
    image_folder(tmp_path / "images" / "train", per_class=2, classes=("ant", "bee"))
    image_folder(tmp_path / "images" / "test", per_class=1, classes=("ant", "wasp"))
    with pytest.raises(ValueError, match=r"the test folder has classes \['wasp'\] that the train folder"):
        userdata.load(tmp_path / "images", argument="--data")


def test_a_config_written_by_other_versions_says_so(tmp_path, capsys):
    path = write(tmp_path / "old.yaml", "method: logits\nenvironment:\n  kdlab: 0.0.1\n  torch: 1.0.0\n")
    assert cli_distill.read_config(path)["method"] == "logits"
    err = capsys.readouterr().err
    assert "written with kdlab 0.0.1 (here" in err and "torch 1.0.0 (here" in err and "may not repeat" in err


# 6. A validation split (--val-fraction), and knob paths made absolute.

def test_val_fraction_selects_the_best_epoch_and_the_saved_config_repeats_it(tmp_path, monkeypatch):
    teacher, npz = common(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "first"
    seen = []
    distill = api.distill

    def spy(*args, **knobs):
        seen.append((args, knobs))
        return distill(*args, **knobs)

    monkeypatch.setattr(api, "distill", spy)
    assert run_cli(["--teacher", str(teacher), "--student", "mlp((64, 16, 3))", "--data", str(npz),
                    "--val-fraction", "0.25", "--seed", "1", "-p", "log=l.csv", "-p", "checkpoint=ck.pt",
                    "--out", str(first), "-p", "epochs=3", "-p", "batch_size=8", "--device", "cpu"]) == 0
    # 36 examples, 12 a class: 2 a class held out as the test part, then 3 a class of the other 10 as val.
    record = read_results(first)
    assert (record["train_size"], record["val_size"], record["test_size"]) == (21, 9, 6)
    assert record["val_fraction"] == 0.25
    (_, _, train, test), knobs = seen[0]
    val = knobs["val"]
    assert len(val) == 9 and torch.bincount(val.y).tolist() == [3, 3, 3]
    # Held out of the training set: train, val and test are the file's 36 examples, each once.
    rows = torch.cat([train.x, val.x, test.x]).flatten(1)
    assert len(rows) == 36 and len(torch.unique(rows, dim=0)) == 36
    best = record["best_epoch"]
    assert best in (1, 2, 3) and len(record["history"]) == 3 and "val_error" in record["history"][0]
    student = record["student"]
    assert student["best_epoch"]["epoch"] == best and student["last_epoch"]["epoch"] == 3
    assert student["best_epoch"]["test_accuracy"] == record["history"][best - 1]["test_accuracy"]
    assert student["last_epoch"]["test_accuracy"] == record["history"][-1]["test_accuracy"]
    assert student["test_accuracy"] == pytest.approx(student["best_epoch"]["test_accuracy"])
    assert "selected on the val split" in student["weights"]
    config = yaml.safe_load((first / "config.yaml").read_text())
    assert config["val_fraction"] == 0.25 and "val" not in config["knobs"]
    # Knob paths are absolute, in the run and in config.yaml.
    assert config["knobs"]["log"] == str(tmp_path / "l.csv") == knobs["log"]
    assert config["knobs"]["checkpoint"] == str(tmp_path / "ck.pt") == record["knobs"]["checkpoint"]
    assert (tmp_path / "l.csv").exists()
    # Repeated from another folder, the config gives the same split, epoch and student.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = tmp_path / "again"
    assert cli.main(["distill", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    assert not (tmp_path / "elsewhere" / "l.csv").exists()
    assert torch.equal(seen[1][1]["val"].x, val.x)
    assert same_weights(torch.load(first / "student.pt", weights_only=False),
                        torch.load(again / "student.pt", weights_only=False))
    assert without_timings(read_results(first)) == without_timings(read_results(again))
    repeated = yaml.safe_load((again / "config.yaml").read_text())
    assert {**repeated, "out": None} == {**config, "out": None}


def test_val_fraction_on_a_kdlab_data_set_and_the_val_knob_is_refused(tmp_path, monkeypatch):
    teacher = save_teacher(tmp_path / "t.pt", classes=10)
    calls = []

    def stop(*args, **knobs):
        calls.append((args, knobs))
        raise RuntimeError("stop")

    monkeypatch.setattr(api, "distill", stop)
    argv = ["--teacher", str(teacher), "--student", "mlp((64, 10))", "--data", "digits", "--train-size", "50",
            "--test-size", "20", *FAST]
    with pytest.raises(RuntimeError, match="stop"):
        run_cli([*argv, "--val-fraction", "0.2"])
    (_, _, train, test), knobs = calls[0]
    val = knobs["val"]
    # 5 of each digit in --train-size 50: 1 of each held out as val, the test part untouched.
    assert (len(train), len(val), len(test)) == (40, 10, 20)
    assert torch.bincount(val.y, minlength=10).tolist() == [1] * 10
    assert len(torch.unique(torch.cat([train.x, val.x]).flatten(1), dim=0)) == 50
    for given in (["-p", "val=0.2"], ["--config", str(write(tmp_path / "v.yaml", "knobs: {val: 0.2}\n"))]):
        with pytest.raises(ValueError, match=r"knob val takes a validation split.*--val-fraction F "
                                             r"\(val_fraction: F in a --config file\)"):
            run_cli([*argv, *given])
    with pytest.raises(ValueError, match=r"--val-fraction must be a number in \(0, 1\), got 1\.5"):
        run_cli([*argv, "--val-fraction", "1.5"])
    with pytest.raises(ValueError, match=r"val_fraction must be a number in \(0, 1\), got 'a tenth'"):
        run_cli([*argv, "--config", str(write(tmp_path / "w.yaml", "val_fraction: a tenth\n"))])
    one_each = tmp_path / "one.npz"
    np.savez(one_each, x=np.zeros((6, 64), np.float32), y=np.arange(6) % 3,
             x_test=np.zeros((3, 64), np.float32), y_test=np.arange(3))
    with pytest.raises(ValueError, match=r"--val-fraction 0\.3 holds out no example of the training set of "
                                         r"--data .*one\.npz"):
        run_cli(["--teacher", str(save_teacher(tmp_path / "t3.pt")), "--student", "mlp((64, 3))", "--data",
                 str(one_each), "--train-size", "3", "--val-fraction", "0.3", *FAST])
    assert len(calls) == 1
    # A config.yaml of an older kdlab, with its knob val: null, still runs.
    old = write(tmp_path / "old.yaml", "teacher: t.pt\nstudent: mlp((64, 3))\ndata: digits\n"
                                       "knobs: {val: null}\n")
    options, knobs = cli_distill.resolve(namespace(config=str(old)))
    assert "val" not in knobs and options["val_fraction"] is None


def namespace(**given) -> argparse.Namespace:
    """The parsed command line of ``kdlab distill`` with only ``given`` options."""
    return argparse.Namespace(**{**{name: None for name in (*cli_distill.OPTIONS, "config", "parameter")},
                                 **given})


def test_knob_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, knobs = cli_distill.resolve(namespace(
        parameter=["log=logs/l.csv", "tensorboard=tb", "checkpoint=c.pt"], teacher="t.pt",
        student="mlp((64, 3))", data="digits"))
    assert (knobs["log"], knobs["tensorboard"], knobs["checkpoint"]) == (
        str(tmp_path / "logs" / "l.csv"), str(tmp_path / "tb"), str(tmp_path / "c.pt"))


# 7. Every failure is one line, "kdlab: error: ...", with status 2, before any training.

def kdlab_error(argv: list[str], capsys) -> str:
    """``kdlab distill ARGV``'s one error line (it must exit with status 2)."""
    assert cli.main(["distill", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdlab: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_teachers_students_and_outs_are_named_before_any_training(tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(api, "distill", lambda *args, **knobs: trained.append(args))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no pretrained weights cached
    teacher, npz = common(tmp_path)
    student = ["--student", "mlp((64, 3))"]
    data = ["--data", str(npz), "--out", str(tmp_path / "out")]
    folder = tmp_path / "folder"
    folder.mkdir()
    err = kdlab_error(["--teacher", str(folder), *student, *data], capsys)
    assert f"--teacher {str(folder)!r} is a folder; give a file saved with torch.save" in err
    assert ".pt2 from torch.export" in err
    yaml_file = write(tmp_path / "run.yaml", "teacher: t.pt\n")
    err = kdlab_error(["--teacher", str(yaml_file), *student, *data], capsys)
    assert f"--teacher {str(yaml_file)!r} is not a torch file (" in err and "torch.save(model, path)" in err
    (tmp_path / "t.pt2").write_bytes(b"not a program")
    err = kdlab_error(["--teacher", str(tmp_path / "t.pt2"), *student, *data], capsys)
    assert "t.pt2' is not a torch.export program (not a zip archive)" in err
    torch.save(torch.zeros(2), tmp_path / "tensor.pt2")  # a zip, but not a program
    err = kdlab_error(["--teacher", str(tmp_path / "tensor.pt2"), *student, *data], capsys)
    assert "tensor.pt2' cannot be read as a torch.export program (" in err
    # A module whose class cannot be imported where it is loaded.
    (tmp_path / "gone_module.py").write_text("from torch import nn\nclass Net(nn.Linear):\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import gone_module

        torch.save(gone_module.Net(64, 3), tmp_path / "gone.pt")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("gone_module", None)
    err = kdlab_error(["--teacher", str(tmp_path / "gone.pt"), *student, *data], capsys)
    assert "holds a model whose class cannot be imported here (No module named 'gone_module')" in err
    # --out: a file, or under a file; refused before the teacher is even read.
    out_file = write(tmp_path / "results.txt", "mine")
    err = kdlab_error(["--teacher", str(folder), *student, "--data", str(npz), "--out", str(out_file)],
                      capsys)
    assert f"--out {str(out_file)!r} is a file; give a folder" in err
    err = kdlab_error(["--teacher", str(teacher), *student, "--data", str(npz), "--out", str(out_file / "x")],
                      capsys)
    assert "cannot be created:" in err and "results.txt' is a file, not a folder" in err
    assert out_file.read_text() == "mine"
    # Students that cannot be built.
    err = kdlab_error(["--teacher", str(teacher), "--student", "mlp(3)", *data], capsys)
    assert "--student 'mlp(3)' could not be built: TypeError:" in err

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    spec = "torchvision.models.resnet18(weights='DEFAULT')"
    err = kdlab_error(["--teacher", str(teacher), "--student", spec, *data], capsys)
    assert f"--student {spec!r} could not be built: URLError:" in err and "no network" in err
    assert "weights=None" in err
    # Models that cannot take the data's examples: grayscale images, a 3-channel student and teacher.
    images = image_folder(tmp_path / "images")
    spec = "torchvision.models.resnet18(num_classes=3)"
    err = kdlab_error(["--teacher", str(teacher), "--student", spec, "--data", str(images)], capsys)
    assert f"--student {spec!r} fails on the examples of --data {str(images)!r}, each of shape (1, 8, " in err
    assert "the images are all grayscale, so one channel" in err and "RuntimeError: Given groups=1" in err
    rgb = image_folder(tmp_path / "rgb", mode="RGB")
    err = kdlab_error(["--teacher", str(teacher), *student, "--data", str(rgb)], capsys)
    assert f"--teacher {str(teacher)!r} fails on the examples of --data {str(rgb)!r}, each of shape" in err
    assert "(3, 8, 8) (channels, height, width): RuntimeError:" in err and "--image-size N" in err
    assert trained == [] and not (tmp_path / "out").exists()
