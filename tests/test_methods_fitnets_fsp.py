"""FitNets' and FSP's recipes: which parameters each stage trains, the annealing, the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdlab import cache, losses
from kdlab.data import Tensors
from kdlab.features import capture
from kdlab.losses.features import fsp_matrix, hint_loss
from kdlab.methods import fitnets, fsp
from kdlab.methods.common import train_model
from kdlab.models.resnet import FSP_PAIRS, resnet
from kdlab.models.vgg import vgg

STUDENT = (2, 2, "M", 3, 3, "M")


def make_student() -> nn.Module:
    return vgg(STUDENT, in_channels=1, image_size=8, hidden=(6,), num_classes=3)


def make_teacher() -> nn.Module:
    return vgg((4, "M", 5, "M"), in_channels=1, image_size=8, hidden=(6,), num_classes=3)


def tiny_data(n: int = 24, seed: int = 0) -> Tensors:
    gen = torch.Generator().manual_seed(seed)
    return Tensors(torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen))


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- FitNets -----------------------------------------------------------------------------------


def test_features_until_matches_capture_and_skips_later_layers():
    student, x = make_student(), tiny_data().x[:4]
    with capture(student, "relu3") as feats:
        student(x)
    ran = []
    handle = student.get_submodule("logits").register_forward_hook(lambda *_: ran.append(True))
    torch.testing.assert_close(fitnets.features_until(student, "relu3", x), feats["relu3"])
    handle.remove()
    assert not ran


def test_guided_parameters_are_the_convs_below_the_guided_layer():
    student = make_student()
    got = fitnets.guided_parameters(student, "relu3", tiny_data().x[:2])
    below = ("conv1", "conv2", "conv3")
    expected = [p for name, p in student.named_parameters() if name.split(".")[0] in below]
    assert [id(p) for p in got] == [id(p) for p in expected]


def test_regressor_shapes_and_parameter_counts_by_hand():
    student, teacher, x = make_student(), make_teacher(), tiny_data().x[:2]
    # Guided relu3: (3, 4, 4); hint relu2 of the teacher: (5, 4, 4) -> a 1x1 conv, 3 * 5 + 5.
    conv = fitnets.make_regressor(student, teacher, hint="relu2", guided="relu3", example=x)
    assert conv(fitnets.features_until(student, "relu3", x)).shape == (2, 5, 4, 4)
    assert sum(p.numel() for p in conv.parameters()) == 3 * 5 + 5
    # Guided relu2: (2, 8, 8) -> kernel 8 - 4 + 1 = 5; fully connected: 128 * 80 + 80.
    conv = fitnets.make_regressor(student, teacher, hint="relu2", guided="relu2", example=x)
    assert sum(p.numel() for p in conv.parameters()) == 5 * 5 * 2 * 5 + 5
    fc = fitnets.make_regressor(student, teacher, hint="relu2", guided="relu2", example=x, kind="fc")
    assert sum(p.numel() for p in fc.parameters()) == 2 * 8 * 8 * 5 * 4 * 4 + 5 * 4 * 4
    assert fc(fitnets.features_until(student, "relu2", x)).shape == (2, 5, 4, 4)
    # Counted on the meta device, without building them: the same numbers.
    for guided, kind, count in (("relu3", "conv", 3 * 5 + 5), ("relu2", "conv", 5 * 5 * 2 * 5 + 5),
                                ("relu2", "fc", 2 * 8 * 8 * 5 * 4 * 4 + 5 * 4 * 4)):
        size = fitnets.regressor_size(student, teacher, hint="relu2", guided=guided, example=x, kind=kind)
        assert size == count


def test_unknown_hint_or_guided_layer_names_the_role_and_lists_layers():
    student, teacher, train = make_student(), make_teacher(), tiny_data()
    with pytest.raises(KeyError, match=r"hint layer: model has no layer named 'conv9'.*'conv1', 'relu1'"):
        fitnets.hint_stage(make_student, teacher, train, hint="conv9", guided="relu3", epochs=1)
    with pytest.raises(KeyError, match=r"guided layer: model has no layer named 'nope'.*'conv3'"):
        fitnets.hint_stage(make_student, teacher, train, hint="relu2", guided="nope", epochs=1)
    with pytest.raises(ValueError, match=r"kind must be one of \['conv', 'fc'\], got 'big'"):
        fitnets.make_regressor(student, teacher, hint="relu2", guided="relu3", example=train.x[:2],
                               kind="big")


def test_hint_stage_trains_only_below_the_guided_layer_and_lowers_the_hint_loss():
    teacher, train = make_teacher(), tiny_data(48)
    torch.manual_seed(0)
    initial = state(make_student())
    result = fitnets.hint_stage(
        make_student, teacher, train, hint="relu2", guided="relu3", epochs=6, lr=1e-2, batch_size=8, seed=0,
        cache=False,
    )
    student, history = result
    regressor = result.produced["regressor"]
    assert list(result.stages) == ["hint stage"]
    trained = state(student)
    for name, value in initial.items():
        changed = not torch.equal(value, trained[name])
        assert changed == (name.split(".")[0] in ("conv1", "conv2", "conv3")), name
    assert history.last("loss") < history["loss"][0]
    # The logged loss is the hint loss of the regressed guided layer against the teacher's hint.
    with torch.no_grad():
        final = hint_loss(regressor(fitnets.features_until(student, "relu3", train.x)),
                          fitnets.features_until(teacher.eval(), "relu2", train.x))
    assert final.item() < history["loss"][0]


def test_hint_stage_is_cached():
    teacher, train = make_teacher(), tiny_data()
    knobs = dict(hint="relu2", guided="relu3", epochs=1, batch_size=8, seed=1, cache=True)
    first, history = fitnets.hint_stage(make_student, teacher, train, **knobs)
    second, again = fitnets.hint_stage(make_student, teacher, train, **knobs)
    assert history.to_dict() == again.to_dict()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert len(list(cache.cache_dir().glob("*.pt"))) >= 1


def test_annealed_alpha_decays_linearly_to_zero():
    values = [fitnets.annealed_alpha(0.8, step, 4) for step in range(4)]
    assert values == pytest.approx([0.8, 0.6, 0.4, 0.2])
    with pytest.raises(ValueError, match=r"step must be in \[0, 3\], got 4"):
        fitnets.annealed_alpha(0.8, 4, 4)
    with pytest.raises(ValueError, match=r"alpha must be in \[0.0, 1.0\], got 1.5"):
        fitnets.objective(2.0, 1.5, 10)


def test_distill_logs_the_annealed_weight_and_leaves_its_start_unchanged():
    train = tiny_data(20)
    teacher_logits = torch.randn(20, 3, generator=torch.Generator().manual_seed(3))
    start = make_student()
    before = state(start)
    _, history = fitnets.distill(start, train, teacher_logits, temperature=2.0, alpha=0.9, epochs=2,
                                 batch_size=8)
    # 3 steps per epoch, 6 in all: alpha * (1 - k / 6), averaged over each epoch's steps.
    per_step = [0.9 * (1 - k / 6) for k in range(6)]
    assert history["alpha"] == pytest.approx([sum(per_step[:3]) / 3, sum(per_step[3:]) / 3], rel=1e-6)
    for name, value in before.items():
        assert torch.equal(value, start.state_dict()[name]), name
    _, fixed = fitnets.distill(make_student, train, teacher_logits, temperature=2.0, alpha=0.9, epochs=2,
                               batch_size=8, anneal=False)
    assert fixed["alpha"] == pytest.approx([0.9, 0.9])
    with pytest.raises(ValueError, match="one row per training example"):
        fitnets.distill(make_student, train, teacher_logits[:5], temperature=2.0, alpha=0.9, epochs=1)


# --- FSP ---------------------------------------------------------------------------------------


def make_resnet(depth: int) -> nn.Module:
    return resnet(depth, (2, 3, 4), in_channels=1, num_classes=3)


def test_fsp_matrices_of_a_model_are_fsp_matrix_of_its_captured_maps():
    model, x = make_resnet(8).eval(), tiny_data().x[:3]
    names = [name for pair in FSP_PAIRS for name in pair]
    with torch.no_grad(), capture(model, names) as maps:
        model(x)
        got = fsp.fsp_matrices(model, x)
    assert [tuple(g.shape) for g in got] == [(3, 2, 2), (3, 3, 3), (3, 4, 4)]
    for g, (first, second) in zip(got, FSP_PAIRS, strict=True):
        torch.testing.assert_close(g, fsp_matrix(maps[first], maps[second]))


def test_teacher_matrices_are_computed_in_eval_mode_and_cached():
    train = tiny_data(10)
    # A cached teacher (it carries a cache key), so its matrices are cached too.
    teacher, _ = train_model(lambda: make_resnet(14), train, epochs=1, batch_size=5,
                             cache=True)
    got = fsp.teacher_matrices(teacher, train.x, batch_size=4)
    assert teacher.training
    with torch.no_grad():
        expected = fsp.fsp_matrices(teacher.eval(), train.x)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    again = fsp.teacher_matrices(teacher, train.x)
    torch.testing.assert_close(again[2], got[2])


def test_fsp_pair_errors_name_the_layers_and_sizes():
    model, x = make_resnet(8), tiny_data().x[:2]
    with pytest.raises(ValueError, match="pairs must list at least one"):
        fsp.check_pairs(model, [], x)
    with pytest.raises(ValueError, match="pairs must list at least one"):
        fsp.objective([])
    with pytest.raises(KeyError, match=r"model \(pairs\[0\]\): model has no layer named 'stage9'.*'stem'"):
        fsp.check_pairs(model, [("stem", "stage9")], x)
    with pytest.raises(ValueError, match=r"\('stem', 'stage2'\).*shapes \(2, 8, 8\) and \(3, 4, 4\)"):
        fsp.check_pairs(model, [("stem", "stage2")], x)
    with pytest.raises(ValueError, match=r"teacher's FSP pair 0"):
        fsp.fsp_stage(lambda: make_resnet(8), make_resnet(14), tiny_data(), pairs=[FSP_PAIRS[0]],
                      teacher_pairs=[("stem", "stage2")], epochs=1)


def test_fsp_stage_lowers_the_fsp_loss_and_leaves_the_classifier():
    train = tiny_data(32)
    teacher = make_resnet(14)
    torch.manual_seed(0)
    initial = state(make_resnet(8))
    student, history = fsp.fsp_stage(lambda: make_resnet(8), teacher, train, epochs=5, lr=1e-2,
                                     batch_size=8, cache=False)
    assert history.last("loss") < history["loss"][0]
    trained = state(student)
    assert torch.equal(trained["logits.weight"], initial["logits.weight"])
    assert not torch.equal(trained["stem.conv.weight"], initial["stem.conv.weight"])


def test_train_from_copies_its_start():
    train = tiny_data(16)
    start = make_resnet(8)
    before = state(start)
    model, history = fsp.train_from(start, train, epochs=1, batch_size=8, test=train)
    assert model is not start and len(history) == 1
    for name, value in before.items():
        assert torch.equal(value, start.state_dict()[name]), name


def test_the_papers_stage_two_anneals_lambda_from_its_start_in_labels_plus_soft_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    x, teacher_logits = torch.randn(4, 6, generator=generator), torch.randn(4, 3, generator=generator)
    y = torch.tensor([0, 1, 2, 0])
    net = torch.nn.Linear(6, 3)
    step = fitnets.objective(3.0, 4.0, total_steps=4, form="paper")
    weights = [step(net, (x, y, teacher_logits))["alpha"].item() for _ in range(4)]
    assert weights == pytest.approx([4.0, 3.0, 2.0, 1.0])
    last = fitnets.objective(3.0, 1.0, form="paper")(net, (x, y, teacher_logits))["loss"]
    expected = losses.fitnets_kd_terms(net(x), teacher_logits, y, 3.0, 1.0)["loss"]
    torch.testing.assert_close(last, expected)
    with pytest.raises(ValueError, match=r"alpha must be in \[0.0, 1.0\]"):
        fitnets.objective(3.0, 4.0, form="kd")
