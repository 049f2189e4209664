import ast
import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kdlab
from kdlab import cache, data, models
from kdlab.data import Tensors
from kdlab.methods.common import train_model
from kdlab.train import History


def counting_trainer():
    calls = {"n": 0}

    def train(model):
        calls["n"] += 1
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return History([{"epoch": 1.0, "test_error": 3.0}])

    return train, calls


def make():
    torch.manual_seed(0)
    return models.mlp((4, 3, 2))


def entry_files():
    return sorted(cache.cache_dir().glob("*.pt"))


def test_a_trained_model_is_trained_once_then_loaded():
    train, calls = counting_trainer()
    first, history = cache.trained(make, train, "t", lr=0.1)
    second, loaded_history = cache.trained(make, train, "t", lr=0.1)
    assert calls["n"] == 1
    assert loaded_history.epochs == history.epochs
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    cache.trained(make, train, "t", lr=0.2)  # another knob, another entry
    assert calls["n"] == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "digest"])
def test_a_damaged_entry_is_detected_and_recomputed_never_used(damage):
    train, calls = counting_trainer()
    reference, _ = cache.trained(make, train, "t")
    (path,) = entry_files()
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        path.with_suffix(".sha256").unlink()
    with pytest.warns(UserWarning, match="unusable"):
        model, _ = cache.trained(make, train, "t")
    assert calls["n"] == 2
    for a, b in zip(reference.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_entry_of_another_kdlab_version_is_not_used(monkeypatch):
    train, calls = counting_trainer()
    cache.trained(make, train, "t")
    monkeypatch.setattr(kdlab, "__version__", "0.0.0-other")
    cache.trained(make, train, "t")
    assert calls["n"] == 2


def test_logits_of_a_cached_model_are_computed_once(monkeypatch):
    train, _ = counting_trainer()
    model, _ = cache.trained(make, train, "t")
    x = torch.randn(10, 4)
    calls = {"n": 0}
    original = cache.metrics.predict

    def counting_predict(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(cache.metrics, "predict", counting_predict)
    first = cache.logits(model, x)
    second = cache.logits(model, x)
    third = cache.logits(model, x + 1)
    assert calls["n"] == 2
    assert torch.equal(first, second) and not torch.equal(first, third)
    torch.testing.assert_close(first, original(model, x))


def test_key_depends_on_every_part():
    assert cache.key("a", {"x": 1}) != cache.key("a", {"x": 2})
    assert cache.key("a", {"x": 1}) != cache.key("b", {"x": 1})
    assert cache.key("a", {"x": (1, 2)}) == cache.key("a", {"x": [1, 2]})


def test_a_tensor_in_parts_is_keyed_by_its_content_not_its_elided_repr():
    a = torch.zeros(10_000)
    b = a.clone()
    b[5_000] = 1.0  # str(a) == str(b): both print as "tensor([0., 0., 0.,  ..., 0., 0., 0.])"
    assert str(a) == str(b)
    assert cache.key("x", {"t": a}) != cache.key("x", {"t": b})
    assert cache.key("x", {"t": a}) == cache.key("x", {"t": a.clone()})


def test_a_recipe_of_several_stages_caches_each_history():
    def train(model):
        return [History([{"epoch": 1.0, "loss": 2.0}]), History([{"epoch": 1.0, "loss": 5.0}])]

    _, stored = cache.trained(make, train, "stages")
    _, loaded = cache.trained(make, lambda model: pytest.fail("trained again"), "stages")
    assert [h.to_dict() for h in loaded] == [h.to_dict() for h in stored]


def test_a_cached_model_is_keyed_by_its_test_set_too():
    split = data.load("digits")
    knobs = {"epochs": 1, "device": "cpu", "progress": False, "cache": True}
    make_net = lambda: models.mlp((64, 10))  # noqa: E731
    _, on_first = train_model(make_net, split.train, test=split.test.subset(100, seed=0), **knobs)
    other = split.test.subset(200, seed=1)
    model, on_other = train_model(make_net, split.train, test=other, **knobs)
    assert len(entry_files()) == 2
    errors = kdlab.metrics.error_count(kdlab.metrics.predict(model, other.x), other.y)
    assert on_other.last("test_error") == errors
    assert on_other.last("test_error") != on_first.last("test_error")


# --- The cache contract: an entry is keyed by code, initial state, data and every knob -------------

def _linear():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def _same(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


def test_the_starting_weights_are_in_the_key():
    split = data.load("digits")
    torch.manual_seed(0)
    teacher = models.mlp((64, 32, 10))
    torch.manual_seed(1)
    student_a = _linear()
    student_b = copy.deepcopy(student_a)
    with torch.no_grad():
        student_b[1].weight.zero_()
    knobs = dict(method="hinton", epochs=1, device="cpu", progress=False)
    cached_a, _ = kdlab.distill(teacher, student_a, split.train, cache=True, **knobs)
    cached_b, _ = kdlab.distill(teacher, student_b, split.train, cache=True, **knobs)
    assert not _same(cached_a, cached_b)
    fresh_b, _ = kdlab.distill(teacher, student_b, split.train, cache=False, **knobs)
    assert _same(cached_b, fresh_b)
    assert len(entry_files()) == 2  # two students; the teacher did not come from the cache, nor its logits


def test_a_copy_of_a_cached_model_does_not_read_the_cached_models_outputs():
    train, _ = counting_trainer()
    source, _ = cache.trained(make, train, "t")
    x = torch.randn(6, 4)
    source_logits = cache.logits(source, x)
    assert cache.key_of(source) is not None
    copied = copy.deepcopy(source)
    assert cache.key_of(copied) is None
    with torch.no_grad():
        for p in copied.parameters():
            p.mul_(-1.0)
    torch.testing.assert_close(cache.logits(copied, x), kdlab.metrics.predict(copied, x))
    assert not torch.equal(cache.logits(copied, x), source_logits)


def test_a_cached_model_trained_further_gets_the_key_of_its_new_weights():
    train, _ = counting_trainer()
    model, _ = cache.trained(make, train, "t")
    x = torch.randn(6, 4)
    before = cache.logits(model, x)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    after = cache.logits(model, x)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, kdlab.metrics.predict(model, x))


def test_fsp_stage_two_of_a_cached_stage_one_has_its_own_logits():
    from kdlab.methods import fsp

    split = data.load("digits")
    train = Tensors(split.train.x[:200], split.train.y[:200])
    knobs = dict(epochs=1, batch_size=50, device="cpu", progress=False)
    torch.manual_seed(0)
    teacher = models.resnet(8, (4, 8, 16), in_channels=1, num_classes=10)
    student = lambda: models.resnet(8, (4, 8, 16), in_channels=1, num_classes=10)  # noqa: E731
    stage_1, _ = fsp.fsp_stage(student, teacher, train, cache=True, **knobs)
    stage_2, _ = fsp.train_from(stage_1, train, **knobs)
    torch.testing.assert_close(cache.logits(stage_2, train.x), kdlab.metrics.predict(stage_2, train.x))
    assert not torch.allclose(cache.logits(stage_2, train.x), cache.logits(stage_1, train.x))


def test_born_again_through_distill_is_the_same_with_and_without_the_cache():
    split = data.load("digits")
    torch.manual_seed(0)
    teacher = models.mlp((64, 32, 10))
    knobs = dict(method="born_again", generations=2, epochs=1, device="cpu", progress=False)
    plain, _ = kdlab.distill(teacher, _linear, split.train, cache=False, **knobs)
    cold, _ = kdlab.distill(teacher, _linear, split.train, cache=True, **knobs)
    warm, _ = kdlab.distill(teacher, _linear, split.train, cache=True, **knobs)
    assert _same(plain, cold) and _same(cold, warm)


def test_the_library_code_is_in_the_key_and_the_books_machinery_is_not(tmp_path):
    package = tmp_path / "kdlab"
    shutil.copytree(Path(kdlab.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    digest = cache.code_digest(package)
    (package / "book" / "plots.py").write_text((package / "book" / "plots.py").read_text() + "\n# a plot\n")
    (package / "cli.py").write_text((package / "cli.py").read_text() + "\n# a command\n")
    assert cache.code_digest.__wrapped__(package) == digest
    soft = package / "losses" / "soft.py"
    soft.write_text(soft.read_text().replace("temperature", "temperature ", 1))
    assert cache.code_digest.__wrapped__(package) != digest
    assert package / "methods" / "hinton.py" in cache.library_sources(package)
    assert not any("book" in p.relative_to(package).parts for p in cache.library_sources(package))


def test_an_entry_written_by_other_code_is_not_used(monkeypatch):
    train, calls = counting_trainer()
    cache.trained(make, train, "t")
    monkeypatch.setattr(cache, "code_digest", lambda package=None: "other code")
    cache.trained(make, train, "t")
    assert calls["n"] == 2


def test_an_objective_is_keyed_by_its_code_and_the_values_it_closes_over():
    from kdlab.methods import hinton

    def key_of(objective):
        return cache.key("m", {"o": objective})

    assert key_of(hinton.objective(4.0, 0.5)) == key_of(hinton.objective(4.0, 0.5))
    assert key_of(hinton.objective(4.0, 0.5)) != key_of(hinton.objective(4.0, 0.6))
    assert key_of(hinton.objective(4.0, 0.5)) != key_of(hinton.mimic_objective())


def test_what_cannot_be_keyed_by_content_is_an_error_not_a_guess():
    with pytest.raises(TypeError, match="cannot key the function"):
        cache.key("m", {"o": lambda model, batch: None})  # not kdlab's code: its edits are not seen
    with pytest.raises(TypeError, match="cannot key a DataLoader"):
        cache.key("m", {"data": torch.utils.data.DataLoader(range(3))})
    a = np.zeros(5000)
    b = a.copy()
    b[2500] = 1.0
    assert cache.key("m", {"a": a}) != cache.key("m", {"a": b})


def test_a_recipe_keys_every_argument_of_its_call_but_where_and_how_visibly_it_runs():
    split = data.load("digits")
    train = Tensors(split.train.x[:100], split.train.y[:100])
    base = dict(epochs=1, batch_size=50, device="cpu", progress=False, cache=True)
    train_model(_linear, train, **base)
    count = len(entry_files())
    train_model(_linear, train, **{**base, "desc": "another label", "progress": False})
    assert len(entry_files()) == count  # a label is not a knob
    changes = ({"lr": 0.01}, {"seed": 1}, {"optimizer": "sgd"}, {"weight_decay": 0.1}, {"schedule": "cosine"},
               {"batch_size": 25}, {"epochs": 2}, {"test": split.test})
    for change in changes:
        train_model(_linear, train, **{**base, **change})
        assert len(entry_files()) == count + 1, change
        count += 1
    train_model(_linear, Tensors(train.x, (train.y + 1) % 10), **base)  # other labels, other entry
    assert len(entry_files()) == count + 1


def test_the_library_never_imports_the_books_machinery():
    package = Path(kdlab.__file__).parent
    for path in cache.library_sources(package):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n == "kdlab.book" or n.startswith("kdlab.book.") for n in names), (path, names)


def test_an_objective_that_counts_its_steps_is_keyed_as_it_was_before_training(monkeypatch):
    from kdlab.methods import common, fitnets

    split = data.load("digits")
    train = Tensors(split.train.x[:100], split.train.y[:100])
    logits = torch.randn(100, 10)
    knobs = dict(temperature=4.0, alpha=0.9, epochs=1, batch_size=50, device="cpu", progress=False,
                 cache=True)
    first, _ = fitnets.distill(_linear, train, logits, **knobs)  # annealed: its objective counts steps
    monkeypatch.setattr(common.train, "fit", lambda *a, **k: pytest.fail("trained again"))
    again, _ = fitnets.distill(_linear, train, logits, **knobs)
    assert _same(first, again)


def test_a_hyper_parameter_that_repr_could_hide_is_in_the_model_digest():
    torch.manual_seed(0)
    loose = models.mlp((8, 4, 2), max_norm=100.0)
    torch.manual_seed(0)
    tight = models.mlp((8, 4, 2), max_norm=1.0)
    assert cache.model_digest(loose) != cache.model_digest(tight)
    frozen = copy.deepcopy(loose)
    next(frozen.parameters()).requires_grad_(False)  # another set of trained parameters
    assert cache.model_digest(frozen) != cache.model_digest(loose)


def test_only_the_librarys_own_functions_are_keyed_by_name():
    import types

    for module in ("kdlab_mine", "kdlab.book.claims", "kdlab.cli"):
        outside = types.FunctionType((lambda: None).__code__, {"__name__": module}, "objective")
        outside.__module__ = module
        with pytest.raises(TypeError, match="cannot key the function"):
            cache.key("m", {"o": outside})


def test_a_nan_knob_still_finds_its_entry():
    calls = {"n": 0}

    def compute():
        calls["n"] += 1
        return torch.ones(2)

    cache.tensor("t", compute, knob=float("nan"))
    cache.tensor("t", compute, knob=float("nan"))
    assert calls["n"] == 1


def test_a_result_copies_and_pickles_with_its_stages():
    import pickle

    from kdlab.methods.common import Result

    history = History([{"epoch": 1.0, "loss": 0.5}])
    result = Result(make(), history, {"stage 1": History(), "stage 2": history}, {"regressor": make()})
    for other in (copy.copy(result), copy.deepcopy(result), pickle.loads(pickle.dumps(result))):
        model, again = other
        assert list(other.stages) == ["stage 1", "stage 2"] and "regressor" in other.produced
        assert again.epochs == history.epochs and _same(model, result.model)
