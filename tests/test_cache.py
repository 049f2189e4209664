import pytest
import torch

import kdlab
from kdlab import cache, models
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
    first, history = cache.trained(make, train, name="t", lr=0.1)
    second, loaded_history = cache.trained(make, train, name="t", lr=0.1)
    assert calls["n"] == 1
    assert loaded_history.epochs == history.epochs
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    cache.trained(make, train, name="t", lr=0.2)  # another knob, another entry
    assert calls["n"] == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "digest"])
def test_a_damaged_entry_is_detected_and_recomputed_never_used(damage):
    train, calls = counting_trainer()
    reference, _ = cache.trained(make, train, name="t")
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
        model, _ = cache.trained(make, train, name="t")
    assert calls["n"] == 2
    for a, b in zip(reference.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_entry_of_another_kdlab_version_is_not_used(monkeypatch):
    train, calls = counting_trainer()
    cache.trained(make, train, name="t")
    monkeypatch.setattr(kdlab, "__version__", "0.0.0-other")
    cache.trained(make, train, name="t")
    assert calls["n"] == 2


def test_logits_of_a_cached_model_are_computed_once(monkeypatch):
    train, _ = counting_trainer()
    model, _ = cache.trained(make, train, name="t")
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

    _, stored = cache.trained(make, train, name="stages")
    _, loaded = cache.trained(make, lambda model: pytest.fail("trained again"), name="stages")
    assert [h.to_dict() for h in loaded] == [h.to_dict() for h in stored]


def test_a_cached_model_is_keyed_by_its_test_set_too():
    from kdlab import data
    from kdlab.methods.common import train_model

    split = data.load("digits")
    knobs = {"epochs": 1, "device": "cpu", "progress": False, "cache_parts": {"kind": "plain"}}
    make_net = lambda: models.mlp((64, 10))  # noqa: E731
    _, on_first = train_model(make_net, split.train, test=split.test.subset(100, seed=0), **knobs)
    other = split.test.subset(200, seed=1)
    model, on_other = train_model(make_net, split.train, test=other, **knobs)
    assert len(entry_files()) == 2
    errors = kdlab.metrics.error_count(kdlab.metrics.predict(model, other.x), other.y)
    assert on_other.last("test_error") == errors
    assert on_other.last("test_error") != on_first.last("test_error")
