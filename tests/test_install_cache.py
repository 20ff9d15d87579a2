"""Dependency installs share a download cache (TOOLKIT_CACHE_DIR, the warm-pool cache) and can
use uv: a real package index on 127.0.0.1 counts what each ``train`` run downloads.

Each run uses a fresh virtual environment (as a new container would) that sees this one's
packages but installs into itself; ``train`` runs there through its console-script function.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from helpers import Job, scratch_venv

PKG = "demo_cache_pkg"
WHEEL = f"{PKG}-1.0-py3-none-any.whl"
UV = shutil.which("uv") or (str(Path(sys.executable).parent / "uv") if (Path(sys.executable).parent / "uv").exists()
                             else None)


def make_wheel(path: Path) -> bytes:
    info = f"{PKG}-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{PKG}.py", "VALUE = 'from the index'\n")
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: demo-cache-pkg\nVersion: 1.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path.read_bytes()


class Index(BaseHTTPRequestHandler):
    """A PEP 503 simple index with one wheel, sending the cache headers PyPI sends."""

    wheel = b""
    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:  # uv asks first whether ranged reads are possible
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        if body:
            self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path.rstrip("/") == "/simple/demo-cache-pkg":
            data, kind, cache = f'<a href="/files/{WHEEL}">{WHEEL}</a>'.encode(), "text/html", "max-age=600"
        elif self.path == f"/files/{WHEEL}":
            data, kind, cache = self.wheel, "application/octet-stream", "max-age=365000000, immutable"
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    handler = type("Handler", (Index,), {"wheel": make_wheel(tmp_path / WHEEL), "hits": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", handler.hits
    finally:
        server.shutdown()
        server.server_close()


def train_in_new_venv(job: Job, venv: Path, **env: str) -> subprocess.CompletedProcess:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("requirements.txt", "demo-cache-pkg==1.0\n")
    job.script("train.py", f"import {PKG}\nprint('imported', {PKG}.VALUE)\n")
    python = scratch_venv(venv)
    # pip caches plain-http downloads only from trusted hosts (as anyone with an http index sets)
    env.setdefault("PIP_TRUSTED_HOST", "127.0.0.1")
    return subprocess.run([str(python), "-c", "from toolkit.scripts import train_main; train_main()"],
                          env=job.environ(**env), capture_output=True, text=True, timeout=180)


def wheel_downloads(hits: dict[str, int]) -> int:
    return hits.get(f"/files/{WHEEL}", 0)


def test_second_run_with_the_same_cache_downloads_nothing(make_job, tmp_path: Path, index: tuple) -> None:
    url, hits = index
    cache = tmp_path / "cache"
    first = 0
    for n in (1, 2):
        proc = train_in_new_venv(make_job(f"run{n}"), tmp_path / f"venv{n}", PIP_INDEX_URL=url,
                                 TOOLKIT_CACHE_DIR=str(cache))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "imported from the index" in proc.stdout
        first = first if n == 2 else wheel_downloads(hits)
        assert first >= 1 and wheel_downloads(hits) == first  # the second run found it in the cache
    assert (cache / "pip").is_dir()


def test_warm_pool_cache_is_the_default(job: Job, tmp_path: Path, index: tuple) -> None:
    warm = tmp_path / "warmpool"
    warm.mkdir()
    proc = train_in_new_venv(job, tmp_path / "venv", PIP_INDEX_URL=index[0],
                             SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY=str(warm))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any((warm / "sagemaker-toolkit" / "pip").iterdir())


@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_uv_installs_when_asked_and_shares_the_cache(make_job, tmp_path: Path, index: tuple) -> None:
    url, hits = index
    cache = tmp_path / "cache"
    path = f"{Path(UV or '').parent}:/usr/bin:/bin"
    first = 0
    for n in (1, 2):
        proc = train_in_new_venv(make_job(f"run{n}"), tmp_path / f"venv{n}", PIP_INDEX_URL=url, PATH=path,
                                 TOOLKIT_CACHE_DIR=str(cache), TOOLKIT_INSTALLER="uv")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "imported from the index" in proc.stdout
        assert "with uv (cache: " + str(cache / "uv") in proc.stderr
        first = first if n == 2 else wheel_downloads(hits)
        assert first >= 1 and wheel_downloads(hits) == first
    assert not (cache / "pip").exists()


def test_uv_asked_for_but_missing_falls_back_to_pip(job: Job, tmp_path: Path, index: tuple) -> None:
    proc = train_in_new_venv(job, tmp_path / "venv", PIP_INDEX_URL=index[0], PATH="/usr/bin:/bin",
                             TOOLKIT_CACHE_DIR=str(tmp_path / "cache"), TOOLKIT_INSTALLER="uv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TOOLKIT_INSTALLER=uv but uv is not installed; using pip" in proc.stderr
    assert (tmp_path / "cache" / "pip").is_dir()


def test_unknown_installer_is_a_one_line_error(job: Job, tmp_path: Path, index: tuple) -> None:
    proc = train_in_new_venv(job, tmp_path / "venv", PIP_INDEX_URL=index[0], TOOLKIT_INSTALLER="conda")
    assert proc.returncode == 2
    assert job.failure.read_text() == ("TOOLKIT_INSTALLER='conda' is not one of: pip, uv; "
                                       "expected e.g. TOOLKIT_INSTALLER=pip")


def test_requirements_file_named_by_toolkit_requirements(make_job, tmp_path: Path, index: tuple) -> None:
    job = make_job("named")
    job.script("deps/extra.txt", "demo-cache-pkg==1.0\n")
    proc = train_in_new_venv(job, tmp_path / "venv", PIP_INDEX_URL=index[0], TOOLKIT_REQUIREMENTS="deps/extra.txt",
                             TOOLKIT_CACHE_DIR=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "installing " + str(job.code / "deps" / "extra.txt") in proc.stderr
    missing = make_job("missing")
    proc = train_in_new_venv(missing, tmp_path / "venv2", TOOLKIT_REQUIREMENTS="nope.txt")
    assert proc.returncode == 2
    assert missing.failure.read_text().startswith("requirements file 'nope.txt' not found in ")
