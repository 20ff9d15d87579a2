"""What the MPI launcher asks the core to run, through the real plugin manager (fast, one host)."""

from __future__ import annotations

import shlex
import shutil
import sys

import pytest

from toolkit import ConfigError

HOSTS = ("algo-1", "algo-2", "algo-3")


def mpirun_part(argv):
    """The mpirun command inside the master helper's argv (after ``--``)."""
    assert argv[:4] == [sys.executable, "-m", "toolkit_mpi.worker", "master"], argv
    return list(argv[argv.index("--") + 1:])


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_not_selected_leaves_the_job_to_the_plain_python_launcher(launch):
    command = launch({"epochs": 1})
    assert command.name == "python"
    assert command.argv[1:] == ["train.py"]


def test_np_is_processes_per_host_times_hosts_in_sagemaker_order(launch):
    command = launch({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2},
                     hosts=HOSTS, args=("--epochs", "3"))
    assert command.name == "mpirun"
    mpirun = mpirun_part(command.argv)
    assert mpirun[0] == "mpirun"
    assert option(mpirun, "-np") == "6"  # not 2: the SDK v3 driver's mistake
    assert option(mpirun, "--host") == "algo-1:2,algo-2:2,algo-3:2"
    assert option(command.argv, "--hosts") == "algo-1,algo-2,algo-3"
    assert mpirun[-3].endswith("/code/train.py")
    assert mpirun[-2:] == ["--epochs", "3"]


def test_hosts_keep_the_order_resourceconfig_gives(launch):
    command = launch({"sagemaker_mpi_enabled": True}, current="algo-3", hosts=("algo-3", "algo-1", "algo-2"))
    mpirun = mpirun_part(command.argv)
    assert option(mpirun, "--host") == "algo-3:1,algo-1:1,algo-2:1"
    assert option(mpirun, "-np") == "3"


def test_other_hosts_run_sshd_and_wait_for_the_first(launch):
    command = launch({"sagemaker_mpi_enabled": True}, current="algo-2", hosts=HOSTS)
    assert command.name == "mpi worker"
    assert command.argv[:4] == [sys.executable, "-m", "toolkit_mpi.worker", "worker"]
    assert option(command.argv, "--master") == "algo-1"
    assert option(command.argv, "--host") == "algo-2"
    assert "mpirun" not in command.argv


def test_custom_options_are_split_like_a_shell_and_passed_before_the_program(launch):
    command = launch({"sagemaker_mpi_enabled": True,
                      "sagemaker_mpi_custom_mpi_options": "-x FOO='a b' --mca btl_tcp_if_exclude lo"},
                     hosts=HOSTS[:2])
    mpirun = mpirun_part(command.argv)
    start = mpirun.index("FOO=a b") - 1
    assert mpirun[start:start + 5] == ["-x", "FOO=a b", "--mca", "btl_tcp_if_exclude", "lo"]
    assert start < next(i for i, a in enumerate(mpirun) if a.endswith("train.py"))


def test_nccl_debug_as_the_official_toolkit_reads_it(launch):
    command = launch({"sagemaker_mpi_enabled": True,
                      "sagemaker_mpi_custom_mpi_options": "--NCCL_DEBUG WARN -verbose --NCCL_DEBUG=TRACE"})
    mpirun = mpirun_part(command.argv)
    assert "--NCCL_DEBUG" not in " ".join(mpirun)
    start = mpirun.index("NCCL_DEBUG=WARN") - 1
    assert mpirun[start:start + 5] == ["-x", "NCCL_DEBUG=WARN", "-verbose", "-x", "NCCL_DEBUG=TRACE"]


def test_sdk_v3_mpi_config(launch):
    command = launch({}, hosts=HOSTS[:2], distributed={
        "_type": "mpi", "process_count_per_node": 3, "mpi_additional_options": ["-x", "NCCL_DEBUG=INFO"]})
    mpirun = mpirun_part(command.argv)
    assert option(mpirun, "-np") == "6"
    assert "NCCL_DEBUG=INFO" in mpirun


def test_network_and_efa_variables_are_set_and_forwarded(launch):
    command = launch({"sagemaker_mpi_enabled": True}, hosts=HOSTS[:2], instance_type="ml.p4d.24xlarge")
    mpirun = mpirun_part(command.argv)
    assert command.env["FI_PROVIDER"] == "efa"
    assert command.env["FI_EFA_USE_DEVICE_RDMA"] == "1"
    for pair in ("NCCL_SOCKET_IFNAME=eth0", "FI_PROVIDER=efa", "FI_EFA_USE_DEVICE_RDMA=1"):
        assert mpirun[mpirun.index(pair) - 1] == "-x"
    assert option(mpirun, "btl_tcp_if_include") == "eth0"


def test_no_efa_variables_on_other_instances(launch):
    command = launch({"sagemaker_mpi_enabled": True}, hosts=HOSTS[:2])
    assert "FI_PROVIDER" not in command.env


