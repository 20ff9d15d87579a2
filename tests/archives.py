"""Builders for real archives, good and hostile, shared by the archive and fetcher tests."""

from __future__ import annotations

import io
import random
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from helpers import Job

TRAIN_PY = (
    "import os, sys\n"
    "open(os.path.join(os.environ['SM_MODEL_DIR'], 'from.txt'), 'w').write(os.path.abspath(__file__))\n"
    "print('remote code ran from', os.path.dirname(os.path.abspath(__file__)))\n"
)


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def tarball(build: Callable[[tarfile.TarFile], None], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        build(tar)
    return buf.getvalue()


def good(extra: dict[str, bytes] | None = None, mode: str = "w:gz") -> bytes:
    """A source dir: train.py, a helper module in a package, and a symlink that stays inside."""

    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "train.py", TRAIN_PY.encode())
        _add(tar, "pkg", type=tarfile.DIRTYPE, mode=0o755)
        _add(tar, "pkg/helper.py", b"VALUE = 42\n")
        _add(tar, "run.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
        _add(tar, "helper_link.py", type=tarfile.SYMTYPE, linkname="pkg/helper.py")
        _add(tar, "pkg/copy.py", type=tarfile.LNKTYPE, linkname="pkg/helper.py")
        for name, data in (extra or {}).items():
            _add(tar, name, data)

    return tarball(build, mode)


def good_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.py", TRAIN_PY)
        zf.writestr("pkg/helper.py", "VALUE = 42\n")
    return buf.getvalue()


def _hostile(first: Callable[[tarfile.TarFile], None]) -> bytes:
    """A normal train.py first (so partial extraction would be visible), then the bad member."""

    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "train.py", TRAIN_PY.encode())
        first(tar)

    return tarball(build)


def _chain(tar: tarfile.TarFile) -> None:
    # Each link alone stays inside; together "e" resolves to the parent of the destination.
    _add(tar, "e", type=tarfile.SYMTYPE, linkname="d/y/..")
    _add(tar, "d", type=tarfile.DIRTYPE, mode=0o755)
    _add(tar, "d/y", type=tarfile.SYMTYPE, linkname="..")
    _add(tar, "e/escaped.txt", b"outside")


def bomb_gz(size: int) -> bytes:
    """``size`` bytes of zeros in one member: a few KB compressed."""

    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "train.py", TRAIN_PY.encode())
        info = tarfile.TarInfo("weights.bin")
        info.size = size
        tar.addfile(info, Zeros())

    return tarball(build)


def many_members(count: int) -> bytes:
    def build(tar: tarfile.TarFile) -> None:
        for i in range(count):
            _add(tar, f"f{i}.txt", b"")

    return tarball(build)


def _big_good() -> bytes:
    return good({"data.bin": random.Random(1).randbytes(200_000)})


# name -> (archive bytes, a fragment the one-line error must contain)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "dotdot": (_hostile(lambda t: _add(t, "../evil.py", b"x")), "'../evil.py' points outside"),
    "absolute": (_hostile(lambda t: _add(t, "/tmp/evil.py", b"x")), "'/tmp/evil.py' has an absolute path"),
    "symlink_etc": (
        _hostile(lambda t: _add(t, "etc", type=tarfile.SYMTYPE, linkname="/etc")),
        "symlink 'etc' -> '/etc' points outside",
    ),
    "hardlink_out": (
        _hostile(lambda t: _add(t, "passwd", type=tarfile.LNKTYPE, linkname="../../../../etc/passwd")),
        "'../../../../etc/passwd' points outside",
    ),
    "device": (
        _hostile(lambda t: _add(t, "null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
        "'null' is a device",
    ),
    "setuid": (_hostile(lambda t: _add(t, "suid.sh", b"#!/bin/sh\n", mode=0o4755)), "'suid.sh' has the setuid"),
    "link_chain": (_hostile(_chain), "outside the destination"),
    "truncated_gzip": (_big_good()[: len(_big_good()) // 2], "corrupt or truncated"),
}


BAD_ARCHIVES = {
    **{name: (data, fragment, {}) for name, (data, fragment) in HOSTILE.items()},
    "size_bomb": (bomb_gz(64 * 1024 * 1024), "expands to more than 10000000 bytes",
                  {"TOOLKIT_MAX_EXTRACT_BYTES": "10000000"}),
    "member_bomb": (many_members(300), "more than 200 members", {"TOOLKIT_MAX_EXTRACT_MEMBERS": "200"}),
}


# -- helpers for end-to-end fetcher tests ---------------------------------------------------------

BAKED = "print('baked code ran')\n"


def submit(job: Job, uri: str, program: str = "train.py") -> Job:
    job.hyperparameters({"sagemaker_program": program, "sagemaker_submit_directory": uri})
    return job.resources()


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if " ERROR " in ln]


def assert_failed_cleanly(job: Job, proc: subprocess.CompletedProcess, fragment: str) -> str:
    """Exit 2, one ERROR line with ``fragment``, the same line as the whole failure file, no
    traceback, and no half-extracted folder anywhere under the job."""
    assert proc.returncode == 2, proc.stderr
    errors = error_lines(proc)
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    failure = job.failure.read_text()
    assert fragment in failure and "\n" not in failure
    assert errors[0].endswith(failure)
    assert not [p for p in job.root.rglob("*partial*")]
    return failure


def bake(job: Job) -> dict[str, str]:
    job.script("train.py", BAKED)
    job.script("util/extra.py", "X = 1\n")
    return snapshot(job.code)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}
