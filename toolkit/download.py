"""What the remote fetchers (S3, https) share: a read-ahead stream, retries with backoff, and
"extract it if it is an archive, else keep the file" with the all-or-nothing rule of
toolkit/archive.py."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Callable, Mapping, Optional, TypeVar

from toolkit import archive, settings
from toolkit.errors import ArchiveError, FetchError
from toolkit.lazy import lazy
from toolkit.log import log

# loaded when a remote fetch needs them, not at every job start (the fetchers import this module)
queue = lazy("queue")
random = lazy("random")
shutil = lazy("shutil")
tempfile = lazy("tempfile")
threading = lazy("threading")

T = TypeVar("T")
HEAD = 512  # enough to sniff every archive format (tar's magic sits at byte 257)


class InterruptedRead(Exception):
    """The connection failed while reading a body (wraps the original error); worth a retry.

    Deliberately not an OSError, so the extractor does not mistake it for a corrupt archive; and
    not a ToolkitError: it never reaches the user (the fetcher retries, then explains ``cause``).
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class ReadAhead:
    """Reads ``body`` on a background thread, ``chunk`` bytes at a time, up to ``depth`` chunks
    ahead of the consumer, so that the network, decompression and disk writes overlap (each
    releases the GIL). Any error reading the body is raised to the consumer as InterruptedRead."""

    def __init__(self, body: IO[bytes], chunk: int = 1024 * 1024, depth: int = 16,
                 expected: Optional[int] = None) -> None:
        self._body = body
        self._expected = expected
        self._chunk = chunk
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self._done = False
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._pump, name="toolkit-readahead", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        item: object
        total = 0
        try:
            while not self._stop.is_set():
                data = self._body.read(self._chunk)
                if not data:
                    break
                total += len(data)
                self._put(data)
            if self._expected is not None and total != self._expected and not self._stop.is_set():
                raise ConnectionError(f"connection closed after {total} of {self._expected} bytes")
            item = b""
        except BaseException as exc:
            item = exc
        self._put(item)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next(self) -> bool:
        if self._done:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise InterruptedRead(item) from item
        if not item:
            self._done = True
            return False
        self._buffer = memoryview(item)
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [bytes(self._buffer)]
            self._buffer = memoryview(b"")
            while self._next():
                parts.append(bytes(self._buffer))
                self._buffer = memoryview(b"")
            data = b"".join(parts)
            self.bytes_read += len(data)
            return data
        if not self._buffer and not self._next():
            return b""
        data = bytes(self._buffer[:size])
        self._buffer = self._buffer[size:]
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=0.2)
        if self._thread.is_alive():
            # The pump is blocked in a read that holds the body's lock (a stop or an error arrived
            # mid-transfer): closing the body here would wait for that read, which may never end.
            # Close it from a daemon thread instead; the socket goes when the process does.
            threading.Thread(target=self._close_body, name="toolkit-close", daemon=True).start()
        else:
            self._close_body()

    def _close_body(self) -> None:
        try:
            self._body.close()
        except Exception:  # closing a half-read HTTP body may complain; nothing to do about it
            pass

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attempts(env: Mapping[str, str]) -> int:
    return int(settings.read(env, "TOOLKIT_FETCH_ATTEMPTS"))


def with_retries(
    action: Callable[[], T],
    *,
    transient: Callable[[BaseException], bool],
    tries: int,
    what: str,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; when it raises an error ``transient`` accepts, wait (0.5 s, 1 s, 2 s ...
    with jitter) and run it again, up to ``tries`` runs in all. The last error propagates."""
    for attempt in range(1, tries + 1):
        try:
            return action()
        except BaseException as exc:
            if attempt >= tries or not transient(exc):
                raise
            delay = base_delay * 2 ** (attempt - 1) * (1 + random.random() / 4)
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", what, describe(exc), delay, attempt + 1, tries)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def describe(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, InterruptedRead) else exc
    return " ".join(f"{type(cause).__name__}: {cause}".split())


def unpack_or_place(body: IO[bytes], dest: Path, name: str, label: str, env: Mapping[str, str]) -> Path:
    """Extract ``body`` into ``dest`` when its first bytes show an archive; otherwise save it as
    the single file ``dest/name`` (a script). Either way ``dest`` appears whole or not at all."""
    max_bytes, max_members = archive.limits(env)
    head = _read_exactly(body, HEAD)
    rest = archive._Prefixed(head, body)
    if archive.sniff(head) is not None:
        return archive.extract(rest, dest, label=label, max_bytes=max_bytes, max_members=max_members,  # type: ignore[arg-type]
                               stream=True, max_ratio=archive.max_ratio(env))
    return place_file(rest, dest, name, label, max_bytes)  # type: ignore[arg-type]


def place_file(body: IO[bytes], dest: Path, name: str, label: str, max_bytes: int) -> Path:
    name = archive.safe_name(name, label).rsplit("/", 1)[-1] or "code"
    if dest.exists():
        raise ArchiveError(f"{label}: destination {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = archive.free_bytes(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        written = 0
        with open(tmp / name, "wb") as out:
            while True:
                data = body.read(archive.CHUNK)
                if not data:
                    break
                written += len(data)
                if written > max_bytes:
                    raise ArchiveError(f"{label}: larger than {max_bytes} bytes; raise TOOLKIT_MAX_EXTRACT_BYTES")
                archive.check_room(written, dest.parent, label, free)
                out.write(data)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _read_exactly(body: IO[bytes], size: int) -> bytes:
    head = b""
    while len(head) < size:
        more = body.read(size - len(head))
        if not more:
            break
        head += more
    return head


def subfolder(root: Path, sub: Optional[str], label: str) -> Path:
    """``root/sub`` after checking ``sub`` stays inside ``root`` and is a folder."""
    if not sub:
        return root
    clean = archive.safe_name(sub, label)
    path = root / clean
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not (real == real_root or real.startswith(real_root + os.sep)):
        raise FetchError(f"{label}: subdirectory {sub!r} leads outside the fetched code")
    if not path.is_dir():
        raise FetchError(f"{label}: subdirectory {sub!r} is not a folder in the fetched code")
    return path
