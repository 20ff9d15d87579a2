"""Helpers for testing a plugin against the real toolkit (docs/hooks.md, "Testing your plugin").

- ``Job``: a temporary /opt/ml laid out as SageMaker lays it out; ``job.run()`` runs the real
  ``train`` on it, ``job.serve()`` starts the real ``serve`` on its model folder.
- ``Server``: a started ``serve`` on 127.0.0.1 to send requests to; stops on SIGTERM when left.
- ``plugin_manager(plugin)``: the toolkit's plugin manager with the built-ins and your plugin only,
  to call a hook directly.
- ``free_port()`` and ``clean_environ()``: a free TCP port, and this process's environment without
  the SageMaker, toolkit and AWS variables that would leak into a job.

Plain functions and classes, not pytest fixtures: this module imports no test framework, so it
works under any runner, and a fixture is two lines in the plugin's conftest.py. The toolkit's own
tests and benchmarks use these same helpers.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, TypeVar

if TYPE_CHECKING:
    import pluggy

    from toolkit.environment import TrainingEnv

BIN = Path(sys.executable).parent  # where pip put this environment's console scripts
# Variables a job on this machine would otherwise inherit from the shell the tests run in (an
# MPI launcher's own included): a test's job sees only what the test gives it.
INHERITED = ("SM_", "SAGEMAKER_", "TOOLKIT_", "AWS_", "TRAINING_JOB_NAME", "OMPI_", "PMIX_")

ServerT = TypeVar("ServerT", bound="Server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without SageMaker/toolkit/AWS (and MPI) variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED)}
    env.update(extra)
    return env


def console_script(name: str) -> list[str]:
    """The argv that runs ``train``, ``serve`` or ``process``: the script beside this Python, else
    (the toolkit installed in a parent environment) its entry function run by this Python."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; from toolkit.scripts import {name}_main; sys.exit({name}_main())"]


