"""Helpers shared by the tests: SageMaker-style job folders, installed plugins, running the real
console scripts. Import them with ``from helpers import ...`` (a conftest module is not importable
reliably: pytest may have imported another folder's conftest under the same name)."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from toolkit.testing import BIN, Job, clean_environ, free_port

__all__ = ["BIN", "Job", "PluginSite", "clean_environ", "free_port", "invoke", "local_serve", "make_wheel",
           "run_cli", "scratch_venv", "serving", "wait_for"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true, and return that; fail the test after
    ``timeout`` seconds. For waiting on an event (a file written, a process gone, a port closed)
    instead of sleeping and hoping it happened: give a generous ``timeout``, it costs nothing when
    things go well, and a busy machine (2 cores, other suites beside) needs it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def serving(server: Any) -> Iterator[int]:
    """Run a ``socketserver`` server (``http.server``'s too) on a thread while the block runs; yields its port."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class PluginSite:
    """Installs plugin distributions the way pip does (a module plus a ``.dist-info`` folder
    with ``entry_points.txt``) into a folder that a subprocess gets on PYTHONPATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, source: str, module: Optional[str] = None) -> None:
        module = module or name.replace("-", "_")
        (self.root / f"{module}.py").write_text(source)
        info = self.root / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[toolkit.plugins]\n{name} = {module}\n")

    def environ(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root)}


def run_cli(*argv: str, env: Optional[Mapping[str, str]] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one of the console scripts (``toolkit``, ``train``, ``serve``) from this venv."""
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], env=dict(env or clean_environ()),
                          capture_output=True, text=True, timeout=timeout)


def make_wheel(folder: Path, name: str, module_source: str) -> Path:
    """A real wheel of a one-module package, so pip installs it with no index and no build."""
    import zipfile

    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}.py", module_source)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def scratch_venv(path: Path) -> Path:
    """A new venv that sees this one's packages (toolkit, pip) but installs into itself."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir (not a bare path) so the parent's own .pth files, editable installs included, apply
    (Path(purelib) / "parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    return python


@contextmanager
def local_serve(*args: str, cwd: Optional[Path] = None) -> Iterator[int]:
    """``toolkit local serve ARGS`` on a free port (one worker) until it says it answers; yields
    the port; on leaving, SIGTERM must stop it with exit code 0."""
    port = free_port()
    proc = subprocess.Popen([str(BIN / "toolkit"), "local", "serve", *args, "--port", str(port), "--environment",
                             "SAGEMAKER_MODEL_SERVER_WORKERS=1"], cwd=str(cwd) if cwd else None,
                            env=clean_environ(), stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "answers at" in line or proc.poll() is not None:
                break
        assert f"answers at http://127.0.0.1:{port}" in lines[-1], "".join(lines)
        yield port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def invoke(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    """POST /invocations: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
