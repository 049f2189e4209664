import json
import math
from pathlib import Path

import pytest
import torch

from kdlab import metrics, models
from kdlab.book import profiles, results

ROOT = Path(__file__).resolve().parents[1]


def test_error_count_accuracy_and_agreement():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    assert metrics.error_count(logits, labels) == 1
    assert metrics.accuracy(logits, labels) == pytest.approx(2 / 3)
    other = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert metrics.agreement(logits, other) == pytest.approx(2 / 3)


def test_ece_by_hand():
    # confidences 0.9 (correct), 0.9 (wrong), 0.6 (correct) with 10 bins:
    # bin (0.8, 0.9]: acc 0.5 vs conf 0.9, weight 2/3; bin (0.5, 0.6]: acc 1 vs conf 0.6, weight 1/3.
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 1])
    expected = 2 / 3 * 0.4 + 1 / 3 * 0.4
    assert metrics.ece(p.log(), labels, bins=10) == pytest.approx(expected, abs=1e-6)


def test_perfectly_calibrated_predictions_have_zero_ece():
    p = torch.tensor([[0.5, 0.5]] * 4)
    assert metrics.ece(p.log(), torch.tensor([0, 1, 0, 1]), bins=5) == pytest.approx(0.0, abs=1e-6)


def test_mean_std_and_formatting():
    assert metrics.mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))
    assert metrics.mean_std([5]) == (5.0, 0.0)
    assert metrics.format_mean_std([70, 78]) == "74.0 ± 5.7 (n=2)"
    with pytest.raises(ValueError, match="at least one number"):
        metrics.mean_std([])


TABLE = {
    "smoke": {"epochs": 1, "lr": 0.1},
    "default": {"epochs": 5, "lr": 0.1},
    "full": {"epochs": 9, "lr": 0.1},
}


def test_resolve_reads_the_tables_knobs_from_the_parameters_mapping():
    parameters = {"epochs": None, "lr": 0.5, "profile": "default", "unrelated": 3}  # like globals()
    cfg = profiles.resolve("default", TABLE, parameters)
    assert cfg == {"profile": "default", "epochs": 5, "lr": 0.5}
    assert cfg.epochs == 5
    nothing_given = {"epochs": None, "lr": None}
    assert profiles.resolve("full", TABLE, nothing_given) == {"profile": "full", "epochs": 9, "lr": 0.1}
    assert profiles.resolve("smoke", TABLE, epochs=3) == {"profile": "smoke", "epochs": 3, "lr": 0.1}
    valid = r"profile must be one of \['smoke', 'default', 'full'\], got 'huge'"
    with pytest.raises(ValueError, match=valid):
        profiles.resolve("huge", TABLE)
    with pytest.raises(ValueError, match="unknown knob 'epoch'"):
        profiles.resolve("smoke", TABLE, epoch=3)
    with pytest.raises(ValueError, match="lacks"):
        profiles.resolve("smoke", {"smoke": {}})


def test_resolve_rejects_a_knob_the_parameters_cell_does_not_declare():
    undeclared = r"knob 'lr' of the profile table is not declared in the parameters cell \(add `lr = None`"
    with pytest.raises(ValueError, match=undeclared):
        profiles.resolve("smoke", TABLE, {"epochs": None})


def test_every_profile_of_a_table_sets_the_same_knobs():
    odd = {**TABLE, "full": {"epochs": 9, "rate": 0.1}}
    with pytest.raises(ValueError, match=r"profile 'full' lacks \['lr'\] and adds \['rate'\]"):
        profiles.resolve("smoke", odd, {"epochs": None, "lr": None})
    with pytest.raises(ValueError, match=r"unknown profile\(s\) \['huge'\]"):
        profiles.knobs({**TABLE, "huge": {"epochs": 1, "lr": 1}})


# --- every chapter: the parameters cell against its profile table ---------------------------------

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_each_chapters_table_and_parameters_cell_name_the_same_knobs(path):
    import papermill

    notebook = json.loads(path.read_text())
    profiles.check_notebook(notebook, path.stem)  # raises, naming the knob, on a mismatch
    table = profiles.table_knobs(notebook)
    assert table, f"{path.stem} has no profile table passed to profiles.resolve"
    # The parameters as papermill reads them (another parser than check_notebook's).
    declared = papermill.inspect_notebook(str(path))
    assert set(table) <= set(declared)
    assert {name for name, p in declared.items() if p["default"] == "None"} - set(table) <= {"device"}
    assert all(declared[name]["default"] == "None" for name in table)
    assert declared["profile"]["default"] == '"default"'


