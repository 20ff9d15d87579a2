"""The environment an in-process job runs in: a virtual environment layered over this one.

SageMaker runs a job in its own container, so the job's ``pip install -r requirements.txt`` never
reaches the machine that started it. In-process, ``train`` and ``serve`` would install into the
virtual environment that runs ``toolkit``; here they run with the Python of a small virtual
environment of their own instead, which sees this one's packages (the toolkit, the user's
libraries) through a ``.pth`` file and installs into itself. Its packages come first, so a job
that needs another version of a library gets it without touching the user's.

Why a ``.pth`` and not ``--system-site-packages``: that option exposes the *base* interpreter's
site-packages, not the venv the user runs ``toolkit`` from. ``site.addsitedir`` also applies the
parent's own ``.pth`` files (editable installs).

One environment per distinct requirements (the text of requirements.txt, or TOOLKIT_REQUIREMENTS'
file), kept under ``<workdir>/.venvs/`` and reused: the first job installs, the next ones find
everything installed. Made with ``uv venv`` where uv is installed, else ``python -m venv
--without-pip`` (pip comes from the parent); installs reuse the user's own pip / uv download
cache. A source the emulator cannot read before the job (git, https) gets an environment of its
own inside the job folder instead, removed with the job.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import site
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

from toolkit import settings
from toolkit.builtin.pip import uv_path
from toolkit.local.clean import VENVS

log = logging.getLogger("toolkit")
READY = ".toolkit-ready"
SCRIPTS = {"train": "from toolkit.scripts import train_main as main",
           "serve": "from toolkit.scripts import serve_main as main",
           "pip": "from pip._internal.cli.main import main"}


@dataclass(frozen=True)
class JobEnv:
    """A layered environment: run ``bin/train`` / ``bin/serve`` with ``variables()``."""

    path: Path
    made_seconds: float
    reused: bool

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def script(self, name: str) -> str:
        return str(self.bin / name)

    def variables(self, environ: Mapping[str, str]) -> dict[str, str]:
        """What a host process needs to use it: its bin first on PATH (so ``python`` and ``pip`` in
        the user's scripts are this environment's), VIRTUAL_ENV, the installer and caches."""
        extra = installer_variables(environ)
        path = extra.pop("PATH", environ.get("PATH", os.defpath))
        return {**extra, "PATH": f"{self.bin}{os.pathsep}{path}", "VIRTUAL_ENV": str(self.path)}

    def describe(self) -> str:
        how = "reused" if self.reused else f"made in {self.made_seconds:.2f} s"
        return f"{self.path} ({how})"


def user_caches(environ: Mapping[str, str]) -> dict[str, str]:
    """pip's and uv's own default caches, which the user's installs have already filled; the
    toolkit's installer would otherwise start an empty one under /tmp. A cache the user chose
    (PIP_CACHE_DIR, UV_CACHE_DIR, TOOLKIT_CACHE_DIR) wins."""
    if settings.is_set(environ, "TOOLKIT_CACHE_DIR"):
        return {}
    home = Path(environ.get("XDG_CACHE_HOME") or Path(environ.get("HOME") or Path.home()) / ".cache")
    out = {}
    if not environ.get("PIP_CACHE_DIR"):
        out["PIP_CACHE_DIR"] = str(home / "pip")
    if not environ.get("UV_CACHE_DIR"):
        out["UV_CACHE_DIR"] = str(home / "uv")
    return out


def installer_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """uv for installs when it is here and the user chose no installer (the job's Python, in
    another folder, would not find a uv that sits beside this one), and the user's caches."""
    out = user_caches(environ)
    uv = uv_path(environ)
    if uv and not settings.is_set(environ, "TOOLKIT_INSTALLER"):
        out["TOOLKIT_INSTALLER"] = "uv"
        out["PATH"] = f"{os.path.dirname(uv)}{os.pathsep}{environ.get('PATH', os.defpath)}"
    return out


