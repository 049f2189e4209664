"""DKD, DIST and logit standardisation as recipes: their objectives, the warm-up, the registry's
entries and the cache keys that must tell their knobs apart."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kdlab
from kdlab import losses
from kdlab.methods import hinton, modern
from tests.toys import FIT, net, same_weights, toy


def batch(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Linear(5, 4)
    x, y = torch.randn(8, 5, generator=generator), torch.randint(0, 4, (8,), generator=generator)
    return model, (x, y, 3 * torch.randn(8, 4, generator=generator))


def test_dkd_objective_is_labels_plus_the_warmed_up_decoupled_term():
    model, (x, y, teacher) = batch()
    objective = modern.dkd_objective(4.0, 1.0, 8.0, warmup=4)
    for step in range(6):
        terms = objective(model, (x, y, teacher))
        student = model(x)
        weight = min((step + 1) / 4, 1.0)
        decoupled = losses.dkd_loss(student, teacher, y, 4.0)
        expected = torch.nn.functional.cross_entropy(student, y) + weight * decoupled
        torch.testing.assert_close(terms["loss"], expected)
        assert terms["warmup"].item() == pytest.approx(weight)


def test_standardize_feeds_z_scored_logits_to_the_soft_term_only():
    model, (x, y, teacher) = batch(1)
    student = model(x)
    z_s, z_t = losses.standardize_logits(student), losses.standardize_logits(teacher)
    terms = hinton.objective(2.0, 0.8, standardize=True)(model, (x, y, teacher))
    hard = torch.nn.functional.cross_entropy(student, y)
    expected = 0.8 * losses.soft_target_loss(z_s, z_t, 2.0) + 0.2 * hard
    torch.testing.assert_close(terms["loss"], expected)
    decoupled = modern.dkd_objective(2.0, 1.0, 8.0, standardize=True)(model, (x, y, teacher))
    torch.testing.assert_close(decoupled["tckd"], losses.dkd_terms(z_s, z_t, y, 2.0)["tckd"])


def test_dist_objective_is_labels_plus_both_relations():
    model, (x, y, teacher) = batch(2)
    terms = modern.dist_objective(1.0, 2.0, 0.5)(model, (x, y, teacher))
    student = model(x)
    hard = torch.nn.functional.cross_entropy(student, y)
    expected = hard + losses.dist_loss(student, teacher, 1.0, 2.0, 0.5)
    torch.testing.assert_close(terms["loss"], expected)


def test_warmup_by_default_is_the_papers_share_of_training():
    assert modern.warmup_steps(None, 240, 10) == pytest.approx(200)  # 20 of 240 epochs
    assert modern.warmup_steps(0, 12, 60) == 0 and modern.warmup_weight(0, 0) == 1.0
    assert [modern.warmup_weight(s, 2.5) for s in range(4)] == pytest.approx([0.4, 0.8, 1.0, 1.0])
    with pytest.raises(ValueError, match="warmup_epochs"):
        modern.warmup_steps(-1, 12, 60)


@pytest.mark.parametrize("method", ["dkd", "dist"])
def test_registry_methods_train_from_tensors_and_from_a_loader(method):
    train = toy()
    teacher, _ = kdlab.methods.train_model(net, train, **FIT)
    from_tensors, history = kdlab.distill(teacher, net, train, method=method, **FIT)
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=16)
    from_loader, _ = kdlab.distill(teacher, net, loader, method=method, epochs=1, progress=False,
                                   device="cpu")
    assert history.last("loss") > 0
    assert isinstance(from_tensors, nn.Module) and isinstance(from_loader, nn.Module)


def test_each_knob_of_the_new_methods_is_in_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path))
    train = toy()
    teacher, _ = kdlab.methods.train_model(net, train, **FIT)

    def distilled(method, **knobs):
        return kdlab.distill(teacher, net, train, method=method, cache=True, **knobs, **FIT)[0]

    assert same_weights(distilled("dkd"), distilled("dkd"))
    changed = [("dkd", {"nckd_weight": 2.0}), ("dkd", {"standardize": True}), ("dkd", {"warmup_epochs": 1}),
               ("dkd", {"tckd_weight": 0.5}), ("dkd", {"temperature": 2.0}), ("dist", {"intra_weight": 0.0}),
               ("dist", {"inter_weight": 3.0}), ("dist", {"temperature": 4.0}),
               ("hinton", {"standardize": True})]
    for method, knobs in changed:
        assert not same_weights(distilled(method), distilled(method, **knobs)), f"{method} {knobs}: wrong hit"