def _chapter(parameters: str, setup: str) -> dict:
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": parameters}
    return {"cells": [cell, {"cell_type": "code", "metadata": {}, "source": setup}]}


SETUP = """cfg = profiles.resolve(
    profile,
    {"smoke": dict(epochs=1, lr=0.1), "default": dict(epochs=5, lr=0.1), "full": dict(epochs=9, lr=0.1)},
    globals(),
)"""


def test_check_notebook_names_the_knob_on_either_side():
    fine = 'profile = "default"\nepochs = None\nlr = None  # rate\ndevice = None\n'
    profiles.check_notebook(_chapter(fine, SETUP))
    assert profiles.table_knobs(_chapter(fine, SETUP)) == ["epochs", "lr"]
    in_table_only = 'profile = "default"\nepochs = None\n'
    with pytest.raises(ValueError, match="knob 'lr' of the profile table is not declared in the parameters"):
        profiles.check_notebook(_chapter(in_table_only, SETUP))
    in_cell_only = fine + "seeds = None\n"
    with pytest.raises(ValueError, match="parameter 'seeds' is declared None in the parameters cell but the "
                                         "profile table has no knob 'seeds'"):
        profiles.check_notebook(_chapter(in_cell_only, SETUP))
    valued = fine.replace("epochs = None", "epochs = 3")
    with pytest.raises(ValueError, match=r"knob 'epochs' has a value \(3\) in the parameters cell"):
        profiles.check_notebook(_chapter(valued, SETUP))
    named_table = "TABLE = " + SETUP.split(",\n    ", 1)[1].rsplit(",\n    globals()", 1)[0]
    by_name = named_table + "\ncfg = profiles.resolve(profile, TABLE, globals())"
    assert profiles.table_knobs(_chapter(fine, by_name)) == ["epochs", "lr"]
    odd = SETUP.replace('"full": dict(epochs=9, lr=0.1)', '"full": dict(epochs=9)')
    with pytest.raises(ValueError, match=r"profile 'full' lacks \['lr'\]"):
        profiles.check_notebook(_chapter(fine, odd))


def test_kdlab_run_refuses_a_chapter_whose_table_and_parameters_differ(tmp_path):
    from kdlab.book import runner

    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/odd\n")
    notebook = _chapter('profile = "default"\nepochs = None\n', SETUP)
    notebook.update(metadata={}, nbformat=4, nbformat_minor=5)
    (tmp_path / "book" / "odd.ipynb").write_text(json.dumps(notebook))
    with pytest.raises(ValueError, match="chapter 'odd': knob 'lr' of the profile table is not declared"):
        runner.run_chapter(tmp_path, "odd", "smoke", {}, tmp_path / "out")


def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_RESULTS", str(tmp_path))
    path = results.save("chapter", {"profile": "smoke", "epochs": 1}, {"errors": [1, 2]}, device="cpu")
    record = results.load("chapter", "smoke")
    assert path.exists() and record["results"] == {"errors": [1, 2]} and record["knobs"]["epochs"] == 1
    with pytest.raises(FileNotFoundError, match="kdlab run chapter --profile full"):
        results.load("chapter", "full")


def test_nll_by_hand():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2
    assert metrics.nll(logits, labels, temperature=2.0) == pytest.approx(expected, rel=1e-6)


def test_fit_temperature_matches_a_fine_grid_search():
    torch.manual_seed(0)
    logits, labels = torch.randn(300, 5), torch.randint(0, 5, (300,))
    logits[torch.arange(300), labels] += 2.0
    grid = torch.linspace(0.05, 5.0, 4951)
    # Every temperature of the grid at once: the mean NLL of softmax(z / T) per T, by broadcasting.
    log_p = torch.log_softmax(logits.double()[None] / grid.double()[:, None, None], dim=2)
    nll = -log_p[:, torch.arange(300), labels].mean(1)
    best = float(grid[nll.argmin()])
    assert metrics.fit_temperature(logits, labels) == pytest.approx(best, abs=2e-3)