class Job:
    """A /opt/ml tree as SageMaker lays it out, under ``root`` (a temporary folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "opt" / "ml"
        self.config = self.base / "input" / "config"
        self.code = self.base / "code"
        self.config.mkdir(parents=True)

    def hyperparameters(self, hps: Mapping[str, Any], encode: bool = True) -> Job:
        """hyperparameters.json; values JSON-encoded, as the SageMaker Python SDK sends them."""
        data = {k: json.dumps(v) if encode else v for k, v in hps.items()}
        (self.config / "hyperparameters.json").write_text(json.dumps(data))
        return self

    def channels(self, *names: str, mode: str = "File", create: bool = True) -> Job:
        """inputdataconfig.json naming these channels (and their folders under input/data)."""
        spec = {n: {"ContentType": "text/csv", "TrainingInputMode": mode,
                    "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                for n in names}
        (self.config / "inputdataconfig.json").write_text(json.dumps(spec))
        if create:
            for n in names:
                (self.base / "input" / "data" / n).mkdir(parents=True, exist_ok=True)
        return self

    def resources(self, current: str = "algo-1", hosts: tuple[str, ...] | list[str] = ("algo-1",),
                  instance_type: str = "ml.m5.xlarge", **more: Any) -> Job:
        """resourceconfig.json: this host among ``hosts`` (one instance group)."""
        data = {"current_host": current, "hosts": list(hosts), "current_group_name": "homogeneousCluster",
                "current_instance_type": instance_type, "network_interface_name": "eth0",
                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                     "instance_type": instance_type, "hosts": list(hosts)}]}
        data.update(more)
        (self.config / "resourceconfig.json").write_text(json.dumps(data))
        return self

    def distributed(self, config: Mapping[str, Any]) -> Job:
        """The SDK v3's input/data/sm_drivers/distributed.json (what a distributed launcher reads)."""
        drivers = self.base / "input" / "data" / "sm_drivers"
        drivers.mkdir(parents=True, exist_ok=True)
        (drivers / "distributed.json").write_text(json.dumps(config))
        return self

    def script(self, name: str, text: str, mode: int = 0o644, where: Optional[Path] = None) -> Path:
        """A file of the job's code (under /opt/ml/code unless ``where`` says otherwise)."""
        folder = where or self.code
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"

    @property
    def success(self) -> Path:
        return self.base / "output" / "success"

    @property
    def model(self) -> Path:
        return self.base / "model"

    def environ(self, **extra: str) -> dict[str, str]:
        """The variables a job here starts with: ``clean_environ`` and SAGEMAKER_BASE_DIR."""
        return clean_environ(SAGEMAKER_BASE_DIR=str(self.base), **extra)

    def training_env(self, **extra: str) -> TrainingEnv:
        """The ``TrainingEnv`` that training hooks get for this job (to call a hook directly)."""
        from toolkit.environment import TrainingEnv

        return TrainingEnv.from_environ(self.environ(**extra))

    def run(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
        """Run the real ``train`` on this job; its output and the job's are in stdout/stderr."""
        return subprocess.run([*console_script("train"), *args], env=self.environ(**extra),
                              capture_output=True, text=True, timeout=timeout)

    def serve(self, timeout: float = 30.0, **extra: str) -> Server:
        """Start the real ``serve`` on this job's model folder; returned once /ping answers 200, else
        stopped and an AssertionError with its log after ``timeout`` seconds."""
        server = Server.start(self.base, **extra)
        try:
            return server.wait_ready(timeout)
        except BaseException:
            server.stop()
            raise


class Response:
    """An HTTP answer: ``status``, ``headers`` (lower-case names), ``body`` bytes."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class Server:
    """A running ``serve`` process (``base`` is its /opt/ml); ``request`` talks real HTTP to it.
    Use it in a ``with`` block, or call ``stop()``: SIGTERM, as the platform stops a container."""

    def __init__(self, base: Path, port: int, proc: subprocess.Popen, log: Path) -> None:
        self.base = base
        self.port = port
        self.proc = proc
        self.log_path = log

    @classmethod
    def start(cls: type[ServerT], base: Path, **variables: str) -> ServerT:
        """Start the real ``serve`` on 127.0.0.1 for the /opt/ml folder ``base`` (its output in
        ``base``/serve.log); it is not ready until ``wait_ready()``."""
        port = free_port()
        env = clean_environ(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_BIND_TO_PORT=str(port),
                            TOOLKIT_BIND_HOST="127.0.0.1", **variables)
        log = base / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(console_script("serve"), env=env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=str(base))
        return cls(base, port, proc, log)

    def __enter__(self: ServerT) -> ServerT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def log(self) -> str:
        """What ``serve`` wrote so far (its stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
                timeout: float = 30.0) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def invoke(self, body: bytes | str, content_type: str = "application/json", accept: Optional[str] = None,
               **headers: str) -> Response:
        """POST /invocations; ``headers`` with ``_`` for ``-`` (``X_Amzn_SageMaker_Custom_Attributes=...``)."""
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
        if accept is not None:
            hdrs["Accept"] = accept
        return self.request("POST", "/invocations", data, hdrs)

    def ping(self) -> int:
        """GET /ping's status, 0 when nothing answers."""
        try:
            return self.request("GET", "/ping", timeout=10).status
        except OSError:
            return 0

    def wait_ready(self: ServerT, timeout: float = 30.0, status: int = 200) -> ServerT:
        """Wait until /ping answers ``status``; fail with the server's log if it exits or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log}")
            if self.ping() == status:
                return self
            time.sleep(0.02)
        raise AssertionError(f"/ping never answered {status} within {timeout} s:\n{self.log}")

    def stop(self, timeout: float = 35.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def plugin_manager(plugin: Any, *more: Any, environ: Optional[Mapping[str, str]] = None,
                   training: bool = False) -> pluggy.PluginManager:
    """The toolkit's plugin manager with the built-ins and these plugins (modules or objects) only:
    other installed plugins are left out, so the answer is yours or a built-in's.

    ``environ`` (default: ``clean_environ()``) is what the manager reads its controls from;
    ``training=True`` leaves out the serving-only built-ins, as ``train`` does."""
    from toolkit.manager import get_plugin_manager

    plugins = (plugin, *more)
    # TOOLKIT_PLUGINS is the allow-list of installed plugins: naming only these loads no other.
    names = ",".join(getattr(p, "__name__", None) or type(p).__name__ for p in plugins)
    controls = {**(clean_environ() if environ is None else environ), "TOOLKIT_PLUGINS": names}
    return get_plugin_manager(controls, plugins, training=training)
