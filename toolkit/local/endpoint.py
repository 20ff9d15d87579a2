"""A model server as the platform starts one: model.tar.gz extracted into /opt/ml/model, then
``serve`` (this machine's, or ``IMAGE serve`` in a container engine) on a chosen port."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from toolkit import archive, settings
from toolkit.errors import ConfigError, ToolkitError
from toolkit.local.hosts import console_script, ensure_image, find_engine, host_environment
from toolkit.local.jobenv import JobEnv, requirements_text
from toolkit.local.storage import Storage, parse_location
from toolkit.process import descendants

log = logging.getLogger("toolkit")
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


class ServerError(ToolkitError):
    """The model server did not start, or stopped answering."""


def prepare_model(storage: Storage, model_uri: str, base: Path, environ: Mapping[str, str]) -> Path:
    """``<base>/model`` from a model.tar.gz (S3 or local) or a model folder, as the platform
    extracts it before starting the container."""
    dest = base / "model"
    loc = parse_location(model_uri, "model")
    if loc.path is not None and loc.path.is_dir():
        shutil.copytree(loc.path, dest)
        return dest
    tarball = base / "model.tar.gz"
    storage.download_file(loc, tarball)
    max_bytes, max_members = archive.limits(environ)
    archive.extract(tarball, dest, label=model_uri, max_bytes=max_bytes, max_members=max_members)
    tarball.unlink()
    return dest


def pack_code(model_dir: Path, source_dir: Optional[str], entry_point: str) -> dict[str, str]:
    """Put the inference code into ``<model>/code`` as the SageMaker Python SDK v2 repacks a
    ``Model(entry_point=, source_dir=)`` for one model (sagemaker.utils.repack_model): the source
    folder's files replace ``code/``, or the lone entry point is copied into it. The variables the
    SDK then gives the endpoint: SAGEMAKER_PROGRAM is the entry point's name (the submit directory,
    /opt/ml/model/code, is the server's default)."""
    from toolkit.local.source import check_source

    folder, program = check_source(source_dir, entry_point)
    code = model_dir / "code"
    if folder is not None:
        if code.exists():
            shutil.rmtree(code)
        shutil.copytree(folder, code)
    else:
        code.mkdir(exist_ok=True)
        shutil.copy2(entry_point, code / program)
    return {"SAGEMAKER_PROGRAM": Path(program).name if folder is None else program}


def resolve_submit_dir(env: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """A relative SAGEMAKER_SUBMIT_DIRECTORY means the folder where the user typed it, not the
    server's work folder: made absolute here (URIs and absolute paths are kept)."""
    out = dict(env)
    value = settings.read(out, "SAGEMAKER_SUBMIT_DIRECTORY") or ""
    if value and "://" not in value and not os.path.isabs(os.path.expanduser(value)):
        path = (cwd / value).resolve()
        if not path.exists():
            raise ConfigError(f"SAGEMAKER_SUBMIT_DIRECTORY={value}: {path} does not exist (a relative path is "
                               f"taken from the folder you run toolkit in)")
        out["SAGEMAKER_SUBMIT_DIRECTORY"] = str(path)
    return out


def serving_requirements(base: Path, env: Mapping[str, str]) -> Optional[str]:
    """The inference code's requirements, to pick the server's environment; None when the code is
    fetched by the server (a URI) or models come and go (multi-model)."""
    if settings.read(env, "SAGEMAKER_MULTI_MODEL"):
        return None
    value = settings.read(env, "SAGEMAKER_SUBMIT_DIRECTORY") or ""
    if value.startswith("file://"):
        value = value[len("file://"):]
    if "://" in value:
        return None
    return requirements_text(Path(value) if value else base / "model" / "code", None)


@dataclass
class ModelServer:
    """A running ``serve``; ``url`` is where this machine reaches it."""

    url: str
    port: int
    process: subprocess.Popen
    container: Optional[str] = None
    engine: Optional[str] = None

    def stop(self) -> int:
        """SIGTERM (``ENGINE stop`` for a container), SIGKILL to the whole tree 30 s later."""
        if self.process.poll() is None:
            if self.container and self.engine:
                subprocess.run([self.engine, "stop", "-t", str(int(STOP_TIMEOUT)), self.container],
                               capture_output=True)
            else:
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                for pid in [*descendants(self.process.pid), self.process.pid]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.process.wait()
        code = self.process.returncode
        return 128 - code if code < 0 else code

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Poll GET /ping until it answers 200, as the platform does; the seconds it took."""
        started = time.perf_counter()
        last = "no answer"
        while time.perf_counter() - started < timeout:
            code = self.process.poll()
            if code is not None:
                raise ServerError(f"the model server exited with code {code} before /ping answered 200 "
                                  f"(its log is above)")
            try:
                status, body = self.get("/ping", timeout=2)
                if status == 200:
                    return time.perf_counter() - started
                last = f"HTTP {status} {_reason(body)}"
            except OSError as exc:
                last = f"no answer ({exc})"
            time.sleep(0.1)
        raise ServerError(f"the model is not ready after {timeout:.0f} s: GET /ping gave {last}; fix what it says "
                          f"(the server's log is above), or allow a slow model more time with --ready-timeout "
                          f"SECONDS", exit_code=1)


def _reason(body: bytes, limit: int = 600) -> str:
    """What a /ping answer says: the ``message`` of a JSON error body (our 503 names the cause), else
    the text, within ``limit`` characters."""
    text = body.decode("utf-8", "replace")
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = None
    text = message if isinstance(message, str) else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def start_server(base: Path, port: int, environ: Mapping[str, str], extra_env: Mapping[str, str], *,
                 bind_host: str = "127.0.0.1", image: Optional[str] = None, engine: Optional[str] = None,
                 name: str = "toolkit-local-serve", jobenv: Optional[JobEnv] = None) -> ModelServer:
    """Start ``serve`` for the model in ``<base>/model`` on ``port`` (in-process: with the Python
    of ``jobenv``, the server's own environment, when given)."""
    if image is None:
        own = jobenv.variables(environ) if jobenv else {}
        env = host_environment(environ, {**extra_env, **own, "SAGEMAKER_BASE_DIR": str(base),
                                         "SAGEMAKER_BIND_TO_PORT": str(port), "TOOLKIT_BIND_HOST": bind_host})
        argv = [jobenv.script("serve") if jobenv else console_script("serve", environ)]
        process = subprocess.Popen(argv, env=env, cwd=str(base), start_new_session=True)
        return ModelServer(f"http://127.0.0.1:{port}", port, process)
    exe = find_engine(environ, engine)
    ensure_image(exe, image)
    argv = [exe, "run", "--rm", "--name", name, "-p", f"{bind_host}:{port}:8080",
            "-v", f"{base / 'model'}:/opt/ml/model:ro"]
    submit = settings.read(extra_env, "SAGEMAKER_SUBMIT_DIRECTORY") or ""
    if submit.startswith("/"):  # code on this machine (made absolute by resolve_submit_dir): seen at its own path
        argv += ["-v", f"{submit}:{submit}:ro"]
    for key, value in extra_env.items():
        argv += ["-e", f"{key}={value}"]
    argv += [image, "serve"]
    process = subprocess.Popen(argv, start_new_session=True)
    return ModelServer(f"http://127.0.0.1:{port}", port, process, container=name, engine=exe)
