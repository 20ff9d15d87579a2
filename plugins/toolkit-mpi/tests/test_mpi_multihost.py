"""Two hosts (network namespaces), the real ``train`` on each, real Open MPI + mpi4py over SSH."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mpirun") is None or shutil.which("/usr/sbin/sshd") is None,
                       reason="needs Open MPI and openssh-server (apt-get install openmpi-bin openssh-server)"),
]
mpi4py = pytest.importorskip("mpi4py", reason="needs mpi4py (pip install mpi4py)")

ALLREDUCE = """
import json, os, socket, sys
from mpi4py import MPI
comm = MPI.COMM_WORLD
total = comm.allreduce(comm.rank + 1)
hosts = comm.allgather(socket.gethostname())
seen = comm.allgather(os.environ.get("SM_CURRENT_HOST"))  # forwarded from the master with -x
if comm.rank == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "result.json"), "w") as fh:
        json.dump({"size": comm.size, "sum": total, "args": sys.argv[1:], "hosts": hosts,
                   "sm_current_host": seen}, fh)
"""


def setup_job(cluster, tmp_path: Path, script: str, **hps) -> dict[str, str]:
    for job in cluster.jobs.values():
        job.script("train.py", script)
        job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_mpi_enabled": True,
                             "sagemaker_mpi_num_of_processes_per_host": 2, **hps})
    return {"TOOLKIT_SSH_DIR": str(tmp_path / "ssh"), "TOOLKIT_MPI_STATE_DIR": str(tmp_path / "state"),
            "TOOLKIT_MPI_WAIT_SECONDS": "60"}


def test_allreduce_across_two_hosts_of_two_ranks(cluster, tmp_path):
    env = setup_job(cluster, tmp_path, ALLREDUCE, epochs=3)
    codes = cluster.run(timeout=120, **env)
    assert codes == {"algo-1": 0, "algo-2": 0}, cluster.output()
    result = json.loads((cluster.jobs["algo-1"].model / "result.json").read_text())
    assert result["size"] == 4
    assert result["sum"] == 1 + 2 + 3 + 4
    assert result["args"] == ["--epochs", "3"]
    assert sorted(result["hosts"]) == ["algo-1", "algo-1", "algo-2", "algo-2"]  # 2 ranks on each host
    assert result["sm_current_host"] == ["algo-1"] * 4  # the master's SM_* reach every rank
    for job in cluster.jobs.values():
        assert job.success.exists() and not job.failure.exists()
    assert (tmp_path / "ssh" / "id_ed25519").exists()  # made at start: there was none


FAIL_RANK_3 = """
import os, sys, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
if comm.rank == 3:
    print("rank 3 gives up", file=sys.stderr, flush=True)
    sys.exit(3)
time.sleep(600)  # the others would wait forever: the job must still end
"""


def test_one_failing_rank_fails_the_job_on_every_host_with_its_code(cluster, tmp_path):
    env = setup_job(cluster, tmp_path, FAIL_RANK_3)
    codes = cluster.run(timeout=90, **env)
    assert codes == {"algo-1": 3, "algo-2": 3}, cluster.output()
    for job in cluster.jobs.values():
        text = job.failure.read_text()
        assert "Exit code: 3" in text, text
        assert not job.success.exists()


SLEEPERS = """
import os, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
with open(os.path.join(os.environ["TOOLKIT_TEST_PIDS"], f"{comm.rank}.pid"), "w") as fh:
    fh.write(str(os.getpid()))
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ", 1)[1][0] != "Z"


def test_sigterm_to_the_master_stops_every_rank(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = setup_job(cluster, tmp_path, SLEEPERS)
    for host in cluster.hosts:
        cluster.start(host, TOOLKIT_TEST_PIDS=str(pids), **env)
    deadline = time.monotonic() + 60
    while len(list(pids.glob("*.pid"))) < 4:
        assert time.monotonic() < deadline, cluster.output()
        time.sleep(0.2)
    ranks = [int(p.read_text()) for p in pids.glob("*.pid")]
    assert all(_alive(pid) for pid in ranks)
    cluster.procs["algo-1"].send_signal(signal.SIGTERM)  # `ip netns exec` execs train: same PID
    codes = cluster.wait(timeout=60)
    assert codes == {"algo-1": 143, "algo-2": 143}, cluster.output()
    # remote ranks are torn down by Open MPI's daemons, asynchronously: allow them a few seconds
    deadline = time.monotonic() + 15
    while [pid for pid in ranks if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in ranks if _alive(pid)], cluster.output()
    assert "stopped by SIGTERM" in cluster.jobs["algo-1"].failure.read_text()
    assert "failed with exit code 143" in cluster.jobs["algo-2"].failure.read_text()


def test_a_host_that_never_answers_fails_the_master_within_the_wait_limit(cluster, tmp_path):
    env = setup_job(cluster, tmp_path, ALLREDUCE)
    env["TOOLKIT_MPI_WAIT_SECONDS"] = "3"
    cluster.start("algo-1", **env)  # algo-2 never starts its sshd
    codes = cluster.wait(timeout=60)
    assert codes == {"algo-1": 1}, cluster.output()
    text = cluster.jobs["algo-1"].failure.read_text()
    assert "host algo-2 ssh: still not ready after" in text, text
    assert "TOOLKIT_MPI_WAIT_SECONDS=3" in text
    assert "host algo-2 ssh: not ready" in cluster.output()  # each miss is logged


def test_workers_do_not_wait_forever_when_the_master_host_dies(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = setup_job(cluster, tmp_path, SLEEPERS)
    env["TOOLKIT_MPI_REPORT_GRACE"] = "2"
    for host in cluster.hosts:
        cluster.start(host, TOOLKIT_TEST_PIDS=str(pids), **env)
    deadline = time.monotonic() + 60
    while len(list(pids.glob("*.pid"))) < 4:
        assert time.monotonic() < deadline, cluster.output()
        time.sleep(0.2)
    # the master host vanishes at once (as a machine that fails): every process in its namespace
    master = subprocess.run(["ip", "netns", "pids", cluster.ns["algo-1"]], capture_output=True, text=True)
    for pid in master.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    code = cluster.procs["algo-2"].wait(timeout=60)
    assert code == 1, cluster.output()
    text = cluster.jobs["algo-2"].failure.read_text()
    assert "never reported the job's exit code within 2 s" in text, text