def test_job_variables_are_forwarded_by_name_not_value():
    from toolkit_mpi.worker import forwarded

    environ = {"SM_HOSTS": '["algo-1"]', "SM_MODEL_DIR": "/opt/ml/model", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
               "PATH": "/usr/bin", "PYTHONPATH": "/code", "UNRELATED": "x", "NCCL_SOCKET_IFNAME": "eth0",
               "BAD-NAME": "x"}
    args = forwarded(environ, ["mpirun", "-x", "NCCL_SOCKET_IFNAME=eth0"])
    names = args[1::2]
    assert set(args[::2]) == {"-x"}
    assert names == sorted(["SM_HOSTS", "SM_MODEL_DIR", "AWS_SECRET_ACCESS_KEY", "PATH", "PYTHONPATH"])
    assert "s3cr3t" not in " ".join(args)


def test_python_ranks_run_under_mpi4py_so_a_failing_rank_aborts_the_job(launch):
    pytest.importorskip("mpi4py")
    command = launch({"sagemaker_mpi_enabled": True}, hosts=HOSTS[:2], entry="trainer.main")
    mpirun = mpirun_part(command.argv)
    assert mpirun[-5:] == [sys.executable, "-m", "mpi4py", "-m", "trainer.main"]


def test_shell_entry_point(launch):
    command = launch({"sagemaker_mpi_enabled": True}, hosts=HOSTS[:2], entry="run.sh")
    mpirun = mpirun_part(command.argv)
    assert mpirun[-2] == "/bin/sh" and mpirun[-1].endswith("run.sh")


def test_ssh_settings_reach_mpirun_and_the_helper(launch, tmp_path):
    command = launch({"sagemaker_mpi_enabled": True}, hosts=HOSTS[:2], TOOLKIT_SSH_DIR=str(tmp_path / "keys"),
                     TOOLKIT_SSH_PORT="2222", TOOLKIT_MPI_WAIT_SECONDS="30")
    mpirun = mpirun_part(command.argv)
    rsh = shlex.split(option(mpirun, "plm_rsh_args"))
    assert rsh[:4] == ["-p", "2222", "-i", str(tmp_path / "keys" / "id_ed25519")]
    assert option(command.argv, "--port") == "2222"
    assert option(command.argv, "--wait-seconds") == "30"


def test_toolkit_launcher_decides_alone(launch):
    assert launch({}, TOOLKIT_LAUNCHER="mpi").name == "mpirun"
    assert launch({"sagemaker_mpi_enabled": True}, TOOLKIT_LAUNCHER="torchrun").name != "mpirun"


@pytest.mark.parametrize("hps, message", [
    ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 0},
     "sagemaker_mpi_num_of_processes_per_host (0) is below 1; expected e.g. 1"),
    ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_custom_mpi_options": "-x 'unclosed"},
     "sagemaker_mpi_custom_mpi_options \"-x 'unclosed\" does not parse as shell words"),
    ({"sagemaker_mpi_enabled": True, "sagemaker_torch_distributed_enabled": True},
     "both sagemaker_mpi_enabled and sagemaker_torch_distributed_enabled are set"),
])
def test_bad_settings_are_one_clear_line(launch, hps, message):
    with pytest.raises(ConfigError) as err:
        launch(hps)
    assert message in str(err.value)


def test_one_host_runs_on_localhost(launch):
    command = launch({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 2})
    mpirun = mpirun_part(command.argv)
    assert option(mpirun, "--host") == "localhost:2"
    assert "btl_tcp_if_include" not in mpirun


ONE_HOST = """
import json, os, sys
from mpi4py import MPI
comm = MPI.COMM_WORLD
total = comm.allreduce(comm.rank + 1)
if os.environ.get("TOOLKIT_TEST_FAIL") == str(comm.rank):
    sys.exit(4)
if comm.rank == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "sum.json"), "w") as fh:
        json.dump(total, fh)
"""


@pytest.mark.slow
def test_one_host_job_runs_and_ends_with_the_failing_rank_code(host_job, tmp_path):
    pytest.importorskip("mpi4py")
    if shutil.which("mpirun") is None:
        pytest.skip("needs Open MPI (apt-get install openmpi-bin)")
    host_job.script("train.py", ONE_HOST)
    host_job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_mpi_enabled": True,
                              "sagemaker_mpi_num_of_processes_per_host": 2})
    keys = {"TOOLKIT_SSH_DIR": str(tmp_path / "ssh"), "TOOLKIT_MPI_STATE_DIR": str(tmp_path / "state")}
    done = host_job.run(**keys)
    assert done.returncode == 0, done.stderr
    assert (host_job.model / "sum.json").read_text() == "3"
    failed = host_job.run(TOOLKIT_TEST_FAIL="1", **keys)
    assert failed.returncode == 4, failed.stderr
    assert "Exit code: 4" in host_job.failure.read_text()
