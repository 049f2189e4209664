import pytest
import torch

from kdlab import metrics, profiles, results


def test_error_count_accuracy_and_agreement():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0])
    assert metrics.error_count(logits, labels) == 1
    assert metrics.accuracy(logits, labels) == pytest.approx(2 / 3)
    assert metrics.agreement(logits, torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])) == pytest.approx(2 / 3)


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
    table = {"smoke": {"epochs": 1, "lr": 0.1}, "default": {"epochs": 5, "lr": 0.1}, "full": {"epochs": 9, "lr": 0.1}}
    cfg = profiles.resolve("default", table, epochs=None, lr=0.5)
    assert cfg == {"profile": "default", "epochs": 5, "lr": 0.5}
    assert cfg.epochs == 5
    with pytest.raises(ValueError, match=r"profile must be one of \['smoke', 'default', 'full'\], got 'huge'"):
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
