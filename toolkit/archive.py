"""Safe extraction of tar (plain, gzip, bzip2, xz) and zip archives, used by every fetcher.

Refused, with an error naming the member: absolute paths, ``..`` components, symbolic or hard
links that point outside the destination, device files, FIFOs; setuid/setgid/sticky bits are
dropped. A size or member-count bomb stops at ``max_bytes`` / ``max_members``. Extraction goes
into a temporary folder beside ``dest`` that is renamed into place at the end, so ``dest`` either
appears complete or not at all.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Mapping, Optional, Union

from toolkit.errors import ArchiveError

DEFAULT_MAX_BYTES = 20 * 1024**3  # 20 GiB: far above any real source dir, far below a full disk
DEFAULT_MAX_MEMBERS = 1_000_000


def limits(environ: Mapping[str, str]) -> tuple[int, int]:
    """(max bytes, max members) from TOOLKIT_MAX_EXTRACT_BYTES / TOOLKIT_MAX_EXTRACT_MEMBERS."""

    def number(name: str, default: int) -> int:
        raw = environ.get(name, "")
        try:
            return int(raw) if raw.strip() else default
        except ValueError:
            raise ArchiveError(f"{name}={raw!r} is not a whole number of bytes") from None

    return number("TOOLKIT_MAX_EXTRACT_BYTES", DEFAULT_MAX_BYTES), number(
        "TOOLKIT_MAX_EXTRACT_MEMBERS", DEFAULT_MAX_MEMBERS
    )


def _safe_name(name: str, label: str) -> str:
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise ArchiveError(f"{label}: member {name!r} has an absolute path; refusing to extract")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{label}: member {name!r} points outside the destination ('..')")
    return "/".join(parts)


def _inside(base: str, target: str) -> bool:
    joined = posixpath.normpath(posixpath.join(base, target))
    return joined != ".." and not joined.startswith("../") and not joined.startswith("/")


def is_archive_name(name: str) -> bool:
    lower = name.lower()
    return lower.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip"))


def extract(
    source: Union[str, Path, IO[bytes]],
    dest: Path,
    *,
    label: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    stream: bool = False,
) -> Path:
    """Extract ``source`` (a path or a binary file object) into ``dest``, which must not exist.

    ``stream=True`` reads a non-seekable file object (an HTTP or S3 body) in one pass; zip
    archives need a seekable source. Returns ``dest``.
    """
    label = label or str(source)
    dest = Path(dest)
    if dest.exists():
        raise ArchiveError(f"{label}: destination {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        if _is_zip(source):
            _extract_zip(source, tmp, label, max_bytes, max_members)
        else:
            _extract_tar(source, tmp, label, max_bytes, max_members, stream)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _is_zip(source: Union[str, Path, IO[bytes]]) -> bool:
    if isinstance(source, (str, Path)):
        return zipfile.is_zipfile(source)
    return False


def _extract_tar(
    source: Union[str, Path, IO[bytes]],
    tmp: Path,
    label: str,
    max_bytes: int,
    max_members: int,
    stream: bool,
) -> None:
    try:
        if isinstance(source, (str, Path)):
            tar = tarfile.open(source, mode="r:*")  # noqa: SIM115 - closed by `with tar` below
        else:
            tar = tarfile.open(fileobj=source, mode="r|*" if stream else "r:*")  # noqa: SIM115
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{label}: not a readable tar or zip archive ({exc})") from exc
    total = 0
    count = 0
    try:
        with tar:
            for member in tar:
                count += 1
                if count > max_members:
                    raise ArchiveError(
                        f"{label}: more than {max_members} members; raise "
                        f"TOOLKIT_MAX_EXTRACT_MEMBERS if this archive is genuine"
                    )
                name = _safe_name(member.name, label)
                if not name:
                    continue
                if member.isdev() or member.isfifo():
                    raise ArchiveError(f"{label}: member {member.name!r} is a device or FIFO")
                if member.issym():
                    target = member.linkname
                    if target.startswith("/") or not _inside(posixpath.dirname(name), target):
                        raise ArchiveError(
                            f"{label}: symlink {member.name!r} -> {target!r} points outside "
                            f"the destination"
                        )
                elif member.islnk():
                    target = _safe_name(member.linkname, label)
                    member.linkname = target
                total += max(member.size, 0)
                if total > max_bytes:
                    raise ArchiveError(
                        f"{label}: expands to more than {max_bytes} bytes; raise "
                        f"TOOLKIT_MAX_EXTRACT_BYTES if this archive is genuine"
                    )
                member.name = name
                member.mode = stat.S_IMODE(member.mode) & 0o777 if not member.isdir() else 0o755
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                _extract_member(tar, member, tmp, label)
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"{label}: archive is corrupt or truncated ({exc})") from exc


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, tmp: Path, label: str) -> None:
    target = tmp / member.name
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if member.issym():
        if target.exists() or target.is_symlink():
            target.unlink()
        os.symlink(member.linkname, target)
        return
    if member.islnk():
        source = tmp / member.linkname
        if not source.is_file() or source.is_symlink():
            raise ArchiveError(
                f"{label}: hard link {member.name!r} -> {member.linkname!r} has no target inside the archive"
            )
        if target.exists():
            target.unlink()
        os.link(source, target)
        return
    if not member.isfile():
        return
    fileobj = tar.extractfile(member)
    if fileobj is None:
        return
    _refuse_through_symlink(target, tmp, member.name, label)
    with fileobj, open(target, "wb") as out:
        shutil.copyfileobj(fileobj, out, 1024 * 1024)
    os.chmod(target, member.mode or 0o644)


def _refuse_through_symlink(target: Path, root: Path, name: str, label: str) -> None:
    """A file written through a symlinked folder could land outside the destination."""
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise ArchiveError(f"{label}: member {name!r} would be written through a link outside the destination")
    if target.is_symlink():
        target.unlink()


def _extract_zip(
    source: Union[str, Path, IO[bytes]], tmp: Path, label: str, max_bytes: int, max_members: int
) -> None:
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise ArchiveError(f"{label}: more than {max_members} members")
            if sum(i.file_size for i in infos) > max_bytes:
                raise ArchiveError(
                    f"{label}: expands to more than {max_bytes} bytes; raise "
                    f"TOOLKIT_MAX_EXTRACT_BYTES if this archive is genuine"
                )
            for info in infos:
                name = _safe_name(info.filename, label)
                if not name:
                    continue
                mode = (info.external_attr >> 16) & 0xFFFF
                if stat.S_ISLNK(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a symlink; zip links are not supported")
                target = tmp / name
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1024 * 1024)
                if mode & 0o111:
                    os.chmod(target, 0o755)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{label}: zip archive is corrupt ({exc})") from exc


def optional_int(value: Optional[str]) -> Optional[int]:
    return int(value) if value and value.strip().isdigit() else None
