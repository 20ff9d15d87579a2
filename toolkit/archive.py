"""Safe extraction of tar (plain, gzip, bzip2, xz) and zip archives, used by every fetcher.

Refused, with an error naming the member: absolute paths, ``..`` components, symbolic or hard
links that point (or, through other links, resolve) outside the destination, device files,
FIFOs, and files with the setuid or setgid bit. Other special bits (sticky, setgid on a folder)
are dropped. A size or member-count bomb stops at ``max_bytes`` / ``max_members``, counted from
the member headers before anything is written. Extraction goes into a temporary folder beside
``dest`` that is renamed into place at the end, so ``dest`` either appears complete or not at
all.
"""

from __future__ import annotations

import collections
import os
import posixpath
import stat
from pathlib import Path
from typing import IO, Any, Mapping, NamedTuple, Optional, Union

from toolkit import checks, settings
from toolkit.errors import ArchiveError
from toolkit.lazy import lazy

shutil = lazy("shutil")
tarfile = lazy("tarfile")
zipfile = lazy("zipfile")
tempfile = lazy("tempfile")

# defaults from the one table of settings (20 GiB: far above any real source dir)
DEFAULT_MAX_BYTES: int = settings.TABLE["TOOLKIT_MAX_EXTRACT_BYTES"][0]
DEFAULT_MAX_MEMBERS: int = settings.TABLE["TOOLKIT_MAX_EXTRACT_MEMBERS"][0]
# A decompression bomb expands hundreds of times (gzip of zeros: ~1000x); source trees, even with
# data files, rarely pass 20x. The ratio is only judged past RATIO_FLOOR bytes, so a small archive
# of repetitive text never trips it.
DEFAULT_MAX_RATIO: int = settings.TABLE["TOOLKIT_MAX_EXTRACT_RATIO"][0]
RATIO_FLOOR = 64 * 1024**2
CHUNK = 1024 * 1024
TAR_BUFFER = 64 * 1024  # tarfile copies its whole buffer on every header read: keep it small
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")

Source = Union[str, Path, IO[bytes]]


def limits(environ: Mapping[str, str]) -> tuple[int, int]:
    """(max bytes, max members) from TOOLKIT_MAX_EXTRACT_BYTES / TOOLKIT_MAX_EXTRACT_MEMBERS."""
    return settings.read(environ, "TOOLKIT_MAX_EXTRACT_BYTES"), settings.read(environ, "TOOLKIT_MAX_EXTRACT_MEMBERS")


def max_ratio(environ: Mapping[str, str]) -> int:
    """TOOLKIT_MAX_EXTRACT_RATIO: how many times its compressed size an archive may expand to
    (judged past 64 MiB); 0 turns the check off."""
    return int(settings.read(environ, "TOOLKIT_MAX_EXTRACT_RATIO"))


def safe_name(name: str, label: str) -> str:
    """``name`` as a clean relative path, or an ArchiveError when it is absolute or has ``..``
    anywhere (the rule is checks.relative_path, shared with entry points and S3 keys)."""
    try:
        return checks.relative_path(name)
    except checks.Unsafe as exc:
        raise ArchiveError(f"{label}: member {name!r} {exc}; refusing to extract") from None


def free_bytes(folder: Path) -> Optional[int]:
    """Bytes an unprivileged writer may still use on ``folder``'s file system (its nearest
    existing parent's), or None when the system cannot tell."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def check_room(total: int, folder: Path, label: str, free: Optional[int] = None) -> None:
    """Refuse, before writing, ``total`` bytes that would not fit in ``folder``'s free space."""
    free = free_bytes(folder) if free is None else free
    if free is not None and total > free:
        raise ArchiveError(f"{label}: needs {total} bytes but only {free} bytes are free in {folder}; "
                           f"free some space or give the job a larger volume")


class _Budget:
    """Counts what extraction writes against the compressed bytes read so far: refuses a
    decompression bomb while it inflates, long before it fills the disk."""

    def __init__(self, label: str, ratio: int, source: Optional[_Counting]) -> None:
        self.label = label
        self.ratio = ratio
        self.source = source
        self.expanded = 0

    def wrote(self, size: int) -> None:
        self.expanded += size
        if not self.ratio or self.source is None or self.expanded <= RATIO_FLOOR:
            return
        packed = max(self.source.count, 1)
        if self.expanded > self.ratio * packed:
            raise ArchiveError(
                f"{self.label}: expands more than {self.ratio} times its compressed size ({self.expanded} bytes "
                f"from the first {packed}): a decompression bomb? Raise TOOLKIT_MAX_EXTRACT_RATIO (0: no "
                f"limit) if this archive is genuine"
            )


