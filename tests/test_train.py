import ast
from pathlib import Path

import pytest
import torch

from kdlab import data, models, train
from kdlab.train import History, fit


def digits_loader(seed=0, batch_size=64):
    split = data.load("digits")
    return split, data.TensorLoader(*split.train.tensors, batch_size=batch_size, seed=seed)


def dropout_net():
    torch.manual_seed(0)
    return models.mlp((64, 32, 10), dropout=0.3)


def test_fit_learns_and_logs_every_term_and_test_metric():
    split, loader = digits_loader()
    history = fit(dropout_net(), loader, epochs=4, lr=1e-2, test=split.test, device="cpu")
    assert len(history) == 4
    assert {"epoch", "loss", "seconds", "lr", "test_error", "test_accuracy", "test_loss"} <= set(
        history.keys()
    )
    assert history["test_error"][-1] < history["test_error"][0]
    assert history.last("test_accuracy") > 0.8


class Interrupt(Exception):
    pass


def interrupting(after_batches):
    calls = {"n": 0}

    def objective(model, batch):
        calls["n"] += 1
        if calls["n"] > after_batches:
            raise Interrupt
        return train.cross_entropy(model, batch)

    return objective


@pytest.mark.parametrize("schedule", [None, "cosine"])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, schedule):
    knobs = dict(epochs=3, lr=1e-2, device="cpu", schedule=schedule, optimizer="adam")
    _, loader = digits_loader()
    reference = dropout_net()
    fit(reference, loader, checkpoint=tmp_path / "a.pt", **knobs)

    _, loader = digits_loader()
    interrupted = dropout_net()
    per_epoch = len(loader)
    with pytest.raises(Interrupt):  # dies in the middle of the third epoch
        fit(interrupted, loader, interrupting(2 * per_epoch + 3), checkpoint=tmp_path / "b.pt", **knobs)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epochs_done"] == 2

    _, loader = digits_loader()
    resumed = dropout_net()
    history = fit(resumed, loader, checkpoint=tmp_path / "b.pt", resume=True, **knobs)
    assert len(history) == 3
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_non_finite_term_stops_with_epoch_and_term_named_and_keeps_the_checkpoint(tmp_path):
    _, loader = digits_loader()
    per_epoch = len(loader)
    calls = {"n": 0}

    def objective(model, batch):
        calls["n"] += 1
        terms = dict(train.cross_entropy(model, batch))
        bad = torch.tensor(float("nan")) if calls["n"] > per_epoch + 2 else torch.tensor(0.0)
        terms["penalty"] = bad
        return terms

    with pytest.raises(FloatingPointError, match=r"'penalty' became nan during epoch 2.*epoch 1 is kept"):
        fit(dropout_net(), loader, objective, epochs=3, device="cpu", checkpoint=tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=False)["epochs_done"] == 1


def test_an_objective_that_yields_takes_one_step_per_dict():
    _, loader = digits_loader(batch_size=256)
    steps = {"n": 0}

    def two_steps(model, batch):
        for _ in range(2):
            steps["n"] += 1
            yield {"loss": train.cross_entropy(model, batch)["loss"]}

    class Counting(torch.optim.SGD):
        count = 0

        def step(self, closure=None):
            Counting.count += 1
            return super().step(closure)

    model = dropout_net()
    fit(model, loader, two_steps, epochs=1, optimizer=Counting(model.parameters(), lr=0.1), device="cpu")
    assert Counting.count == steps["n"] == 2 * len(loader)


def counting_hook():
    seen = []

    def after_step(model):
        seen.append(model)

    return seen, after_step


def test_after_step_is_called_with_the_model_once_per_optimiser_step():
    _, loader = digits_loader(batch_size=256)
    model = dropout_net()
    seen, after_step = counting_hook()
    fit(model, loader, epochs=2, device="cpu", progress=False, after_step=after_step)
    assert len(seen) == 2 * len(loader)
    assert all(m is model for m in seen)

    def two_steps(model, batch):
        for _ in range(2):
            yield {"loss": train.cross_entropy(model, batch)["loss"]}

    seen, after_step = counting_hook()
    fit(dropout_net(), loader, two_steps, epochs=2, device="cpu", progress=False, after_step=after_step)
    assert len(seen) == 2 * 2 * len(loader)


