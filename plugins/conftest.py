"""Fixtures for the first-party plugins' tests: SageMaker job folders, and several hosts on one
machine, each in its own network namespace with its own address, /etc/hosts and /opt/ml, each
running the real ``train`` console script (see /work/shared/multihost.md for the recipe)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import pytest

from toolkit.testing import BIN, Job, clean_environ


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A plugin's tests run the installed plugin (its entry point, as an image has it): where it is
    not installed in this Python, they skip and say how to install it (``bash .ci/run`` does)."""
    import importlib.util

    here = Path(__file__).parent
    for item in items:
        try:
            folder = Path(item.path).relative_to(here).parts[0]
        except ValueError:
            continue
        module = folder.replace("-", "_")
        if folder.startswith("toolkit-") and importlib.util.find_spec(module) is None:
            item.add_marker(pytest.mark.skip(reason=f"{folder} is not installed: pip install ./plugins/{folder}"))


def host_folder(root: Path, host: str, hosts: list[str]) -> Job:
    """One host's /opt/ml (under ``root``/``host``) among ``hosts``, with its code folder."""
    job = Job(root / host).resources(host, hosts)
    job.code.mkdir(parents=True)
    return job


def netns_unavailable() -> Optional[str]:
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "multi-host tests need root (to create network namespaces)"
    if shutil.which("ip") is None:
        return "multi-host tests need the `ip` command (iproute2)"
    if shutil.which("unshare") is None:
        return "multi-host tests need `unshare` (util-linux) to give each host its own hostname"
    probe = f"tkprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Cluster:
    """Hosts algo-1..algo-N, each a network namespace joined to the others by a bridge."""

    def __init__(self, root: Path, count: int = 2) -> None:
        self.tag = secrets.token_hex(3)  # unique per test: namespace and link names
        self.hosts = [f"algo-{i + 1}" for i in range(count)]
        self.ns = {h: f"tk{self.tag}-{i + 1}" for i, h in enumerate(self.hosts)}
        self.bridge = f"tkbr{self.tag}"
        self.jobs = {h: host_folder(root, h, self.hosts) for h in self.hosts}
        self.logs = root / "logs"
        self.logs.mkdir()
        self.procs: dict[str, subprocess.Popen] = {}

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def up(self) -> Cluster:
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("link", "set", self.bridge, "up")
        lines = ["127.0.0.1 localhost"] + [f"10.77.0.{i + 1} {h}" for i, h in enumerate(self.hosts)]
        for i, host in enumerate(self.hosts):
            ns, outside = self.ns[host], f"tk{self.tag}v{i + 1}"
            self._ip("netns", "add", ns)
            self._ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("link", "set", outside, "master", self.bridge)
            self._ip("link", "set", outside, "up")
            self._ip("-n", ns, "addr", "add", f"10.77.0.{i + 1}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            folder = Path("/etc/netns") / ns
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text("\n".join(lines) + "\n")
        return self

    def down(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for ns in self.ns.values():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def start(self, host: str, **extra: str) -> subprocess.Popen:
        """The real ``train`` on ``host``, in its namespace, with its own SAGEMAKER_BASE_DIR."""
        env = clean_environ(SAGEMAKER_BASE_DIR=str(self.jobs[host].base), PYTHONUNBUFFERED="1", **extra)
        out = open(self.logs / f"{host}.log", "w")  # noqa: SIM115 - kept open while the host runs
        # Own UTS namespace too: each host has its own hostname, as separate machines do (Open MPI
        # tells hosts apart by name).
        argv = ["ip", "netns", "exec", self.ns[host], "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$1"', host, str(BIN / "train")]
        proc = subprocess.Popen(argv, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[host] = proc
        return proc

    def run(self, timeout: float = 120, **extra: str) -> dict[str, int]:
        """Start ``train`` on every host and wait for all; exit code by host."""
        for host in self.hosts:
            self.start(host, **extra)
        return self.wait(timeout)

    def wait(self, timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        codes = {}
        for host, proc in self.procs.items():
            try:
                codes[host] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{host} still running after {timeout} s:\n{self.output()}")
        return codes

    def output(self) -> str:
        return "\n".join(f"----- {h}\n{(self.logs / f'{h}.log').read_text()}" for h in self.hosts
                         if (self.logs / f"{h}.log").exists())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Two hosts, algo-1 and algo-2 (10.77.0.1 and .2), torn down after the test."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    c = Cluster(tmp_path)
    try:
        c.up()
        yield c
    finally:
        c.down()


class Launch:
    """Ask the real plugin manager (built-ins and installed plugins) what it would run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def __call__(self, hps: Mapping[str, Any], *, current: str = "algo-1", hosts: tuple[str, ...] = ("algo-1",),
                 distributed: Optional[Mapping[str, Any]] = None, instance_type: str = "ml.m5.xlarge",
                 entry: str = "train.py", args: tuple[str, ...] = (), **environ: str) -> Any:
        from toolkit.manager import get_plugin_manager

        self.count += 1
        job = Job(self.root / f"job{self.count}").resources(current, hosts, instance_type)
        job.hyperparameters({"sagemaker_program": entry, **hps})
        if distributed is not None:
            job.distributed(distributed)
        for name in ("train.py", "run.sh", "trainer/__init__.py", "trainer/main.py"):
            job.script(name, "")
        pm = get_plugin_manager(job.environ(**environ))
        return pm.hook.toolkit_launch(entry_point=entry, code_dir=job.code, args=list(args),
                                      env=job.training_env(**environ))


@pytest.fixture
def launch(tmp_path: Path) -> Launch:
    return Launch(tmp_path)


@pytest.fixture
def host_job(tmp_path: Path) -> Job:
    """A one-host job (algo-1); ``run()`` runs the real ``train`` on it, in this namespace."""
    return host_folder(tmp_path, "algo-1", ["algo-1"])
