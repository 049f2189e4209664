import math

import pytest
import torch

from kdlab import metrics
from kdlab.book import profiles, results


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


def test_resolve_applies_overrides_over_the_profile():
    table = {
        "smoke": {"epochs": 1, "lr": 0.1},
        "default": {"epochs": 5, "lr": 0.1},
        "full": {"epochs": 9, "lr": 0.1},
    }
    cfg = profiles.resolve("default", table, epochs=None, lr=0.5)
    assert cfg == {"profile": "default", "epochs": 5, "lr": 0.5}
    assert cfg.epochs == 5
    valid = r"profile must be one of \['smoke', 'default', 'full'\], got 'huge'"
    with pytest.raises(ValueError, match=valid):
        profiles.resolve("huge", table)
    with pytest.raises(ValueError, match="unknown knob 'epoch'"):
        profiles.resolve("smoke", table, epoch=3)
    with pytest.raises(ValueError, match="lacks"):
        profiles.resolve("smoke", {"smoke": {}})


def test_results_round_trip_and_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_RESULTS", str(tmp_path))
    path = results.save("chapter", {"profile": "smoke", "epochs": 1}, {"errors": [1, 2]}, device="cpu")
    record = results.load("chapter", "smoke")
    assert path.exists() and record["results"] == {"errors": [1, 2]} and record["knobs"]["epochs"] == 1
    with pytest.raises(FileNotFoundError, match="kdlab run chapter --profile full"):
        results.load("chapter", "full")
    assert results.verdict([70, 72], [140, 150]) == "held"
    assert results.verdict([140, 150], [141, 152]) == "held, within the seed spread"
    assert results.verdict([150, 160], [140, 150]) == "did not hold"
    assert results.verdict([70], [140]).startswith("held on one seed")
    assert results.verdict([70], [140, 150]) == "held"
    assert results.verdict([170], [140]) == "did not hold"


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
