"""toolkit-mpi: multi-host training with Open MPI's ``mpirun`` over SSH.

Selected by the ``sagemaker_mpi_enabled`` hyperparameter, an SDK v3 ``distributed.json`` of type
MPI, or ``TOOLKIT_LAUNCHER=mpi``. The first host runs ``mpirun`` to every host; the others run
sshd and wait until the master reports how the job ended (see ``toolkit_mpi.worker``).
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

from toolkit import Command, ConfigError, TrainingEnv, hookimpl, positive_int

__version__ = "0.1.0"

NAME = "mpi"
# The instance types the official toolkit and the SDK v3 drivers turn EFA on for.
EFA_NCCL_INSTANCES = frozenset({
    "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g5.48xlarge", "ml.p3dn.24xlarge",
    "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.48xlarge", "ml.trn1.32xlarge",
})
EFA_RDMA_INSTANCES = frozenset({"ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.trn1.32xlarge"})


SWITCH = "sagemaker_mpi_enabled"  # the SDK v2 hyperparameter that asks for this launcher


def selected(env: TrainingEnv) -> bool:
    """Whether this job asked for this launcher (see TrainingEnv.asks_for)."""
    return env.asks_for(NAME, SWITCH)


def processes_per_host(env: TrainingEnv) -> int:
    """``sagemaker_mpi_num_of_processes_per_host``, else v3 ``process_count_per_node``, else the
    GPUs, else 1."""
    classic = positive_int(env.settings.get("sagemaker_mpi_num_of_processes_per_host"),
                        "sagemaker_mpi_num_of_processes_per_host")
    v3 = positive_int((env.distributed or {}).get("process_count_per_node"),
                   "distributed.json process_count_per_node")
    return classic or v3 or env.num_gpus or 1


def custom_options(env: TrainingEnv) -> list[str]:
    """``sagemaker_mpi_custom_mpi_options`` (one string, split like a shell would) and the v3
    ``mpi_additional_options`` (a list, or a string)."""
    options: list[str] = []
    for value, what in ((env.settings.get("sagemaker_mpi_custom_mpi_options"), "sagemaker_mpi_custom_mpi_options"),
                        ((env.distributed or {}).get("mpi_additional_options"), "mpi_additional_options")):
        if value in (None, ""):
            continue
        if isinstance(value, list):
            options.extend(str(v) for v in value)
            continue
        try:
            options.extend(shlex.split(str(value)))
        except ValueError as exc:
            raise ConfigError(f"{what} {value!r} does not parse as shell words: {exc}") from exc
    return nccl_debug(options)


def nccl_debug(options: list[str]) -> list[str]:
    """``--NCCL_DEBUG X`` (or ``=X``) is not an mpirun option: the official toolkit reads it as
    ``-x NCCL_DEBUG=X``, and so do we."""
    out: list[str] = []
    i = 0
    while i < len(options):
        word = options[i]
        if word == "--NCCL_DEBUG" and i + 1 < len(options):
            out += ["-x", f"NCCL_DEBUG={options[i + 1]}"]
            i += 2
            continue
        if word.startswith("--NCCL_DEBUG="):
            out += ["-x", f"NCCL_DEBUG={word.split('=', 1)[1]}"]
        else:
            out.append(word)
        i += 1
    return out


def python() -> list[str]:
    """How ranks start Python. Under ``python -m mpi4py`` (when mpi4py is installed) a rank that
    raises or exits non-zero aborts the whole job with its code; under plain ``python`` it would
    wait forever in MPI_Finalize for the ranks still running."""
    if importlib.util.find_spec("mpi4py") is not None:
        return [sys.executable, "-m", "mpi4py"]
    return [sys.executable]


def program(entry_point: str, code_dir: Path, args: Sequence[str]) -> list[str]:
    """What each rank runs: a .py file, a module (``-m``), a .sh file or an executable."""
    if entry_point.endswith(".py"):
        return [*python(), str(code_dir / entry_point), *args]
    if entry_point.endswith(".sh"):
        return ["/bin/sh", str(code_dir / entry_point), *args]
    if (code_dir / entry_point).is_file():
        return [str((code_dir / entry_point).resolve()), *args]
    return [*python(), "-m", entry_point, *args]


def efa_variables(instance_type: str) -> dict[str, str]:
    """The EFA/NCCL settings the official toolkit exports for this instance type."""
    found: dict[str, str] = {}
    if instance_type in EFA_NCCL_INSTANCES:
        found.update(FI_PROVIDER="efa", NCCL_PROTO="simple")
    if instance_type in EFA_RDMA_INSTANCES:
        found.update(FI_EFA_USE_DEVICE_RDMA="1", RDMAV_FORK_SAFE="1")
    return found


def ssh_options(env: TrainingEnv) -> tuple[str, int, str]:
    """(key folder, sshd port, state folder): where keys live, which port sshd listens on and
    where workers find the job's status. Same on every host."""
    ssh_dir = env.setting("TOOLKIT_SSH_DIR") or str(Path(env.environ.get("HOME") or "/root") / ".ssh")
    return ssh_dir, env.setting("TOOLKIT_SSH_PORT"), env.setting("TOOLKIT_MPI_STATE_DIR")


