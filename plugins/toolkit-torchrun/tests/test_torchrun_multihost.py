"""Two hosts (network namespaces), the real ``train`` on each, real torchrun with the gloo backend."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0 gives the CPU build)")

ALL_REDUCE = """
import json, os, socket, sys
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
hosts = [None] * dist.get_world_size()
dist.all_gather_object(hosts, socket.gethostname())
if dist.get_rank() == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "result.json"), "w") as fh:
        json.dump({"world": dist.get_world_size(), "sum": value.item(), "args": sys.argv[1:],
                   "hosts": hosts}, fh)
dist.destroy_process_group()
"""


def setup_job(cluster, script: str, module: bool = False, **hps) -> dict[str, str]:
    for job in cluster.jobs.values():
        if module:
            (job.code / "trainer").mkdir()
            job.script("trainer/__init__.py", "")
            job.script("trainer/main.py", script)
        else:
            job.script("train.py", script)
        job.hyperparameters({"sagemaker_program": "trainer.main" if module else "train.py",
                             "sagemaker_torch_distributed_enabled": True,
                             "sagemaker_mpi_num_of_processes_per_host": 2, **hps})
    return {"TOOLKIT_TORCHRUN_WAIT_SECONDS": "60"}


@pytest.mark.parametrize("module", [False, True], ids=["script", "module"])
def test_all_reduce_across_two_hosts_of_two_processes(cluster, module):
    env = setup_job(cluster, ALL_REDUCE, module=module, lr=0.5)
    codes = cluster.run(timeout=120, **env)
    assert codes == {"algo-1": 0, "algo-2": 0}, cluster.output()
    result = json.loads((cluster.jobs["algo-1"].model / "result.json").read_text())
    assert result["world"] == 4
    assert result["sum"] == 1 + 2 + 3 + 4
    assert result["args"] == ["--lr", "0.5"]
    assert sorted(result["hosts"]) == ["algo-1", "algo-1", "algo-2", "algo-2"]
    for job in cluster.jobs.values():
        assert job.success.exists() and not job.failure.exists()


FAIL_RANK_3 = """
import os, sys, time
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 3:
    print("rank 3 gives up", file=sys.stderr, flush=True)
    sys.exit(3)
dist.all_reduce(torch.ones(1))  # waits for rank 3, which is gone: the job must still end
time.sleep(600)
"""


def test_one_failing_rank_fails_the_job_on_every_host_with_its_code(cluster):
    env = setup_job(cluster, FAIL_RANK_3)
    codes = cluster.run(timeout=120, **env)
    assert codes == {"algo-1": 3, "algo-2": 3}, cluster.output()
    for job in cluster.jobs.values():
        text = job.failure.read_text()
        assert "Exit code: 3" in text, text
        assert "rank 3 on algo-2 failed with exit code 3" in text, text
        assert not job.success.exists()


SLEEPERS = """
import os, time
with open(os.path.join(os.environ["TOOLKIT_TEST_PIDS"], os.environ["RANK"] + ".pid"), "w") as fh:
    fh.write(str(os.getpid()))
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_to_the_master_stops_every_rank(cluster, tmp_path: Path):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = setup_job(cluster, SLEEPERS)
    for host in cluster.hosts:
        cluster.start(host, TOOLKIT_TEST_PIDS=str(pids), **env)
    deadline = time.monotonic() + 90
    while len(list(pids.glob("*.pid"))) < 4:
        assert time.monotonic() < deadline, cluster.output()
        time.sleep(0.2)
    ranks = [int(p.read_text()) for p in pids.glob("*.pid")]
    assert all(_alive(pid) for pid in ranks)
    os.kill(cluster.procs["algo-1"].pid, signal.SIGTERM)
    codes = cluster.wait(timeout=90)
    assert codes == {"algo-1": 143, "algo-2": 143}, cluster.output()
    assert not [pid for pid in ranks if _alive(pid)], cluster.output()
    for job in cluster.jobs.values():
        assert "stopped by a signal" in job.failure.read_text()
