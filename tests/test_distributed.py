import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"


def test_fit_under_torchrun_matches_one_process_on_the_same_global_batch(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "single.pt")], check=True, env=env, timeout=300
    )
    torchrun = Path(sys.executable).parent / "torchrun"
    subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(SCRIPT), str(tmp_path / "ddp.pt")],
        check=True,
        env=env,
        timeout=300,
    )
    single = torch.load(tmp_path / "single.pt", weights_only=False)
    parallel = torch.load(tmp_path / "ddp.pt", weights_only=False)
    assert single["seen"] == 2 * 1024 and parallel["seen"] == 1024, "each process must see half of each batch"
    # Two processes each average the loss over half of every batch and DDP averages their
    # gradients: the same gradient as one process on the whole batch, up to float summation order.
    for name, value in single["state"].items():
        torch.testing.assert_close(parallel["state"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    for a, b in zip(single["history"]["epochs"], parallel["history"]["epochs"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5
        assert a["test_error"] == b["test_error"]
