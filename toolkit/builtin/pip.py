"""Installer: ``requirements.txt`` and, for a package directory, the directory itself, with pip.

PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_CERT and the other PIP_* variables pass through.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional

from toolkit.errors import CodeError
from toolkit.hookspecs import hookimpl


def pip_install(args: list[str], code_dir: Path, env: Mapping[str, str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    proc = subprocess.run(
        cmd, cwd=str(code_dir), env=dict(env), stdout=sys.stderr, stderr=subprocess.PIPE, text=True
    )
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "")
        raise CodeError(f"pip could not install {what} (exit {proc.returncode}): {reason}")


@hookimpl(trylast=True)
def toolkit_install_dependencies(code_dir: Path, env: Mapping[str, str]) -> Optional[bool]:
    requirements = code_dir / "requirements.txt"
    if requirements.is_file():
        pip_install(["-r", "requirements.txt"], code_dir, env, str(requirements))
    if (code_dir / "pyproject.toml").is_file() or (code_dir / "setup.py").is_file():
        pip_install(["."], code_dir, env, f"the package in {code_dir}")
    return True
