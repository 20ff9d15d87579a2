"""Running the hosts of a job at once and stopping them as the platform does.

Each host is one process: this machine's ``train`` (in-process mode) or ``ENGINE run IMAGE train``
(container mode). When one host fails the others are stopped; when MaxRuntimeInSeconds passes
every host gets SIGTERM, then SIGKILL ``kill_after`` seconds later (120 s on the platform).
With more than one host each output line is prefixed with the host's name.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from toolkit import process
from toolkit.errors import ConfigError

log = logging.getLogger("toolkit")
KILL_AFTER = 120.0
DROP_PREFIXES = ("SM_", "SAGEMAKER_", "TRAINING_JOB_")


@dataclass
class HostProcess:
    """One host's command, and how to stop it (default: signals to its process group)."""

    host: str
    argv: list[str]
    env: Optional[dict[str, str]] = None
    cwd: Optional[Path] = None
    terminate: Optional[Callable[[int], None]] = None
    kill: Optional[Callable[[], None]] = None


@dataclass
class HostExit:
    host: str
    exit_code: int
    seconds: float


@dataclass
class RunResult:
    exits: list[HostExit] = field(default_factory=list)
    timed_out: bool = False
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def first_failure(self) -> Optional[HostExit]:
        failed = [e for e in self.exits if e.exit_code != 0]
        return min(failed, key=lambda e: e.seconds) if failed else None


