"""Models that return more than logits (a Hugging Face ModelOutput or dict, a tuple): kdlab.distill reads
their logits through kdlab.adapters.logits_of, or a user's selector, and gives the models back as they
were."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import kdlab
from kdlab import adapters, data


@dataclass
class ModelOutput:  # the shape of a transformers ModelOutput: attributes, logits among them
    logits: torch.Tensor
    hidden_states: torch.Tensor


class DictNet(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        h = self.body(x)
        return {"hidden": h, "logits": self.head(h)}


class TupleNet(DictNet):
    def forward(self, x):
        h = self.body(x)
        return self.head(h), h


class OutputNet(DictNet):
    def forward(self, x):
        h = self.body(x)
        return ModelOutput(logits=self.head(h), hidden_states=h)


def test_logits_of_reads_each_kind_of_output():
    logits, other = torch.randn(4, 10), torch.randn(4, 3)
    assert adapters.logits_of(logits) is logits
    assert adapters.logits_of({"hidden": other, "logits": logits}) is logits
    assert adapters.logits_of(ModelOutput(logits, other)) is logits
    assert adapters.logits_of((logits, other)) is logits
    assert adapters.logits_of(["not a tensor", logits]) is logits  # the first tensor of a sequence
    assert adapters.logits_of({"a": other, "b": logits}, select=lambda out: out["b"]) is logits


@pytest.mark.parametrize("output, select, says", [
    ({"hidden": torch.zeros(2, 3)}, None, "got dict; a model returning a dict or ModelOutput needs"),
    ("text", None, "the model must give the logits as a tensor (batch, classes), got str"),
    ((torch.zeros(2, 3),), lambda out: out[1:], "the output selector must give the logits as a tensor"),
])
def test_an_output_without_logits_is_an_error_that_says_what_to_pass(output, select, says):
    with pytest.raises(TypeError, match=r"output=<a function from the model's output to its logits>") as err:
        adapters.logits_of(output, select)
    assert says in str(err.value)


@pytest.mark.parametrize("method", ["hinton", "logits", "born_again"])
def test_distill_takes_models_that_return_dicts_tuples_and_model_outputs(method):
    digits = data.load("digits", train_size=300, test_size=100)
    torch.manual_seed(0)
    teacher = DictNet(64)
    student = TupleNet()
    knobs = {"generations": 1} if method == "born_again" else {}
    trained, history = kdlab.distill(teacher, student, digits.train, digits.test, method=method, epochs=1,
                                     device="cpu", progress=False, **knobs)
    assert "test_error" in history.keys()
    x = digits.test.x[:5]
    assert isinstance(teacher(x), dict) and not teacher._forward_hooks  # the teacher is as it was given
    out = trained(x)
    assert isinstance(out, tuple) and out[0].shape == (5, 10)  # the student gives its own outputs again
    assert isinstance(student(x), tuple)


def test_a_model_output_teacher_and_a_selector_for_an_odd_student():
    digits = data.load("digits", train_size=300, test_size=100)
    torch.manual_seed(0)

    class Odd(DictNet):
        def forward(self, x):
            return {"scores": self.head(self.body(x))}

    def select(out):
        return out["scores"] if isinstance(out, dict) else out.logits

    _, history = kdlab.distill(OutputNet(), Odd(), digits.train, digits.test, epochs=1, device="cpu",
                               progress=False, output=select)
    assert len(history) == 1


def test_one_selector_serves_a_teacher_with_model_outputs_and_a_student_of_plain_logits():
    digits = data.load("digits", train_size=300, test_size=100)
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    _, history = kdlab.distill(OutputNet(), plain, digits.train, digits.test, epochs=1, device="cpu",
                               progress=False, output=lambda out: out.logits)
    assert len(history) == 1
    assert adapters.logits_of(torch.ones(2, 3), select=lambda out: out.logits).shape == (2, 3)


def test_select_logits_keeps_layer_names_and_is_undone():
    net = DictNet()
    names = [name for name, _ in net.named_modules()]
    adapters.select_logits(net)
    adapters.select_logits(net)  # once is enough: no second hook
    assert len(net._forward_hooks) == 1 and [name for name, _ in net.named_modules()] == names
    assert isinstance(net(torch.randn(2, 64)), torch.Tensor)
    adapters.restore_output(net)
    assert isinstance(net(torch.randn(2, 64)), dict) and not net._forward_hooks


def test_a_selector_of_the_users_own_code_is_refused_where_a_cache_key_would_miss_it(tmp_path, monkeypatch):
    """The cache keys kdlab's code only: a user's selector cannot enter a key, so a cached run with one
    could answer a run with another (a wrong hit); refused before any training, naming what to do."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    digits = data.load("digits", train_size=300, test_size=100)
    with pytest.raises(ValueError, match="output=<selector> with cache=True.*leave cache off"):
        kdlab.distill(DictNet(), TupleNet(), digits.train, output=lambda out: out[0], cache=True, epochs=1)
    from kdlab.methods import train_model

    teacher, _ = train_model(lambda: adapters.select_logits(DictNet()), digits.train, epochs=1, cache=True,
                             progress=False)
    with pytest.raises(ValueError, match=r"teacher loaded from kdlab's cache.*copy.deepcopy\(teacher\)"):
        kdlab.distill(teacher, TupleNet(), digits.train, output=lambda out: out, epochs=1)
