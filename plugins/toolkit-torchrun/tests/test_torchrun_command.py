"""What the torchrun launcher asks the core to run, through the real plugin manager (fast)."""

from __future__ import annotations

import sys

import pytest

from toolkit import ConfigError

HOSTS = ("algo-1", "algo-2", "algo-3")


def torchrun_part(argv):
    """torchrun's arguments inside the node helper's argv (after ``--``)."""
    assert argv[:3] == [sys.executable, "-m", "toolkit_torchrun.node"], argv
    return list(argv[argv.index("--") + 1:])


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_every_host_runs_torchrun_with_its_node_rank(launch):
    for rank, host in enumerate(HOSTS):
        command = launch({"sagemaker_torch_distributed_enabled": True,
                          "sagemaker_mpi_num_of_processes_per_host": 2}, current=host, hosts=HOSTS,
                         args=("--lr", "0.1"))
        assert command.name == "torchrun"
        torchrun = torchrun_part(command.argv)
        assert torchrun[:10] == ["--nnodes", "3", "--nproc_per_node", "2", "--node_rank", str(rank),
                                 "--master_addr", "algo-1", "--master_port", "7777"]
        assert torchrun[10:12] == ["-m", "toolkit_torchrun.rank"]
        assert torchrun[12].endswith("/code/train.py")
        assert torchrun[13:] == ["--lr", "0.1"]
        assert option(command.argv, "--coordinator") == "algo-1:7778"
        assert option(command.argv, "--node-rank") == str(rank)


def test_hosts_keep_the_order_resourceconfig_gives(launch):
    command = launch({"sagemaker_torch_distributed_enabled": True}, current="algo-1",
                     hosts=("algo-2", "algo-1"))
    torchrun = torchrun_part(command.argv)
    assert option(torchrun, "--master_addr") == "algo-2"
    assert option(torchrun, "--node_rank") == "1"


def test_module_entry_point(launch):
    command = launch({"sagemaker_torch_distributed_enabled": True}, entry="trainer.main", args=("-x", "1"))
    assert torchrun_part(command.argv)[-6:] == ["-m", "toolkit_torchrun.rank", "-m", "trainer.main", "-x", "1"]


def test_sdk_v3_torchrun_config(launch):
    command = launch({}, hosts=HOSTS[:2], distributed={"_type": "torchrun", "process_count_per_node": 4})
    torchrun = torchrun_part(command.argv)
    assert option(torchrun, "--nproc_per_node") == "4"
    assert option(torchrun, "--nnodes") == "2"


def test_older_sdk_v3_config_names_the_driver(launch):
    command = launch({}, distributed={"driver_script": "torchrun_driver.py"})
    assert command.name == "torchrun"
    assert option(torchrun_part(command.argv), "--nproc_per_node") == "1"


def test_toolkit_launcher_and_port(launch):
    command = launch({}, TOOLKIT_LAUNCHER="torchrun", TOOLKIT_MASTER_PORT="29500")
    torchrun = torchrun_part(command.argv)
    assert option(torchrun, "--master_port") == "29500"
    assert option(command.argv, "--coordinator") == "127.0.0.1:29501"
    assert launch({"sagemaker_torch_distributed_enabled": True}, TOOLKIT_LAUNCHER="python").name == "python"


def test_interface_and_efa_variables(launch):
    command = launch({"sagemaker_torch_distributed_enabled": True}, instance_type="ml.p4d.24xlarge")
    assert command.env == {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0", "FI_PROVIDER": "efa",
                           "NCCL_PROTO": "simple", "FI_EFA_USE_DEVICE_RDMA": "1", "RDMAV_FORK_SAFE": "1"}
    plain = launch({"sagemaker_torch_distributed_enabled": True}, NCCL_SOCKET_IFNAME="ens5")
    assert plain.env == {"GLOO_SOCKET_IFNAME": "eth0"}  # what the job sets itself is kept


@pytest.mark.parametrize("hps, entry, message", [
    ({"sagemaker_torch_distributed_enabled": True}, "run.sh",
     "torchrun runs Python: entry point 'run.sh' must be a .py file or a module name"),
    ({"sagemaker_torch_distributed_enabled": True, "sagemaker_mpi_num_of_processes_per_host": "two"}, "train.py",
     "sagemaker_mpi_num_of_processes_per_host ('two') is not a whole number; expected e.g. 1"),
])
def test_bad_settings_are_one_clear_line(launch, hps, entry, message):
    with pytest.raises(ConfigError) as err:
        launch(hps, entry=entry)
    assert message in str(err.value)


def test_bad_settings_fail_train_with_exit_2_and_the_failure_file(host_job):
    job = host_job
    job.script("train.py", "print('never runs')\n")
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_torch_distributed_enabled": True,
                         "sagemaker_mpi_enabled": True})
    done = job.run()
    assert done.returncode == 2, done.stderr
    assert "choose the launcher with TOOLKIT_LAUNCHER" in job.failure.read_text()
    assert "never runs" not in done.stdout


def test_one_host_uses_loopback(launch):
    command = launch({"sagemaker_torch_distributed_enabled": True})
    assert option(torchrun_part(command.argv), "--master_addr") == "127.0.0.1"
    assert option(command.argv, "--coordinator") == "127.0.0.1:7778"


SINGLE_HOST = """
import json, os, sys
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
if os.environ.get("FAIL_RANK") == os.environ["RANK"]:
    sys.exit(5)
if dist.get_rank() == 0:
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "sum.json"), "w") as fh:
        json.dump(value.item(), fh)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_one_host_job_ends_with_the_failing_rank_code(host_job):
    pytest.importorskip("torch")
    host_job.script("train.py", SINGLE_HOST)
    host_job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_torch_distributed_enabled": True,
                              "sagemaker_mpi_num_of_processes_per_host": 2})
    # rank 1 leaves without ending its process group, so gloo aborts it (SIGABRT) on the way out:
    # torchrun alone would say -6 / exit 1; the job ends with the code the rank chose
    failed = host_job.run(timeout=120, TOOLKIT_MASTER_PORT="29613", FAIL_RANK="1")
    assert failed.returncode == 5, failed.stderr
    assert "rank 1 on " in host_job.failure.read_text()
    assert "Exit code: 5" in host_job.failure.read_text()
