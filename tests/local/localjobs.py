"""Helpers for the emulator's tests: run the real ``toolkit`` console script, read its results."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional

from helpers import BIN, clean_environ, invoke, local_serve  # noqa: F401 - the emulator tests import them from here


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