def mpirun_argv(env: TrainingEnv, run: Sequence[str], extra_env: Mapping[str, str]) -> list[str]:
    """The ``mpirun`` command the master runs. ``-np`` is processes per host x hosts (the SDK v3
    driver passes the per-host count only, which starts too few ranks on a multi-host job)."""
    from toolkit_mpi.ssh import key_path  # ssh pulls in socket, subprocess, logging: not for every job

    hosts = env.distribution_hosts or env.hosts
    per_host = processes_per_host(env)
    ssh_dir, port, _state = ssh_options(env)
    iface = env.network_interface_name
    key = key_path(Path(ssh_dir))
    rsh = (f"-p {port} -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           f"-o LogLevel=ERROR -o BatchMode=yes")
    argv = [
        "mpirun",
        # one host: localhost, so the job also runs where "algo-1" has no address
        "--host", ",".join(f"{h}:{per_host}" for h in hosts) if len(hosts) > 1 else f"localhost:{per_host}",
        "-np", str(per_host * len(hosts)),
        "--allow-run-as-root", "--tag-output",
        "-mca", "plm_rsh_agent", "ssh",
        "-mca", "plm_rsh_args", rsh,
        "-mca", "plm_rsh_no_tree_spawn", "1",
        # the job's network; one host needs none (and may have no interface of that name)
        *(["-mca", "btl_tcp_if_include", iface, "-mca", "oob_tcp_if_include", iface] if len(hosts) > 1 else []),
        "-mca", "pml", "ob1",
        "-mca", "btl", "^openib",
        "-mca", "orte_abort_on_non_zero_status", "1",
        "-bind-to", "none", "-map-by", "slot",
    ]
    for name, value in sorted(extra_env.items()):
        argv += ["-x", f"{name}={value}"]
    argv += custom_options(env)
    return [*argv, *run]


@hookimpl
def toolkit_launch(
    entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv
) -> Optional[Command]:
    if not selected(env):
        return None
    hosts = env.distribution_hosts or env.hosts
    if env.current_host not in hosts:
        raise ConfigError(f"host {env.current_host} is not one of the distributed hosts {hosts}")
    ssh_dir, port, state = ssh_options(env)
    common = ["--ssh-dir", ssh_dir, "--port", str(port), "--state-dir", state,
              "--wait-seconds", str(env.setting("TOOLKIT_MPI_WAIT_SECONDS")),
              "--start-timeout", str(env.setting("TOOLKIT_MPI_START_TIMEOUT")),
              "--report-grace", str(env.setting("TOOLKIT_MPI_REPORT_GRACE"))]
    helper = [sys.executable, "-m", "toolkit_mpi.worker"]
    if env.current_host != hosts[0]:
        argv = [*helper, "worker", "--host", env.current_host, "--master", hosts[0], *common]
        return Command(argv, cwd=code_dir, name="mpi worker")
    extra = {"NCCL_SOCKET_IFNAME": env.network_interface_name,
             **efa_variables(env.current_instance_type)}
    mpirun = mpirun_argv(env, program(entry_point, code_dir, args), extra)
    argv = [*helper, "master", "--hosts", ",".join(hosts), *common, "--", *mpirun]
    return Command(argv, cwd=code_dir, env=extra, name="mpirun")
