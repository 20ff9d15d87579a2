"""The "add your own launcher" example of docs/distributed.md, taken from the page itself, loaded
as an installed plugin and run for real (accelerate launch on 2 hosts)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "distributed.md"


def example_code() -> str:
    text = DOC.read_text()
    found = re.search(r"<!-- file: toolkit-accelerate/toolkit_accelerate\.py.*?-->\s*```python\n(.*?)```", text, re.S)
    assert found, f"{DOC} lost its example plugin"
    return found.group(1)


def install(folder: Path) -> Path:
    """The example as an installed distribution: the module and an entry point in toolkit.plugins."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toolkit_accelerate.py").write_text(example_code())
    info = folder / "toolkit_accelerate-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toolkit-accelerate\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[toolkit.plugins]\naccelerate = toolkit_accelerate\n")
    return folder


def test_example_is_about_thirty_lines():
    lines = [ln for ln in example_code().splitlines() if ln.strip()]
    assert len(lines) <= 35


def test_example_through_the_plugin_manager(tmp_path, monkeypatch, launch):
    monkeypatch.syspath_prepend(str(install(tmp_path / "site")))
    importlib.invalidate_caches()
    command = launch({"sagemaker_mpi_num_of_processes_per_host": 2}, current="algo-2",
                     hosts=("algo-1", "algo-2"), args=("--lr", "0.1"), TOOLKIT_LAUNCHER="accelerate")
    assert command.argv == [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                            "--num_machines", "2", "--num_processes", "4", "--machine_rank", "1",
                            "--main_process_ip", "algo-1", "--main_process_port", "7777",
                            "train.py", "--lr", "0.1"]
    assert command.env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert launch({}, TOOLKIT_LAUNCHER="accelerate", TOOLKIT_DISABLE_PLUGINS="accelerate").name == "python"
    # not selected: the torchrun plugin (or the plain launcher) answers instead
    assert launch({"sagemaker_torch_distributed_enabled": True}).name == "torchrun"


ALL_REDUCE = """
import json, os, socket
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
hosts = [None] * dist.get_world_size()
dist.all_gather_object(hosts, socket.gethostname())
if dist.get_rank() == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "result.json"), "w") as fh:
        json.dump({"world": dist.get_world_size(), "sum": value.item(), "hosts": hosts}, fh)
dist.destroy_process_group()  # without it gloo may abort the process at exit
"""


@pytest.mark.slow
def test_example_runs_a_two_host_job(cluster, tmp_path):
    if importlib.util.find_spec("accelerate") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("needs accelerate and torch (pip install torch==2.13.0 accelerate)")
    site = install(tmp_path / "site")
    for job in cluster.jobs.values():
        job.script("train.py", ALL_REDUCE)
        job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_mpi_num_of_processes_per_host": 2})
    codes = cluster.run(timeout=90, TOOLKIT_LAUNCHER="accelerate", PYTHONPATH=str(site))
    assert codes == {"algo-1": 0, "algo-2": 0}, cluster.output()
    assert "accelerate.commands.launch" in cluster.output()
    result = json.loads((cluster.jobs["algo-1"].model / "result.json").read_text())
    assert result == {"world": 4, "sum": 10.0, "hosts": ["algo-1", "algo-1", "algo-2", "algo-2"]}
