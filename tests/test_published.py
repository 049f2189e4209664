"""The published settings (kdlab.published) are knobs the recipes take, and mean what their papers say."""

import pytest
import torch

from kdlab import augment, models, published
from kdlab.data import Tensors
from kdlab.methods import hinton, train_model


def cifar_like(n=64, classes=100):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=generator)
    return Tensors(x, torch.randint(0, classes, (n,), generator=generator))


def student():
    return models.create("resnet8", num_classes=100)


@pytest.mark.parametrize("setting", ["CIFAR100_BENCHMARK", "DML_CIFAR100"])
def test_a_setting_trains_a_benchmark_network_through_a_recipe(setting):
    knobs = {**getattr(published, setting), "epochs": 1}
    model, history = train_model(student, cifar_like(), device="cpu", progress=False, **knobs)
    assert history["lr"] == [knobs["lr"]]  # the first epoch, before any milestone
    assert len(history) == 1 and torch.isfinite(torch.tensor(history["loss"])).all()


def test_the_benchmark_setting_is_the_crd_recipe():
    s = published.CIFAR100_BENCHMARK
    assert (s["optimizer"], s["lr"], s["weight_decay"], s["batch_size"], s["epochs"]) == (
        "sgd_momentum", 0.05, 5e-4, 64, 240)
    assert tuple(s["schedule"]) == ("step", (150, 180, 210), 0.1, 0)
    assert s["augment"] == augment.CIFAR and (s["augment"].pad, s["augment"].flip) == (4, 0.5)
    assert published.CIFAR100_BENCHMARK_KD == {"temperature": 4.0, "alpha": 0.9}
    d = published.DML_CIFAR100
    assert (d["optimizer"], d["lr"], d["batch_size"], d["epochs"]) == ("sgd", 0.1, 64, 200)
    assert tuple(d["schedule"])[1] == (60, 120, 180)  # divided by 10 every 60 epochs


def test_the_benchmark_kd_runs_with_the_teacher_on_every_augmented_batch():
    teacher = models.create("resnet8", num_classes=100).eval()
    knobs = {**published.CIFAR100_BENCHMARK, **published.CIFAR100_BENCHMARK_KD, "epochs": 1}
    _, history = hinton.distill(student, cifar_like(), teacher, device="cpu", progress=False, **knobs)
    assert {"soft", "hard"} <= set(history.keys())


def test_every_benchmark_row_names_networks_kdlab_builds():
    for (teacher, student_name), row in published.CIFAR100_TOP1.items():
        models.create(teacher, num_classes=100)
        models.create(student_name, num_classes=100)
        assert set(row) == {"teacher", "student", "kd", "fitnet", "fsp"}
        assert row["teacher"] > row["student"]
