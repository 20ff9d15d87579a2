"""The real AWS inference packages (sagemaker-inference, sagemaker-pytorch-inference) in a venv of their
own, for differential tests: their code runs in a subprocess of that venv, fed the same input as ours.

The venv is made once per set of versions under ~/.cache/toolkit-tests/ (or $TOOLKIT_TEST_CACHE) and
reused between runs. sagemaker-pytorch-inference puts its own ``serve`` on PATH and reinstalls
sagemaker_inference, and sagemaker-inference imports pkg_resources (hence ``setuptools<81``): neither may
go into the toolkit's own venv (see /work/shared/peers/compat-notes.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

REQUIREMENTS = ("sagemaker-inference==1.10.1", "sagemaker-pytorch-inference==2.0.25", "setuptools<81",
                "torch==2.13.0")


def cache_root() -> Path:
    return Path(os.environ.get("TOOLKIT_TEST_CACHE") or Path.home() / ".cache" / "toolkit-tests")


def venv_path() -> Path:
    key = hashlib.sha256(" ".join(REQUIREMENTS).encode()).hexdigest()[:10]
    return cache_root() / f"aws-inference-py{sys.version_info[0]}.{sys.version_info[1]}-{key}"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


class Unreachable(Exception):
    """pip could not reach the package index: the one reason the differential tests may skip."""


_NETWORK_SIGNS = ("Could not find a version that satisfies", "No matching distribution", "NewConnectionError",
                  "Failed to establish a new connection", "Temporary failure in name resolution",
                  "Network is unreachable", "ConnectTimeoutError", "ProxyError")


def ensure_venv() -> Path:
    """The venv's path, made (all or nothing) when it does not exist yet.

    Raises ``Unreachable`` when pip cannot get the packages from the index; any other failure raises
    RuntimeError with pip's output, so a broken install fails the tests instead of skipping them."""
    venv = venv_path()
    if (venv / "ok").is_file():
        return venv
    tmp = venv.with_name(venv.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
    pip = subprocess.run([str(python_of(tmp)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          *REQUIREMENTS], capture_output=True, text=True)
    if pip.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        output = pip.stdout + pip.stderr
        if any(sign in output for sign in _NETWORK_SIGNS):
            raise Unreachable(f"pip cannot reach the index for {' '.join(REQUIREMENTS)}: "
                              f"{output.strip().splitlines()[-1]}")
        raise RuntimeError(f"pip install {' '.join(REQUIREMENTS)} failed:\n{output}")
    (tmp / "ok").write_text(" ".join(REQUIREMENTS) + "\n")
    # made under a temporary name and renamed, so a half-made venv is never reused (the console scripts
    # in bin/ keep the temporary name in their #! line: the tests only run bin/python)
    try:
        tmp.rename(venv)
    except OSError:  # another test process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    if not (venv / "ok").is_file():
        raise RuntimeError(f"{venv} was not created")
    return venv


DRIVER = Path(__file__).with_name("aws_driver.py")


def run_driver(venv: Path, request: dict[str, Any], timeout: float = 120) -> Any:
    """Run aws_driver.py in the AWS venv with ``request`` (JSON on stdin); its JSON answer."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(Path.home())}
    proc = subprocess.run([str(python_of(venv)), str(DRIVER)], input=json.dumps(request), capture_output=True,
                          text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"the AWS driver failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def installed_version(venv: Path, name: str) -> Optional[str]:
    out = subprocess.run([str(python_of(venv)), "-c",
                          f"import importlib.metadata as m; print(m.version({name!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None