def requirements_text(source: Optional[Path], name: Optional[str]) -> Optional[str]:
    """The job's requirements as the job will see them: from a source folder or a .tar.gz on this
    machine; "" when it has none; None when the source is not here to read (the job fetches it)."""
    if source is None:
        return None
    wanted = name or "requirements.txt"
    if source.is_dir():
        path = source / wanted
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    if source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("./") == wanted:
                    data = tar.extractfile(member)
                    return data.read().decode("utf-8", "replace") if data else ""
        return ""
    return "" if source.is_file() else None  # a lone script has no requirements


def _parent_site_dirs() -> list[str]:
    """This interpreter's site-packages folders (the venv's, and the user site when enabled)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if os.path.isdir(d)]


def key_of(requirements: str) -> str:
    """Same interpreter, same parent packages, same requirements: same environment."""
    material = "\n".join([os.path.realpath(sys.executable), sys.version, *_parent_site_dirs(), requirements])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One maker at a time per environment (two jobs with the same requirements at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _create(path: Path, environ: Mapping[str, str]) -> None:
    uv = uv_path(environ)
    base_python = getattr(sys, "_base_executable", sys.executable)
    if uv:
        argv = [uv, "venv", "--quiet", "--python", base_python, str(path)]
    else:
        argv = [base_python, "-m", "venv", "--without-pip", str(path)]
    subprocess.run(argv, check=True, capture_output=True, env=dict(environ))
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in _parent_site_dirs())
    (Path(purelib) / "_toolkit_parent.pth").write_text(lines, encoding="utf-8")
    for name, line in SCRIPTS.items():
        script = path / "bin" / name
        script.write_text(f"#!{python}\nimport sys\n{line}\nif __name__ == '__main__':\n    sys.exit(main())\n")
        script.chmod(0o755)


def _preinstall(path: Path, requirements: str, environ: Mapping[str, str]) -> bool:
    """Install the requirements with the toolkit's own installer, run by the environment's Python
    (so it installs there), with uv when it is present and the user chose no installer."""
    req = path / "requirements.txt"
    req.write_text(requirements, encoding="utf-8")
    env = {**environ, **installer_variables(environ), "VIRTUAL_ENV": str(path)}
    code = ("import os, sys\nfrom pathlib import Path\nfrom toolkit.builtin.pip import pip_install\n"
            "from toolkit.errors import ToolkitError\ntry:\n"
            "    pip_install(['-r', sys.argv[1]], Path(sys.argv[1]).parent, os.environ, 'the job requirements')\n"
            "except ToolkitError as exc:\n    sys.exit(str(exc))\n")
    proc = subprocess.run([str(path / "bin" / "python"), "-c", code, str(req)], env=env, cwd=str(path))
    return proc.returncode == 0


def prepare(workdir: Path, job_dir: Path, requirements: Optional[str], environ: Mapping[str, str]) -> JobEnv:
    """The environment for a job whose requirements are ``requirements`` (None: unknown until the
    job fetches its code: an environment of its own in the job folder)."""
    started = time.perf_counter()
    if requirements is None:
        path = job_dir / "venv"
        if not (path / "bin" / "train").exists():
            _create(path, environ)
            return JobEnv(path, time.perf_counter() - started, False)
        return JobEnv(path, 0.0, True)
    path = workdir / VENVS / key_of(requirements)
    with _locked(path.with_suffix(".lock")):
        reused = (path / READY).exists()
        if not reused:
            if path.exists():  # a half-made one (interrupted, or its install failed): start over
                import shutil

                shutil.rmtree(path)
            _create(path, environ)
            ok = not requirements.strip() or _preinstall(path, requirements, environ)
            if ok:
                (path / READY).write_text(requirements, encoding="utf-8")
            else:
                log.warning("installing the job's requirements into %s failed; the job's own install will say why",
                            path)
        (path / "last-used").touch()
    return JobEnv(path, time.perf_counter() - started, reused)
