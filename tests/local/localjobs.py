"""Helpers for the emulator's tests: run the real ``toolkit`` console script, read its results."""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import tarfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from helpers import BIN, clean_environ, free_port


def toolkit(*args: str, env: Optional[Mapping[str, str]] = None, stdin: Optional[str] = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """``toolkit ARGS`` in a subprocess with a clean environment plus ``env``."""
    return subprocess.run([str(BIN / "toolkit"), *args], env=clean_environ(**dict(env or {})),
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tar_members(data: bytes) -> dict[str, bytes]:
    """name -> content of every file in a .tar.gz."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.isfile():
                out[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return out


def s3_keys(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def s3_bytes(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def describe(workdir: Path, job: str) -> dict[str, Any]:
    return json.loads((workdir / f"{job}.json").read_text())


def write_script(folder: Path, text: str, name: str = "train.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


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
        assert proc.wait(timeout=40) == 0
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