def max_row_norm(model):
    layers = [m for m in model.modules() if isinstance(m, models.MaxNormLinear)]
    norms = [layer.weight.detach().norm(dim=1).max() for layer in layers]
    assert len(norms) == 2  # both layers of mlp((64, 32, 10)) are constrained
    return float(torch.stack(norms).max())


@pytest.mark.parametrize("hooked", [False, True])
def test_max_norm_is_applied_only_through_the_after_step_hook(hooked):
    max_norm = 0.3  # well below the largest row norms at initialisation (about 0.65 in both layers)
    _, loader = digits_loader()
    torch.manual_seed(0)
    model = models.mlp((64, 32, 10), max_norm=max_norm)
    hook = {"after_step": models.constrain_} if hooked else {}
    fit(model, loader, epochs=1, lr=0.05, device="cpu", progress=False, **hook)
    if hooked:
        assert max_row_norm(model) <= max_norm + 1e-5
    else:
        assert max_row_norm(model) > max_norm + 0.1


def imported_modules(path):
    """Every module an ``import`` or ``from ... import`` in ``path`` names, relative ones resolved
    against the ``kdlab`` package; ``from a import b`` counts as both ``a`` and ``a.b``."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["kdlab", *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_the_training_loop_imports_no_model_module():
    names = imported_modules(train.__file__)
    assert "kdlab.distributed" in names  # the parse sees train.py's own imports
    assert not {n for n in names if n == "kdlab.models" or n.startswith("kdlab.models.")}


def test_bad_arguments_are_clear():
    _, loader = digits_loader()
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        fit(dropout_net(), loader, epochs=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        fit(dropout_net(), loader, epochs=1, schedule="linear")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fit(dropout_net(), loader, epochs=1, optimizer="lbfgs")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="torch sees no CUDA GPU"):
            fit(dropout_net(), loader, epochs=1, device="cuda")


def test_history_round_trips_and_names_missing_keys():
    history = History([{"epoch": 1.0, "loss": 0.5}, {"epoch": 2.0, "loss": 0.25}])
    assert History.from_dict(history.to_dict()).epochs == history.epochs
    assert history["loss"] == [0.5, 0.25]
    with pytest.raises(KeyError, match="history has no 'test_error'"):
        history["test_error"]


def test_peak_is_the_best_epochs_value_beside_the_last():
    # An evaluation every other epoch leaves NaN in between (mutual learning's eval_every).
    rows = [0.60, float("nan"), 0.72, 0.70]
    history = History([{"epoch": k + 1.0, "test_accuracy": v} for k, v in enumerate(rows)])
    assert history.peak("test_accuracy") == 0.72 and history.last("test_accuracy") == 0.70
    assert history.peak("test_accuracy", lower=True) == 0.60
    with pytest.raises(ValueError, match="no value of 'loss'"):
        History([{"epoch": 1.0, "loss": float("nan")}]).peak("loss")


def test_train_model_takes_a_loader_and_trains_as_from_the_same_tensors():
    # The same tensors, seed and batch size, once as tensors and once as a loader made outside:
    # train_model builds that very loader from the tensors, so the weights must be identical.
    from kdlab.methods.common import train_model

    split = data.load("digits")
    knobs = {"epochs": 2, "seed": 5, "batch_size": 64, "device": "cpu", "progress": False}
    from_tensors, _ = train_model(lambda: models.mlp((64, 32, 10)), split.train, **knobs)
    loader = data.TensorLoader(*split.train.tensors, batch_size=64, seed=5)
    from_loader, _ = train_model(lambda: models.mlp((64, 32, 10)), loader, **knobs)
    for a, b in zip(from_tensors.state_dict().values(), from_loader.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="cache=True needs the training data as tensors.*TensorLoader"):
        train_model(lambda: models.mlp((64, 32, 10)), loader, cache=True, **knobs)