class _Counting:
    """A read-only stream that counts the bytes read through it (the compressed side)."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fileobj.read(size)
        self.count += len(data)
        return data


_safe_name = safe_name  # the first version's name


def _inside(base: str, target: str) -> bool:
    joined = posixpath.normpath(posixpath.join(base, target))
    return joined != ".." and not joined.startswith("../") and not joined.startswith("/")


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def sniff(head: bytes) -> Optional[str]:
    """The archive format that the first bytes of a file show ("gzip", "bzip2", "xz", "zip",
    "tar"), or None for anything else (a script, a text file). Give at least 262 bytes for tar."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def extract(
    source: Source,
    dest: Path,
    *,
    label: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    stream: bool = False,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> Path:
    """Extract ``source`` (a path or a binary file object) into ``dest``, which must not exist.

    ``stream=True`` reads a non-seekable file object (an HTTP or S3 body) in one pass; a zip
    arriving that way is spooled to a temporary file first (zip keeps its index at the end).
    Exceptions raised by the file object's ``read`` that are not ``OSError`` pass through
    unchanged, so a caller can tell a dropped connection from a corrupt archive. Returns ``dest``.

    Besides ``max_bytes`` and ``max_members``, the expansion must fit in the free space of
    ``dest``'s file system (judged from the member headers, before each member is written) and,
    for a compressed tar, stay within ``max_ratio`` times the compressed bytes read (0: no limit).
    """
    label = label or str(source)
    dest = Path(dest)
    if dest.exists():
        raise ArchiveError(f"{label}: destination {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = free_bytes(dest.parent)
    lim = _Limits(max_bytes, max_members, max_ratio, free if free is not None else -1, dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        if isinstance(source, (str, Path)):
            if zipfile.is_zipfile(source):
                _extract_zip(source, tmp, label, lim)
            else:
                with open(source, "rb") as fileobj:
                    _extract_tar(fileobj, tmp, label, lim)
        elif stream:
            head, rest = _peek(source, 4)
            if sniff(head) == "zip":
                with tempfile.TemporaryFile(dir=dest.parent) as spool:
                    spool.write(head)
                    _copy_bounded(rest, spool, label, lim)
                    spool.seek(0)
                    _extract_zip(spool, tmp, label, lim)
            else:
                _extract_tar(_Prefixed(head, rest), tmp, label, lim)
        elif _seekable_zip(source):
            _extract_zip(source, tmp, label, lim)
        else:
            _extract_tar(source, tmp, label, lim)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


class _Limits(NamedTuple):
    max_bytes: int
    max_members: int
    max_ratio: int
    free: int  # -1: unknown
    folder: Path

    def check_total(self, total: int, label: str) -> None:
        """``total`` bytes (from headers) against the size limit and the free space."""
        if total > self.max_bytes:
            raise ArchiveError(
                f"{label}: expands to more than {self.max_bytes} bytes; raise "
                f"TOOLKIT_MAX_EXTRACT_BYTES if this archive is genuine"
            )
        if self.free >= 0:
            check_room(total, self.folder, label, self.free)


def _copy_bounded(source: IO[bytes], out: IO[bytes], label: str, lim: _Limits) -> None:
    """Spool a streamed zip, refusing one larger than the limits before it fills the disk."""
    copied = 0
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        copied += len(chunk)
        lim.check_total(copied, label)
        out.write(chunk)


def _seekable_zip(fileobj: IO[bytes]) -> bool:
    try:
        found = zipfile.is_zipfile(fileobj)
        fileobj.seek(0)
        return found
    except (OSError, AttributeError):
        return False


def _peek(fileobj: IO[bytes], size: int) -> tuple[bytes, IO[bytes]]:
    head = b""
    while len(head) < size:
        more = fileobj.read(size - len(head))
        if not more:
            break
        head += more
    return head, fileobj


class _Prefixed:
    """A read-only stream: ``head`` (already read while sniffing), then the rest of ``fileobj``."""

    def __init__(self, head: bytes, fileobj: IO[bytes]) -> None:
        self._head = head
        self._fileobj = fileobj

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._fileobj.read(size)
        if size is None or size < 0:
            data, self._head = self._head + self._fileobj.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        if len(data) < size:  # tarfile sniffs the compression from its first read: fill it
            more, _ = _peek(self._fileobj, size - len(data))
            data += more
        return data


class _Writer:
    """Writes members under ``root``; once a symlink exists, every path is checked physically.

    Small files are handed to two writer threads (open/write/close release the GIL), so the
    file system's per-file cost overlaps with decompression and header parsing. Anything
    order-sensitive (links, a name written twice) waits for the pending writes first.
    """

    SMALL = 1024 * 1024
    MAX_PENDING = 64 * 1024 * 1024

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.label = label
        self.links: list[tuple[str, Path]] = []
        self.dirs: set[str] = {str(root)}
        self.pool: Optional[Any] = None
        self.pending: collections.deque[tuple[str, int, Any]] = collections.deque()
        self.pending_names: collections.Counter[str] = collections.Counter()
        self.pending_bytes = 0
        self.budget: Optional[_Budget] = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def _check(self, path: Path, name: str) -> None:
        if not self.links:
            return  # sanitised names without links cannot leave the root
        real = os.path.realpath(path)
        if real != self.real_root and not real.startswith(self.real_root + os.sep):
            raise ArchiveError(f"{self.label}: member {name!r} would be written through a link outside the destination")

    def _mkdir(self, path: Path, name: str) -> None:
        if str(path) in self.dirs and not self.links:
            return
        self._check(path, name)
        path.mkdir(parents=True, exist_ok=True)
        self.dirs.add(str(path))

    def folder(self, name: str) -> Path:
        target = self.root / name
        self._mkdir(target, name)
        return target

    def parent_of(self, name: str) -> Path:
        target = self.root / name
        if self.pending_names[name]:
            self.flush()
        self._mkdir(target.parent, name)
        if self.links and target.is_symlink():
            target.unlink()
        return target

    def small_file(self, name: str, content: bytes, mode: int) -> None:
        self._submit(name, self.parent_of(name), content, mode)

    def file(self, name: str, data: IO[bytes], mode: int, size: Optional[int] = None) -> int:
        """Write ``data`` to ``name``; returns the bytes read (the caller compares with the size
        the archive declared)."""
        target = self.parent_of(name)
        if size is not None and size <= self.SMALL:
            content = data.read(size + 1)
            self._submit(name, target, content, mode)
            return len(content)
        written = 0
        with open(os.open(target, _WRITE_FLAGS, mode), "wb") as out:
            while True:
                chunk = data.read(CHUNK)
                if not chunk:
                    break
                if self.budget is not None:
                    self.budget.wrote(len(chunk))
                written += out.write(chunk)
        return written

    def _submit(self, name: str, target: Path, content: bytes, mode: int) -> None:
        if self.budget is not None:
            self.budget.wrote(len(content))
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(2, thread_name_prefix="toolkit-extract")
        self.pending.append((name, len(content), self.pool.submit(_write_file, target, content, mode)))
        self.pending_names[name] += 1
        self.pending_bytes += len(content)
        while self.pending_bytes > self.MAX_PENDING or len(self.pending) > 4096:
            done, size, future = self.pending.popleft()
            self.pending_names[done] -= 1
            self.pending_bytes -= size
            future.result()

    def flush(self) -> None:
        pending, self.pending, self.pending_bytes = self.pending, collections.deque(), 0
        self.pending_names.clear()
        for _, _, future in pending:
            future.result()

    def symlink(self, name: str, link: str) -> None:
        self.flush()
        target = self.parent_of(name)
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(link, target)
        self.links.append((name, target))
        self._check(target, name)

    def hardlink(self, name: str, link: str) -> None:
        self.flush()
        source = self.root / link
        self._check(source, name)
        if source.is_symlink() or not source.is_file():
            raise ArchiveError(
                f"{self.label}: hard link {name!r} -> {link!r} has no file to link to inside the archive"
            )
        target = self.parent_of(name)
        if target.is_symlink() or target.exists():
            target.unlink()
        os.link(source, target)

    def verify_links(self) -> None:
        """A link may only escape once a later link changes what it resolves through."""
        self.flush()
        for name, target in self.links:
            real = os.path.realpath(target)
            if real != self.real_root and not real.startswith(self.real_root + os.sep):
                raise ArchiveError(
                    f"{self.label}: symlink {name!r} -> {os.readlink(target)!r} resolves outside the destination"
                )


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _write_file(target: Path, content: bytes, mode: int) -> None:
    fd = os.open(target, _WRITE_FLAGS, mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _mode(name: str, mode: int, label: str, is_dir: bool) -> int:
    if is_dir:
        return 0o755
    if mode & (stat.S_ISUID | stat.S_ISGID):
        raise ArchiveError(f"{label}: member {name!r} has the setuid or setgid bit; refusing to extract")
    return (stat.S_IMODE(mode) & 0o777) or 0o644


def _decompressed(fileobj: IO[bytes]) -> IO[bytes]:
    """The tar stream inside ``fileobj``. The compression modules, unlike tarfile's own stream
    mode, check the end-of-stream marker and checksum, so a truncated archive is noticed."""
    head, _ = _peek(fileobj, 512)
    kind = sniff(head)
    raw = _Prefixed(head, fileobj)
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(raw)  # type: ignore[arg-type]
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw)  # type: ignore[arg-type]
    return raw  # type: ignore[return-value]


def _extract_tar(source: IO[bytes], tmp: Path, label: str, lim: _Limits) -> None:
    """One pass over the archive, in tarfile's stream mode, so any readable object will do."""
    try:
        with _Writer(tmp, label) as writer:
            _tar_members(source, writer, label, lim)
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"{label}: archive is corrupt or truncated ({exc})") from exc


def _tar_members(source: IO[bytes], writer: _Writer, label: str, lim: _Limits) -> None:
    total = 0
    count = 0
    max_members = lim.max_members
    counted = _Counting(source)
    data = _decompressed(counted)
    if not isinstance(data, _Prefixed):  # compressed: judge the expansion ratio as it inflates
        writer.budget = _Budget(label, lim.max_ratio, counted)
    try:
        tar = tarfile.open(fileobj=data, mode="r|", bufsize=TAR_BUFFER)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{label}: not a readable tar or zip archive ({exc})") from exc
    with tar:
        for member in tar:
            count += 1
            if count > max_members:
                raise ArchiveError(
                    f"{label}: more than {max_members} members; raise "
                    f"TOOLKIT_MAX_EXTRACT_MEMBERS if this archive is genuine"
                )
            name = safe_name(member.name, label)
            if not name:
                continue
            if member.isdev() or member.isfifo():
                raise ArchiveError(f"{label}: member {member.name!r} is a device or FIFO; refusing to extract")
            total += max(member.size, 0)
            lim.check_total(total, label)
            if member.issym():
                target = member.linkname
                if target.startswith("/") or not _inside(posixpath.dirname(name), target):
                    raise ArchiveError(
                        f"{label}: symlink {member.name!r} -> {target!r} points outside the destination"
                    )
                writer.symlink(name, target)
            elif member.islnk():
                writer.hardlink(name, safe_name(member.linkname, label))
            elif member.isdir():
                writer.folder(name)
            elif member.isfile():
                mode = _mode(member.name, member.mode, label, False)
                if member.size <= writer.SMALL and member.sparse is None:
                    # what extractfile() would read, without its two wrapper objects per member
                    tar.fileobj.seek(member.offset_data)  # type: ignore[union-attr]
                    content = tar.fileobj.read(member.size)  # type: ignore[union-attr]
                    writer.small_file(name, content, mode)
                    written = len(content)
                else:
                    fileobj = tar.extractfile(member)
                    if fileobj is None:
                        continue
                    with fileobj:
                        written = writer.file(name, fileobj, mode, member.size)
                if written != member.size:
                    raise ArchiveError(f"{label}: archive is corrupt or truncated (member {member.name!r} "
                                       f"has {written} of its {member.size} bytes)")
        # Read to the end: the decompressor checks its trailer, the transport its length.
        while data.read(CHUNK):
            pass
    writer.verify_links()


def _extract_zip(source: Source, tmp: Path, label: str, lim: _Limits) -> None:
    try:
        with zipfile.ZipFile(source) as zf, _Writer(tmp, label) as writer:
            infos = zf.infolist()
            if len(infos) > lim.max_members:
                raise ArchiveError(
                    f"{label}: more than {lim.max_members} members; raise "
                    f"TOOLKIT_MAX_EXTRACT_MEMBERS if this archive is genuine"
                )
            expanded = sum(i.file_size for i in infos)
            lim.check_total(expanded, label)
            packed = max(sum(i.compress_size for i in infos), 1)
            if lim.max_ratio and expanded > RATIO_FLOOR and expanded > lim.max_ratio * packed:
                raise ArchiveError(
                    f"{label}: expands more than {lim.max_ratio} times its compressed size ({expanded} bytes "
                    f"from {packed}): a decompression bomb? Raise TOOLKIT_MAX_EXTRACT_RATIO (0: no limit) "
                    f"if this archive is genuine"
                )
            for info in infos:
                name = safe_name(info.filename, label)
                if not name:
                    continue
                mode = (info.external_attr >> 16) & 0xFFFF
                if stat.S_ISLNK(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a symlink; zip links are not supported")
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                    raise ArchiveError(f"{label}: member {info.filename!r} is a device or FIFO; refusing to extract")
                if info.is_dir():
                    writer.folder(name)
                    continue
                file_mode = _mode(info.filename, mode, label, False) if mode else 0o644
                with zf.open(info) as src:
                    writer.file(name, src, file_mode, info.file_size)
            writer.flush()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"{label}: zip archive is corrupt or truncated ({exc})") from exc