def run_hosts(hosts: Sequence[HostProcess], max_runtime: float, kill_after: float = KILL_AFTER) -> RunResult:
    """Start every host under the core's supervisor, wait for all of them, and stop them when one
    fails, time runs out or we are interrupted (a second Ctrl-C kills at once)."""
    started = time.perf_counter()
    prefixed = len(hosts) > 1

    def on_exit(child: process.Child) -> Optional[str]:
        return f"{child.name} exited with code {child.exit_code}" if child.exit_code and prefixed else None

    with process.Supervisor(kill_after, max_seconds=max_runtime, on_exit=on_exit,
                            stop_signal=signal.SIGTERM, kill_on_second=True,
                            timeout_reason="MaxRuntimeInSeconds ({seconds:.0f} s) reached") as sup:
        for hp in hosts:
            try:
                sup.start(hp.argv, env=hp.env, cwd=hp.cwd, name=hp.host, prefix=f"{hp.host} | " if prefixed else "",
                          stop=hp.terminate, kill=hp.kill)
            except OSError as exc:
                raise ConfigError(f"{hp.host}: cannot start {hp.argv[0]}: {exc.strerror or exc}") from exc
        done = sup.wait()
    for child in done.children:
        child.tail(timeout=5)  # the prefixed output, copied to the end
    return RunResult([HostExit(c.name, c.exit_code or 0, c.seconds) for c in done.children], done.timed_out,
                     done.signalled is not None, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# In-process mode
# ---------------------------------------------------------------------------------------------


def console_script(name: str, environ: Mapping[str, str]) -> str:
    """This machine's ``train`` or ``serve``: next to the running Python first, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name, path=environ.get("PATH"))
    if not found:
        raise ConfigError(f"no `{name}` console script next to this Python or on PATH; install sagemaker-toolkit "
                          f"here or give --image to run in a container")
    return found


def host_environment(environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """What a host process gets: this shell's environment without SageMaker's own variables
    (the host must see only what the platform gives it), plus ``extra``."""
    env = {k: v for k, v in environ.items() if not k.startswith(DROP_PREFIXES)}
    env.update(extra)
    return env


def in_process(host: str, base: Path, command: Sequence[str], environ: Mapping[str, str],
               extra_env: Mapping[str, str]) -> HostProcess:
    env = host_environment(environ, {**extra_env, "SAGEMAKER_BASE_DIR": str(base)})
    return HostProcess(host, list(command), env=env, cwd=base)


# ---------------------------------------------------------------------------------------------
# Container mode
# ---------------------------------------------------------------------------------------------


def find_engine(environ: Mapping[str, str], wanted: Optional[str]) -> str:
    """The engine asked for; else docker when its daemon is there, else podman, else docker."""
    names = [wanted] if wanted else ["docker", "podman"]
    if not wanted and not (environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        names = ["podman", "docker"]
    for name in names:
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return found
    raise ConfigError(f"no container engine found ({wanted or 'docker or podman'}); install one, or leave out "
                      f"--image to run this machine's train")


def ready_engine(environ: Mapping[str, str], wanted: Optional[str]) -> str:
    """The engine, checked to answer (``ENGINE version`` asks the daemon too) before any data is
    copied, so a stopped docker daemon is named as such, not blamed on the image."""
    exe = find_engine(environ, wanted)
    try:
        proc = subprocess.run([exe, "version"], capture_output=True, text=True, errors="replace", timeout=30)
        problem = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["no output"])[-1]
    except subprocess.TimeoutExpired:
        problem = "no answer within 30 s"
    if problem:
        name = Path(exe).name
        other = "podman" if name == "docker" else "docker"
        raise ConfigError(f"the container engine {name} does not answer ({problem}); start it (e.g. "
                          f"`sudo systemctl start {name}`), or use --engine {other}, or leave out --image to run "
                          f"this machine's train")
    return exe


class Network:
    """The job's private network, with a fixed address per host and every host in every host's
    /etc/hosts, so algo-1..algo-N resolve from the first instant, whichever container starts first."""

    def __init__(self, engine: str, name: str) -> None:
        self.engine = engine
        self.name = name
        self.prefix = ""

    def address(self, index: int) -> str:
        """The address of host ``index`` (0-based)."""
        return f"{self.prefix}.{index + 10}"

    def __enter__(self) -> Network:
        seed = zlib.crc32(self.name.encode())
        error = ""
        for attempt in range(8):  # another network may hold the subnet: try the next one
            value = (seed + attempt * 7919) % 65536
            prefix = f"10.{200 + value % 50}.{value // 256}"
            out = subprocess.run([self.engine, "network", "create", "--subnet", f"{prefix}.0/24", self.name],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                self.prefix = prefix
                return self
            error = out.stderr.strip()
        raise ConfigError(f"cannot create the job network {self.name}: {error}")

    def __exit__(self, *exc: object) -> None:
        subprocess.run([self.engine, "network", "rm", "-f", self.name], capture_output=True)


def ensure_image(engine: str, image: str) -> None:
    """Have ``image`` here before any host starts: pulled once for the job (not once per host, each
    ``ENGINE run`` on its own), and a name that is neither here nor pullable is the request's fault
    (ClientError, exit 2), as on the platform, not a host's exit code 125."""
    if subprocess.run([engine, "image", "inspect", image], capture_output=True).returncode == 0:
        return
    log.info("pulling %s", image)
    proc = subprocess.Popen([engine, "pull", image], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    last = "no output"
    for line in proc.stderr or ():  # the engine's progress, shown as it comes
        sys.stderr.write(line)
        last = line.strip() or last
    if proc.wait() != 0:
        raise ConfigError(f"image {image!r} is not on this machine and {Path(engine).name} cannot pull it ({last}); "
                          f"build or pull it first, or check the name")


def in_container(engine: str, image: str, host: str, container: str, network: Network, hosts: Sequence[str],
                 mounts: Sequence[tuple[Path, str, bool]], env: Mapping[str, str],
                 entrypoint: Sequence[str], arguments: Sequence[str], kill_after: float,
                 inherited: Optional[Mapping[str, str]] = None) -> HostProcess:
    """``ENGINE run`` for one host: named, on the job network as ``host``, /opt/ml mounted.

    ``inherited`` (this shell's environment) goes to the engine process itself, and the variables of
    ``env`` that have the same value there are passed by name only (``-e NAME``), so credentials
    such as AWS_SECRET_ACCESS_KEY never appear in the engine's command line, which every user of
    the machine can read (ps, /proc/PID/cmdline).
    """
    argv = [engine, "run", "--rm", "--name", container, "--hostname", host, "--network", network.name,
            "--network-alias", host, "--ip", network.address(hosts.index(host))]
    for i, other in enumerate(hosts):
        argv += ["--add-host", f"{other}:{network.address(i)}"]
    for src, dest, read_only in mounts:
        argv += ["-v", f"{src}:{dest}{':ro' if read_only else ''}"]
    for key, value in env.items():
        argv += ["-e", key if inherited is not None and inherited.get(key) == value else f"{key}={value}"]
    # docker takes --entrypoint as one executable (only podman also reads a JSON list), so the
    # entrypoint's first word is the executable and the rest go before the arguments.
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
    argv.append(image)
    argv += [*entrypoint[1:], *arguments] if (arguments or entrypoint) else ["train"]

    def terminate() -> None:
        subprocess.run([engine, "stop", "-t", str(int(kill_after)), container], capture_output=True)

    def kill() -> None:
        subprocess.run([engine, "kill", container], capture_output=True)

    # `engine stop -t N` already sends SIGKILL after N seconds, so it runs in the background.
    def terminate_async(_signal: int) -> None:
        threading.Thread(target=terminate, daemon=True).start()

    return HostProcess(host, argv, env=dict(inherited) if inherited is not None else None,
                       terminate=terminate_async, kill=kill)
