"""The one table of methods: every consumer reads it, and every method runs through it the same way
with and without the cache."""


import pytest
import torch
from toys import FIT, net, same_weights, toy

import kdlab
from kdlab import cli_distill
from kdlab.api import METHODS, knobs_of
from kdlab.book import compare
from kdlab.methods import registry

LAYERS = {"fitnets": {"hint": "relu", "guided": "relu"}, "fsp": {"pairs": [("conv", "relu")]},
          "tsne": {"layer": "flatten", "teacher_layer": "flatten", "perplexity": 4.0},
          "born_again": {"generations": 2}}








def test_every_consumer_reads_the_registry():
    assert METHODS == tuple(name for name, m in registry.METHODS.items() if m.teacher)
    labels = (compare.ALONE, *(m.label for m in registry.METHODS.values()), *compare.VARIANTS)
    assert compare.METHODS == labels
    for name, knobs in compare.VARIANTS.values():  # a variant is a registry method with knobs it takes
        registry.method(name).resolve(knobs)
    for name, method in registry.METHODS.items():
        cohort = ("cohort", "students") if name == "mutual" else ()  # kdlab.mutual's first argument
        assert knobs_of(name) == {k: v for k, v in {**registry.TRAINING_KNOBS, **method.knobs}.items()
                                  if k not in cohort}
        assert method.stages and method.paper and method.label
    parser = cli_distill.add_parser(__import__("argparse").ArgumentParser().add_subparsers())
    choices = next(a.choices for a in parser._actions if a.dest == "method")
    assert set(choices) <= set(METHODS)


def test_hintons_temperature_and_weight_are_one_pair_of_defaults():
    defaults = {name: (m.knobs.get("temperature"), m.knobs.get("alpha"))
                for name, m in registry.METHODS.items()}
    hinton = (registry.HINTON_TEMPERATURE, registry.HINTON_ALPHA)
    assert defaults["hinton"] == defaults["fitnets"] == hinton
    setting = compare.Setting.__dataclass_fields__
    assert (setting["temperature"].default, setting["alpha"].default) == defaults["hinton"]


@pytest.mark.parametrize("method", [*METHODS])
def test_each_method_gives_one_result_with_and_without_the_cache(method):
    torch.manual_seed(1)
    teacher = net(width=4)
    knobs = {**FIT, **LAYERS.get(method, {})}
    plain, history = kdlab.distill(teacher, net, toy(), toy(seed=1), method=method, seed=2, **knobs)
    cold, _ = kdlab.distill(teacher, net, toy(), toy(seed=1), method=method, seed=2, cache=True, **knobs)
    warm, again = kdlab.distill(teacher, net, toy(), toy(seed=1), method=method, seed=2, cache=True, **knobs)
    assert same_weights(plain, cold) and same_weights(cold, warm)
    assert again.last("test_error") == history.last("test_error")
    other, _ = kdlab.distill(teacher, net, toy(), toy(seed=1), method=method, seed=3, cache=True, **knobs)
    assert not same_weights(other, warm)


def test_mutual_runs_through_the_registry_with_and_without_the_cache():
    plain, _ = kdlab.mutual([net, net], toy(), toy(seed=1), seed=2, **FIT)
    cold, _ = kdlab.mutual([net, net], toy(), toy(seed=1), seed=2, cache=True, **FIT)
    warm, _ = kdlab.mutual([net, net], toy(), toy(seed=1), seed=2, cache=True, **FIT)
    assert all(same_weights(a, b) and same_weights(b, c) for a, b, c in zip(plain, cold, warm, strict=True))


def test_an_unknown_method_lists_the_registry():
    with pytest.raises(ValueError, match="method must be one of"):
        registry.method("crd")
