import sys

import pytest
import torch
from torch import nn

from kdlab import export, metrics


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10)).eval()


def test_size_is_the_bytes_torch_save_writes(tmp_path):
    model = small()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    assert export.size_bytes(model) == (tmp_path / "weights.pt").stat().st_size
    # float32 weights: the file is at least four bytes per parameter
    assert export.size_bytes(model) >= 4 * metrics.parameter_count(model)


def test_deployment_reports_sizes_and_latencies_per_batch_size():
    models = {"a": small(), "b": nn.Sequential(nn.Flatten(), nn.Linear(64, 10))}
    before = torch.get_num_threads()
    example = torch.randn(3, 1, 8, 8)
    table = export.deployment(models, example, batch_sizes=(1, 5), repeats=2, warmup=1, threads=1)
    assert torch.get_num_threads() == before
    assert table["b"]["parameters"] == 64 * 10 + 10
    assert table["a"]["megabytes"] == export.size_bytes(models["a"]) / 1e6
    assert all(row["latency_ms@1"] > 0 and row["latency_ms@5"] > 0 for row in table.values())
    with pytest.raises(ValueError, match="batch_sizes must list"):
        export.deployment(models, torch.randn(1, 1, 8, 8), batch_sizes=())
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        export.latency_ms(small(), torch.randn(1, 1, 8, 8), threads=0)


def test_max_abs_difference_by_hand():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[1.0, 2.5], [2.0, 4.0]])
    assert export.max_abs_difference(a, b) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        export.max_abs_difference(a, b[:1])


def test_torch_export_runs_any_batch_size_like_the_model(tmp_path):
    model = small()
    x = torch.randn(7, 1, 8, 8)
    export.export_program(model, x[:1], tmp_path / "m.pt2")
    loaded = torch.export.load(str(tmp_path / "m.pt2")).module()
    with torch.no_grad():
        assert export.max_abs_difference(model(x), loaded(x)) <= 1e-5


def test_onnx_round_trip_matches_pytorch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = small()
    x = torch.randn(9, 1, 8, 8)
    path = export.to_onnx(model, x[:1], tmp_path / "sub" / "m.onnx")
    out = export.onnx_predict(path, x, batch_size=4)
    assert out.shape == (9, 10)
    assert export.max_abs_difference(metrics.predict(model, x), out) <= 1e-4


def test_onnx_through_torch_export_matches_pytorch(tmp_path):
    for package in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(package)
    model = small()
    x = torch.randn(5, 1, 8, 8)
    path = export.to_onnx(model, x[:1], tmp_path / "m.onnx", dynamo=True)
    assert export.max_abs_difference(metrics.predict(model, x), export.onnx_predict(path, x)) <= 1e-4


def test_a_missing_optional_package_says_how_to_install_it(tmp_path, monkeypatch):
    # None in sys.modules makes an import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="pip install onnx"):
        export.to_onnx(small(), torch.randn(1, 1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        export.onnx_predict(tmp_path / "m.onnx", torch.randn(1, 1, 8, 8))
