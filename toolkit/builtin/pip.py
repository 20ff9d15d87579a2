"""Installer: ``requirements.txt`` (or the file the job names: the hook's ``requirements``) and, for a package
directory, the directory itself, with pip (or ``uv pip`` when TOOLKIT_INSTALLER=uv and uv is
installed).

Downloads are cached under TOOLKIT_CACHE_DIR (default: SageMaker's warm-pool persistent cache,
SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY, else a folder under /tmp), so a warm-pool job or a
local re-run with the same requirements downloads nothing. PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
PIP_CERT and the other PIP_* variables pass through (the two index URLs are also given to uv);
a PIP_CACHE_DIR / UV_CACHE_DIR you set yourself wins.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional

from toolkit import settings
from toolkit.environment import which
from toolkit.errors import CodeError
from toolkit.hookspecs import hookimpl
from toolkit.log import log

TMP_CACHE = "/tmp/sagemaker-toolkit-cache"


def cache_root(env: Mapping[str, str]) -> Path:
    """Where installers keep their caches: TOOLKIT_CACHE_DIR, else a folder in the warm-pool
    cache, else one under /tmp."""
    chosen = settings.read(env, "TOOLKIT_CACHE_DIR")
    if chosen:
        return Path(chosen)
    warm = settings.read(env, "SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY")
    if warm:
        return Path(warm) / "sagemaker-toolkit"
    return Path(TMP_CACHE)


def uv_path(env: Mapping[str, str]) -> Optional[str]:
    """The uv executable: on PATH, or beside this Python (``pip install uv`` puts it there)."""
    found = which("uv", path=env.get("PATH"))
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if os.access(beside, os.X_OK) else None


def command(env: Mapping[str, str]) -> tuple[list[str], dict[str, str], str]:
    """(argv prefix, child environment, installer name) for an install."""
    choice = settings.read(env, "TOOLKIT_INSTALLER")
    child = {k: str(v) for k, v in env.items() if not k.startswith("sagemaker_")}
    root = cache_root(env)
    uv = uv_path(env) if choice == "uv" else None
    if choice == "uv" and uv is None:
        log.warning("TOOLKIT_INSTALLER=uv but uv is not installed; using pip")
    if uv is not None:
        child.setdefault("UV_CACHE_DIR", str(root / "uv"))
        if env.get("PIP_INDEX_URL"):
            child.setdefault("UV_INDEX_URL", env["PIP_INDEX_URL"])
        if env.get("PIP_EXTRA_INDEX_URL"):
            child.setdefault("UV_EXTRA_INDEX_URL", env["PIP_EXTRA_INDEX_URL"])
        argv = [uv, "pip", "install", "--python", sys.executable]
        if sys.prefix == sys.base_prefix:  # not a virtual environment: uv needs to be told
            argv.append("--system")
        return argv, child, "uv"
    child.setdefault("PIP_CACHE_DIR", str(root / "pip"))
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"], child, "pip"


def pip_install(args: list[str], code_dir: Path, env: Mapping[str, str], what: str) -> None:
    """Run the installer under the core's supervisor: its output streams to stderr, and a stop
    signal reaches its whole process group (pip's build subprocesses too) and ends the start-up."""
    from toolkit import process

    prefix, child, name = command(env)
    cache = child.get("UV_CACHE_DIR" if name == "uv" else "PIP_CACHE_DIR")
    log.info("installing %s with %s (cache: %s)", what, name, cache)
    grace = settings.read(env, "TOOLKIT_STOP_GRACE_SECONDS")
    finished = process.run([*prefix, *args], cwd=code_dir, env=child, grace=grace, stdout_to_stderr=True)
    if finished.signalled is not None:
        raise process.Stopped(finished.signalled)
    if finished.exit_code != 0:
        lines = [ln.strip() for ln in finished.stderr_tail.splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if ln.startswith(("ERROR", "error"))), lines[-1] if lines else "")
        raise CodeError(f"{name} could not install {what} (exit {finished.exit_code}): {reason}")


@hookimpl(trylast=True)
def toolkit_install_dependencies(code_dir: Path, settings: Mapping[str, str],
                                 requirements: Optional[str]) -> Optional[bool]:
    path = code_dir / (requirements or "requirements.txt")
    if path.is_file():
        pip_install(["-r", str(path)], code_dir, settings, str(path))
    elif requirements:
        raise CodeError(f"requirements file {requirements!r} not found in {code_dir}; check the requirements setting")
    if (code_dir / "pyproject.toml").is_file() or (code_dir / "setup.py").is_file():
        pip_install(["."], code_dir, settings, f"the package in {code_dir}")
    return True
