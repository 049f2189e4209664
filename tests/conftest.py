import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and results folders, no progress bars, and a fixed seed."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDLAB_PROGRESS", "0")
    torch.manual_seed(0)
