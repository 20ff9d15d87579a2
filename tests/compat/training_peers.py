"""Venvs holding the real AWS training packages, for the differential tests: made once and cached under
~/.cache/toolkit-tests/ by name and version, never beside the toolkit (sagemaker-training installs its
own ``train`` console script). A failed install skips the tests only when pip cannot reach the index.

- sagemaker-training 5.1.4 on this Python.
- sagemaker-containers 2.8.6.post2 does not import on Python 3.10 or later (``collections.Mapping``,
  ``distutils``): it gets a Python 3.9 found on this machine (TOOLKIT_TEST_PYTHON39, else pyenv's or
  ``python3.9`` on PATH), and only what ``training_env()`` and ``_encoders`` import (``--no-deps``
  plus boto3, six, numpy, scipy, protobuf<3.21: its own flask/gevent pins do not build on 3.9 here).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest

CACHE = Path(os.environ.get("TOOLKIT_TEST_CACHE", Path.home() / ".cache" / "toolkit-tests"))
TRAINING = "sagemaker-training==5.1.4"
CONTAINERS = "sagemaker-containers==2.8.6.post2"
OFFLINE = ("Could not find a version", "No matching distribution", "NewConnectionError", "Temporary failure",
           "Network is unreachable", "Connection refused", "ConnectTimeoutError", "ProxyError")


def python39() -> Optional[str]:
    explicit = os.environ.get("TOOLKIT_TEST_PYTHON39")
    if explicit:
        return explicit
    found = sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3")) or [shutil.which("python3.9") or ""]
    return found[-1] or None


def peer_venv(name: str, python: str, installs: Sequence[Sequence[str]]) -> Path:
    """The cached venv ``name`` made with ``python`` and ``pip install`` of each of ``installs``."""
    target = CACHE / name
    ready = target / "ready"
    if ready.exists():
        return target / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(tmp)], check=True, capture_output=True)
    for args in installs:
        proc = subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               *args], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            if any(word in proc.stderr for word in OFFLINE):
                pytest.skip(f"pip cannot reach the package index to install {' '.join(args)}: "
                            f"{proc.stderr.strip().splitlines()[-1]}")
            raise AssertionError(f"pip install {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    (tmp / "ready").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # a venv's scripts name its folder: made in place, renamed only as a whole
    return target / "bin" / "python"


def training_python() -> Path:
    version = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    return peer_venv(f"{TRAINING.replace('==', '-')}-{version}", sys.executable, [[TRAINING]])


def containers_python() -> Path:
    python = python39()
    if not python:
        pytest.skip("sagemaker-containers imports only on Python 3.9 or older and no Python 3.9 is installed here "
                    "(set TOOLKIT_TEST_PYTHON39)")
    return peer_venv(f"{CONTAINERS.replace('==', '-')}-py3.9", python,
                     [["--no-deps", CONTAINERS], ["boto3", "six", "numpy", "scipy", "protobuf<3.21"]])
