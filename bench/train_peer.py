"""Shared set-up for the training benchmarks: the peer's venv, fake /opt/ml job trees, and a
private mount namespace in which the job's host names resolve.

Used by bench_train.py and train_capture_env.py (run them as scripts: ``python bench/X.py``).
Nothing here depends on files outside this repository.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from toolkit import testing

PEER_SPEC = "sagemaker-training==5.1.4"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "sagemaker-toolkit-bench"
NAMESPACE_MARK = "TOOLKIT_BENCH_NAMESPACE"  # set once we run inside our private mount namespace
PYENV = Path("/root/.pyenv/versions")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Interpreters
# --------------------------------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in path.name.split("."))
    except ValueError:
        return (0,)


def peer_base_python() -> str:
    """The Python to build the peer's venv from: the newest pyenv 3.11.x, else 3.12.x, else python3.

    sagemaker-training 5.1.4 is published for 3.8 to 3.12; the official framework images use 3.11/3.12.
    """
    for minor in ("3.11", "3.12"):
        found = sorted(PYENV.glob(f"{minor}.*"), key=_version_key) if PYENV.is_dir() else []
        for cand in reversed(found):
            if (cand / "bin" / "python").is_file():
                return str(cand / "bin" / "python")
    return shutil.which("python3") or sys.executable


def ensure_peer_venv(workdir: Path, base_python: Optional[str] = None) -> Path:
    """A venv with the peer installed (created once, reused); returns its bin/ folder."""
    base_python = base_python or peer_base_python()
    version = subprocess.run(
        [base_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    venv = workdir / f"peer-{PEER_SPEC.replace('==', '-')}-py{version}"
    marker = venv / ".installed"
    if marker.is_file() and (venv / "bin" / "train").is_file():
        return venv / "bin"
    log(f"creating {venv} ({base_python}) and installing {PEER_SPEC} (about 30 s, once)")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", PEER_SPEC], check=True
    )
    marker.write_text(PEER_SPEC + "\n")
    return venv / "bin"


def our_bin(explicit: Optional[str] = None) -> Path:
    """bin/ of the project's own environment: --ours, else the repo's .venv, else this interpreter's."""
    if explicit:
        return Path(explicit)
    venv = REPO / ".venv" / "bin"
    if (venv / "train").is_file():
        return venv
    return Path(sys.executable).parent


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def clean_environ(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``toolkit.testing.clean_environ`` without this venv's variables either (each side runs its
    own Python), plus ``extra``."""
    env = {k: v for k, v in testing.clean_environ().items()
           if not k.startswith("PYTHON") and k not in ("CURRENT_HOST", "VIRTUAL_ENV")}
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------
# Job trees
# --------------------------------------------------------------------------------------------


def write_job(
    base: Path,
    hyperparameters: Mapping[str, str],
    input_data_config: Mapping[str, Any],
    resource_config: Optional[Mapping[str, Any]],
) -> None:
    """A fresh /opt/ml-style tree: config files, one data file per channel, empty model/output."""
    shutil.rmtree(base, ignore_errors=True)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (base / "model").mkdir()
    (base / "output" / "data").mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=1))
    (config / "inputdataconfig.json").write_text(json.dumps(input_data_config, indent=1))
    if resource_config is not None:
        (config / "resourceconfig.json").write_text(json.dumps(resource_config, indent=1))
    for channel in input_data_config:
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True)
        (folder / "data.csv").write_text("a,b,c\n1,2,3\n")


def sdk_encode(values: Mapping[str, Any]) -> dict[str, str]:
    """Hyperparameters as the SageMaker Python SDK v2 writes them: every value json.dumps'ed."""
    return {k: json.dumps(v) for k, v in values.items()}


# --------------------------------------------------------------------------------------------
# Host names
# --------------------------------------------------------------------------------------------


def resolves(host: str) -> bool:
    try:
        socket.gethostbyname(host)
        return True
    except OSError:
        return False


def can_unshare() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("mount") is not None


def reexec_in_namespace(workdir: Path, hosts: Sequence[str], extra_mounts: str = "") -> None:
    """Re-run this script in a private mount namespace whose /etc/hosts also maps ``hosts`` to
    127.0.0.1 (the machine's /etc/hosts is untouched). Returns only when already inside.

    sagemaker-training resolves every host of resourceconfig.json with gethostbyname and retries
    for up to 15 minutes, so ``algo-1`` must resolve. ``extra_mounts`` is shell run before the
    script (e.g. more bind mounts), in the namespace.
    """
    if os.environ.get(NAMESPACE_MARK) == "1":
        return
    workdir.mkdir(parents=True, exist_ok=True)
    hosts_file = workdir / "hosts"
    lines = Path("/etc/hosts").read_text() if Path("/etc/hosts").is_file() else "127.0.0.1 localhost\n"
    if not lines.endswith("\n"):
        lines += "\n"
    hosts_file.write_text(lines + "".join(f"127.0.0.1 {h}\n" for h in hosts))
    script = f'mount --bind "$0" /etc/hosts && {extra_mounts} exec "$@"'
    os.environ[NAMESPACE_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(hosts_file),
                          sys.executable, *sys.argv])
