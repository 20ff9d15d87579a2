"""A container engine (podman, or docker with a daemon) and the reference images built with it.

No registry is reachable on the CI machines, so when the configured base image cannot be pulled a
stand-in is made from Debian's archive with debootstrap, trimmed the way Docker's official slim
images are, and kept under its own name so a machine builds it once. Two stand-ins:

- ``DEBIAN``: plain Debian, no Python, like the CUDA base: the Dockerfile installs python3 itself;
- ``DEBIAN_PYTHON``: the same with python3 and python3-venv, like python:3.12-slim: used as it is.

Image builds never reach PyPI from inside the build: the toolkit's dependencies are downloaded on
the host as wheels for the image's own Python and passed in through the ``WHEELS`` build argument.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from helpers import wait_for  # noqa: F401 - the container tests import it from here

REPO = Path(__file__).resolve().parents[2]
DEBIAN = "localhost/toolkit-standin/debian:bookworm-slim"
DEBIAN_PYTHON = "localhost/toolkit-standin/debian-python:bookworm-slim"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
LOCK = Path(tempfile.gettempdir()) / "toolkit-container-images.lock"
MB = 1000 * 1000  # image sizes in the engines' own unit (docker and podman print SI megabytes)

# What Docker's official slim Debian images leave out (dpkg path-exclude) and how their apt
# cleans up after itself; applied to the debootstrapped stand-in.
SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""
_APT_RM = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"'
SLIM_APT_CLEAN = (f"DPkg::Post-Invoke {{ {_APT_RM}; }};\nAPT::Update::Post-Invoke {{ {_APT_RM}; }};\n"
                  'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
PYTHON_STANDIN = f"""\
FROM {DEBIAN}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
"""
# Copied into each build context; .dockerignore then decides what the build sees.
CONTEXT_SKIP = (".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache",
                ".mypy_cache", "wheels")


class EngineError(RuntimeError):
    """An engine command failed; the message carries the command and the end of its output."""


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Engine:
    """One container engine CLI. Every call is a real subprocess; nothing is simulated."""

    exe: str
    name: str
    log: list[str] = field(default_factory=list)

    def __call__(self, *args: str, timeout: float = 120, check: bool = True,
                 stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run([self.exe, *args], input=stdin, capture_output=True, timeout=timeout)
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        self.log.append(f"{self.name} {' '.join(args[:3])} ... rc={proc.returncode} "
                        f"({time.monotonic() - started:.1f} s)")
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise EngineError(f"{self.name} {' '.join(args)} exited {proc.returncode}:\n{tail(out + err)}")
        return result

    def exists(self, image: str) -> bool:
        return self("image", "inspect", image, check=False, timeout=60).returncode == 0

    def pull(self, image: str) -> bool:
        try:  # no registry: fails at once here; a registry that never answers must not stall the run
            return self("pull", image, check=False, timeout=60).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def inspect(self, image: str) -> dict:
        return json.loads(self("image", "inspect", image).stdout)[0]

    def size(self, image: str) -> int:
        return int(self.inspect(image)["Size"])

    def build(self, context: Path, dockerfile: Path, tag: str, args: Mapping[str, str],
              target: Optional[str] = None, timeout: float = 900) -> subprocess.CompletedProcess:
        cmd = ["build", "-f", str(dockerfile), "-t", tag]
        for key, value in args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        if target:
            cmd += ["--target", target]
        return self(*cmd, str(context), timeout=timeout)

    def remove(self, *containers: str) -> None:
        if containers:
            self("rm", "-f", *containers, check=False, timeout=60)


def find_engine(wanted: Optional[str] = None) -> tuple[Optional[Engine], str]:
    """The first engine that answers ``info`` (podman first), or None and why none does."""
    reasons = []
    for name in [wanted] if wanted else ["podman", "docker"]:
        exe = shutil.which(name)
        if not exe:
            reasons.append(f"{name} is not installed")
            continue
        try:
            proc = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            reasons.append(f"`{name} info` did not answer within 60 s")
            continue
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            reasons.append(f"`{name} info` failed ({last})")
            continue
        return Engine(exe, name), ""
    return None, "; ".join(reasons)


@contextmanager
def machine_lock() -> Iterator[None]:
    """One builder of the stand-ins at a time on this machine (other test sessions may be running)."""
    with open(LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def slim(root: Path) -> None:
    """Trim a debootstrapped tree the way Docker's debian:*-slim images are trimmed."""
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG)
    (root / "etc/apt/apt.conf.d/docker-clean").write_text(SLIM_APT_CLEAN)
    (root / "etc/apt/apt.conf.d/docker-no-languages").write_text('Acquire::Languages "none";\n')
    for folder in ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
                   "var/lib/apt/lists", "var/log"):
        for child in (root / folder).glob("*"):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for path in sorted((root / "usr/share/doc").rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.name != "copyright":
            path.unlink()


def make_debian(engine: Engine, image: str = DEBIAN) -> str:
    """Import a slim Debian made with debootstrap as ``image`` (once per machine)."""
    if engine.exists(image):
        return image
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists()
                                                  else None)
    if not debootstrap or os.geteuid() != 0:
        raise EngineError(f"cannot make the stand-in base {image}: debootstrap needs root and the debootstrap "
                          f"package (apt-get install debootstrap)")
    root = Path(tempfile.mkdtemp(prefix="toolkit-rootfs-", dir="/var/tmp"))
    try:
        proc = subprocess.run([debootstrap, "--variant=minbase", DEBIAN_SUITE, str(root), DEBIAN_MIRROR],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise EngineError(f"debootstrap failed:\n{tail(proc.stdout + proc.stderr)}")
        slim(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([engine.exe, "import", "-", image], stdin=tar.stdout, capture_output=True,
                                  text=True, timeout=600)
        tar.wait()
        if imported.returncode != 0:
            raise EngineError(f"{engine.name} import failed: {tail(imported.stderr)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return image


def make_debian_python(engine: Engine) -> str:
    """The Debian stand-in plus Debian's python3 and venv: the shape of python:3.12-slim."""
    if engine.exists(DEBIAN_PYTHON):
        return DEBIAN_PYTHON
    make_debian(engine)
    with tempfile.TemporaryDirectory(prefix="toolkit-standin-") as tmp:
        (Path(tmp) / "Containerfile").write_text(PYTHON_STANDIN)
        engine.build(Path(tmp), Path(tmp) / "Containerfile", DEBIAN_PYTHON, {})
    return DEBIAN_PYTHON


def dockerfile_default_base(dockerfile: Path) -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile.read_text(), re.M)
    if not match:
        raise EngineError(f"{dockerfile} has no `ARG BASE_IMAGE=...` line")
    return match.group(1)


def resolve_base(engine: Engine, configured: str, with_python: bool) -> tuple[str, bool]:
    """``configured`` when it is present or can be pulled, else a stand-in; and whether it is one."""
    with machine_lock():
        if engine.exists(configured) or engine.pull(configured):
            return configured, False
        return (make_debian_python(engine) if with_python else make_debian(engine)), True


def build_context(dest: Path) -> Path:
    """A copy of the working tree (with uncommitted changes) for the engine to read."""
    def skip(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n in CONTEXT_SKIP or n.endswith(".egg-info")]

    shutil.copytree(REPO, dest, ignore=skip, symlinks=True)
    return dest


def image_python(engine: Engine, image: str) -> dict:
    """Python version, machine and glibc of ``image``: what the wheels must be built for."""
    code = ("import json, platform, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
            "'machine': platform.machine(), 'glibc': platform.libc_ver()[1]}))")
    return json.loads(engine("run", "--rm", image, "python3", "-c", code).stdout)


def download_wheels(dest: Path, python: Mapping[str, str], plugins: Sequence[str]) -> None:
    """Wheels of the toolkit (built here, from the working tree), the chosen plugins, all their
    dependencies for the image's Python, and setuptools + wheel to build them from source in the image."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    sources = [str(REPO), *(str(REPO / "plugins" / p) for p in plugins)]
    before = set(dest.glob("*.whl"))
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dest), *sources], check=True, timeout=600,
                   capture_output=True)
    local_wheels = set(dest.glob("*.whl")) - before
    glibc_minor = int(python["glibc"].split(".")[1]) if python.get("glibc") else 17
    machine = python["machine"]
    platforms = [f"manylinux2014_{machine}", f"linux_{machine}"]
    platforms += [f"manylinux_2_{minor}_{machine}" for minor in range(17, glibc_minor + 1)]
    cmd = [*pip, "download", "--only-binary=:all:", "--python-version", python["version"],
           "--implementation", "cp", "--find-links", str(dest), "-d", str(dest)]
    for tag in platforms:
        cmd += ["--platform", tag]
    cmd += [str(w) for w in sorted(dest.glob("*.whl"))] + ["setuptools>=61", "wheel"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise EngineError(f"pip download for Python {python['version']} failed:\n{tail(proc.stderr)}")
    # The image builds the toolkit and plugins from their sources; their wheels here only served to
    # find the dependencies, and would change the build context (and miss the layer cache) every time.
    for local in local_wheels:
        local.unlink()


def first_party_plugins() -> list[str]:
    """The folders under plugins/ that hold a distribution (what PLUGINS accepts)."""
    return sorted(p.name for p in (REPO / "plugins").glob("*")
                  if (p / "setup.cfg").is_file() or (p / "pyproject.toml").is_file() or (p / "setup.py").is_file())


def git_revision() -> str:
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


@dataclass
class Built:
    """A reference image built for the tests."""

    tag: str
    dockerfile: Path
    base: str
    standin: bool
    plugins: tuple[str, ...]
    build_args: dict
    seconds: float
    context: Path  # the build context, with wheels/ for the image's Python


def build_reference_image(engine: Engine, dockerfile: Path, tag: str, base: str, standin: bool,
                          workdir: Path, plugins: Sequence[str] = (), extra_args: Optional[dict] = None) -> Built:
    """Build ``dockerfile`` the way a user would, from a copy of the repository, with wheels
    made on the host for the image's Python (so the build needs no index)."""
    from toolkit import __version__

    started = time.monotonic()
    context = build_context(workdir / "context")
    args = {"BASE_IMAGE": base}
    # Stage "runtime" first: it tells which Python the image has, for the wheels.
    runtime = f"{tag.rsplit(':', 1)[0]}:runtime"  # one per Dockerfile, replaced by the next session
    engine.build(context, dockerfile, runtime, args, target="runtime")
    download_wheels(context / "wheels", image_python(engine, runtime), plugins)
    args.update({"WHEELS": "wheels", "PLUGINS": " ".join(plugins), "VERSION": __version__,
                 "REVISION": git_revision(), "SOURCE": f"file://{REPO}"})
    args.update(extra_args or {})
    engine.build(context, dockerfile, tag, args)
    return Built(tag, dockerfile, base, standin, tuple(plugins), args, time.monotonic() - started, context)


class Containers:
    """Starts containers with unique names and removes them all at the end of the test."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.names: list[str] = []

    def name(self) -> str:
        name = f"toolkit-test-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def run(self, image: str, *command: str, volumes: Optional[dict[Path, str]] = None,
            env: Optional[dict[str, str]] = None, network: Optional[str] = None,
            publish: Optional[str] = None, detach: bool = False, timeout: float = 300) -> Any:
        """``engine run`` (``--rm`` unless detached); returns the CompletedProcess, or the name when detached."""
        name = self.name()
        args = ["run", "--name", name]
        args += ["-d"] if detach else ["--rm"]
        for host, inside in (volumes or {}).items():
            args += ["-v", f"{host}:{inside}"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if network:
            args += ["--network", network]
        if publish:
            args += ["-p", publish]
        proc = self.engine(*args, image, *command, timeout=timeout, check=detach)
        return name if detach else proc

    def exit_code(self, name: str, timeout: float = 120) -> int:
        return int(self.engine("wait", name, timeout=timeout).stdout.strip().splitlines()[-1])

    def logs(self, name: str) -> str:
        proc = self.engine("logs", name, check=False)
        return proc.stdout + proc.stderr

    def cleanup(self) -> None:
        self.engine.remove(*self.names)
