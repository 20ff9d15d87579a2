"""toolkit-torchrun: multi-host training with ``torchrun`` (torch.distributed.run).

Selected by the ``sagemaker_torch_distributed_enabled`` hyperparameter, an SDK v3
``distributed.json`` of type Torchrun, or ``TOOLKIT_LAUNCHER=torchrun``. Every host runs
``torchrun --nnodes N --nproc_per_node P --node_rank R --master_addr <first host> ...`` under a
small helper (``toolkit_torchrun.node``) that makes a failure on one host end the job on every
host, with the failing rank's exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from toolkit import Command, ConfigError, TrainingEnv, hookimpl, positive_int

__version__ = "0.1.0"

NAME = "torchrun"
# The instance types the official toolkit and the SDK v3 drivers turn EFA on for.
EFA_NCCL_INSTANCES = frozenset({
    "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g5.48xlarge", "ml.p3dn.24xlarge",
    "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.trn1.32xlarge",
})
EFA_RDMA_INSTANCES = frozenset({"ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.trn1.32xlarge"})


SWITCH = "sagemaker_torch_distributed_enabled"  # the SDK v2 hyperparameter that asks for this launcher


def selected(env: TrainingEnv) -> bool:
    """Whether this job asked for this launcher (see TrainingEnv.asks_for)."""
    return env.asks_for(NAME, SWITCH)


def processes_per_host(env: TrainingEnv) -> int:
    """The GPUs, else ``sagemaker_mpi_num_of_processes_per_host`` or the v3
    ``process_count_per_node``, else 1."""
    classic = positive_int(env.settings.get("sagemaker_mpi_num_of_processes_per_host"),
                        "sagemaker_mpi_num_of_processes_per_host")
    v3 = positive_int((env.distributed or {}).get("process_count_per_node"),
                   "distributed.json process_count_per_node")
    return env.num_gpus or classic or v3 or 1


def master_port(env: TrainingEnv) -> int:
    return int(env.setting("TOOLKIT_MASTER_PORT"))


def network_variables(env: TrainingEnv) -> dict[str, str]:
    """NCCL/Gloo interface and the EFA settings the official toolkit exports for this instance
    type. Variables the job already sets are left alone."""
    iface = env.network_interface_name
    found = {"NCCL_SOCKET_IFNAME": iface, "GLOO_SOCKET_IFNAME": iface}
    if env.current_instance_type in EFA_NCCL_INSTANCES:
        found.update(FI_PROVIDER="efa", NCCL_PROTO="simple")
    if env.current_instance_type in EFA_RDMA_INSTANCES:
        found.update(FI_EFA_USE_DEVICE_RDMA="1", RDMAV_FORK_SAFE="1")
    return {k: v for k, v in found.items() if k not in env.environ}


def torchrun_argv(env: TrainingEnv, entry_point: str, code_dir: Path, args: Sequence[str]) -> list[str]:
    """torchrun's own arguments (after ``torchrun``) for this host."""
    hosts = env.distribution_hosts or env.hosts
    if env.current_host not in hosts:
        raise ConfigError(f"host {env.current_host} is not one of the distributed hosts {hosts}")
    if entry_point.endswith(".py"):
        program = [str(code_dir / entry_point)]
    elif (code_dir / entry_point).exists():
        raise ConfigError(f"torchrun runs Python: entry point {entry_point!r} must be a .py file or a module name")
    else:
        program = ["-m", entry_point]
    return [
        "--nnodes", str(len(hosts)),
        "--nproc_per_node", str(processes_per_host(env)),
        "--node_rank", str(hosts.index(env.current_host)),
        # one host: rendezvous on loopback, so the job also runs where "algo-1" has no address
        "--master_addr", hosts[0] if len(hosts) > 1 else "127.0.0.1",
        "--master_port", str(master_port(env)),
        # the rank wrapper records each rank's exit code, so the job ends with the failing one's
        "-m", "toolkit_torchrun.rank", *program, *args,
    ]


@hookimpl
def toolkit_launch(
    entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv
) -> Optional[Command]:
    if not selected(env):
        return None
    hosts = env.distribution_hosts or env.hosts
    torchrun = torchrun_argv(env, entry_point, code_dir, args)
    port = master_port(env) + 1
    coordinator = env.setting("TOOLKIT_TORCHRUN_COORDINATOR_PORT") or port
    helper = [sys.executable, "-m", "toolkit_torchrun.node",
              "--nnodes", str(len(hosts)), "--node-rank", str(hosts.index(env.current_host)),
              "--coordinator", f"{hosts[0] if len(hosts) > 1 else '127.0.0.1'}:{coordinator}",
              "--host", env.current_host]
    helper += ["--wait-seconds", str(env.setting("TOOLKIT_TORCHRUN_WAIT_SECONDS"))]
    return Command([*helper, "--", *torchrun], cwd=code_dir, env=network_variables(env), name="torchrun")