def test_fit_temperature_undoes_a_known_overconfidence():
    # Labels drawn from softmax(z) make z calibrated; the logits 3 z are over-confident by a factor 3.
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(20000, 4, generator=generator) * 2
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=generator).squeeze(1)
    assert metrics.fit_temperature(3 * z, labels) == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ValueError, match="high must be > low"):
        metrics.fit_temperature(z, labels, low=2.0, high=1.0)


def test_reliability_bins_by_hand_and_their_weighted_gap_is_the_ece():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [5.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    table = metrics.reliability(logits, labels, bins=2)
    confidence = torch.softmax(logits, 1).max(1).values
    assert table["count"].tolist() == [1.0, 3.0]
    assert table["confidence"][0].item() == pytest.approx(0.5)
    assert table["confidence"][1].item() == pytest.approx(float(confidence[1:].mean()))
    assert table["accuracy"].tolist() == pytest.approx([1.0, 2 / 3])
    filled = table["count"] > 0
    gap = (table["count"][filled] / 4 * (table["accuracy"][filled] - table["confidence"][filled]).abs()).sum()
    assert metrics.ece(logits, labels, bins=2) == pytest.approx(float(gap), rel=1e-6)
    assert torch.isnan(metrics.reliability(logits[1:], labels[1:], bins=4)["accuracy"][0])


def test_reliability_diagram_draws_the_filled_bins_and_heatmap_checks_its_shape():
    import matplotlib

    matplotlib.use("Agg")
    from kdlab.book import plots

    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [5.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    ax = plots.reliability_diagram(logits, labels, bins=2, label="model")
    points = ax.lines[0].get_ydata()
    assert list(points) == pytest.approx(metrics.reliability(logits, labels, bins=2)["accuracy"].tolist())
    assert "ECE" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match=r"values must have shape \(2, 3\).*got \(3, 2\)"):
        plots.heatmap([[1, 2], [3, 4], [5, 6]], ["a", "b"], [1, 2, 3])


def test_the_book_teacher_has_one_recipe_per_profile_and_refuses_others():
    from kdlab.methods import teachers

    assert set(teachers.BOOK_TEACHER) == set(profiles.PROFILES)
    for recipe in teachers.BOOK_TEACHER.values():
        assert recipe["augment"].active and recipe["schedule"] == "cosine"
    with pytest.raises(ValueError, match=r"profile must be one of \[.*\], got 'fast'"):
        teachers.book_teacher("fast")
    with pytest.raises(ValueError, match=r"architecture must be one of \[.*\], got 'resnet'"):
        teachers.book_teacher("smoke", architecture="resnet")


def test_the_hinton_table_teacher_is_the_book_teacher_or_hintons_jittered_mlp(monkeypatch):
    from kdlab.methods import teachers

    asked = []
    monkeypatch.setattr(teachers, "book_teacher", lambda name, device=None: asked.append(("book", name)))
    monkeypatch.setattr(teachers, "teacher", lambda split, arch, **knobs: asked.append((arch, knobs)))
    teachers.hinton_table_teacher("book", "smoke", None, hinton_epochs=3)
    teachers.hinton_table_teacher("hinton", "smoke", None, hinton_epochs=3)
    assert asked[0] == ("book", "smoke")
    architecture, knobs = asked[1]
    assert architecture == "hinton" and knobs["epochs"] == 3 and knobs["schedule"] == "cosine"
    assert knobs["augment"].active
    with pytest.raises(ValueError, match=r"kind must be one of \[.*\], got 'conv'"):
        teachers.hinton_table_teacher("conv", "smoke", None, hinton_epochs=3)
    with pytest.raises(ValueError, match=r"hinton_epochs must be an integer >= 1, got 0"):
        teachers.hinton_table_teacher("hinton", "smoke", None, hinton_epochs=0)
    assert len(asked) == 2  # refused before any training


def test_the_fsp_teacher_gives_fsp_matrices_of_the_students_shape():
    from kdlab.methods import fsp, teachers

    x = torch.zeros(2, 1, 28, 28)
    pairs = [("conv1", "conv2.1")]
    shapes = {
        name: [g.shape for g in fsp.fsp_matrices(make(), x, pairs)]
        for name, make in (("teacher", teachers.ARCHITECTURES["lenet-student-convs"]),
                           ("student", lambda: models.lenet(models.STUDENT_WIDTHS)),
                           ("book teacher", teachers.ARCHITECTURES["lenet"]))
    }
    assert shapes["teacher"] == shapes["student"] != shapes["book teacher"]
