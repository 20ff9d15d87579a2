"""Input channels: File and FastFile downloads, Pipe-mode FIFOs, ShardedByS3Key across hosts."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import IO, Optional, Sequence

from toolkit.local.progress import Transferred
from toolkit.local.request import InputChannel
from toolkit.local.storage import Item, Location, Storage, TransferError, parse_location
from toolkit.local.storage import _safe as _safe_name

log = logging.getLogger("toolkit")
OPEN_POLL = 0.05  # how often a Pipe feeder looks for a reader


def shard(items: Sequence[Item], index: int, count: int, distribution: str) -> list[Item]:
    """The objects host ``index`` (0-based) of ``count`` receives: all of them, or with
    ShardedByS3Key every ``count``-th object of the key-sorted list (so each host gets 1/count)."""
    if distribution != "ShardedByS3Key" or count == 1:
        return list(items)
    return [item for i, item in enumerate(items) if i % count == index]


def make_read_only(root: Path) -> None:
    """FastFile's view is read-only: files 0444 and folders 0555 (root ignores the bits; container
    mode also mounts the channel read-only)."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(Path(folder) / name, 0o444)
        os.chmod(folder, 0o555)


def make_writable(root: Path) -> None:
    """Undo ``make_read_only`` so the job folder can be removed."""
    if not root.exists():
        return
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink() and stat.S_ISREG(path.lstat().st_mode):
                os.chmod(path, 0o644)


class ChannelSource:
    """A channel's objects, listed once and shared by every host."""

    def __init__(self, storage: Storage, channel: InputChannel) -> None:
        self.storage = storage
        self.channel = channel
        what = f"channel {channel.name!r}"
        self.location: Location = parse_location(channel.uri, what)
        if channel.data_type == "ManifestFile":
            self.location, self.items = manifest(storage, self.location, what)
        else:
            self.items = storage.list(self.location, what)

    def for_host(self, index: int, count: int) -> list[Item]:
        items = shard(self.items, index, count, self.channel.distribution)
        if not items:
            raise TransferError(
                f"channel {self.channel.name!r}: ShardedByS3Key leaves host algo-{index + 1} no object "
                f"({len(self.items)} object(s) for {count} hosts); use fewer hosts or FullyReplicated"
            )
        return items

    def fill(self, dest: Path, items: Sequence[Item], host: str) -> Transferred:
        """File / FastFile: download the host's objects into its channel folder."""
        done = self.storage.download(self.location, items, dest, f"{host} channel {self.channel.name}")
        if self.channel.mode == "FastFile":
            make_read_only(dest)
        return done


def manifest(storage: Storage, loc: Location, what: str) -> tuple[Location, list[Item]]:
    """The prefix and objects a manifest file names: ``[{"prefix": "s3://b/p/"}, "a.csv", "sub/b.csv"]``
    (each object is downloaded under its name relative to the prefix)."""
    import json

    try:
        data = json.loads(storage.read_bytes(loc))
    except ValueError as exc:
        raise TransferError(f"{what}: manifest {loc} is not JSON ({exc})") from exc
    except OSError as exc:
        raise TransferError(f"{what}: cannot read the manifest {loc}: {exc}") from exc
    if (not isinstance(data, list) or not data or not isinstance(data[0], dict) or "prefix" not in data[0]
            or not all(isinstance(name, str) for name in data[1:])):
        raise TransferError(f'{what}: manifest {loc} must be a list: [{{"prefix": "s3://bucket/prefix/"}}, '
                            f'"relative/key", ...]')
    prefix = parse_location(str(data[0]["prefix"]), f"{what} manifest prefix")
    items = []
    for name in data[1:]:
        rel = _safe_name(name, what)
        if prefix.path is not None:
            path = prefix.path / rel
            if not path.is_file():
                raise TransferError(f"{what}: manifest {loc} names {name!r}, which is not in {prefix}")
            items.append(Item(rel, path.stat().st_size, path=path))
        else:
            items.append(Item(rel, 0, key=prefix.key + name))
    if not items:
        raise TransferError(f"{what}: manifest {loc} names no object")
    return prefix, items


def copy_channel(src: Path, dest: Path, read_only: bool) -> None:
    """A replicated channel already downloaded for one host, copied for another."""
    shutil.copytree(src, dest)
    if read_only:
        make_read_only(dest)


class PipeFeeder(threading.Thread):
    """Pipe mode for one channel of one host: FIFO ``<channel>_<epoch>`` receives every object,
    concatenated, each time the job opens it; ``<channel>_<epoch+1>`` is created as epoch N
    starts, so it is there when the job finishes reading epoch N."""

    def __init__(self, source: ChannelSource, items: Sequence[Item], data_dir: Path, host: str,
                 stem: Optional[Path] = None) -> None:
        super().__init__(name=f"pipe-{host}-{source.channel.name}", daemon=True)
        self.source = source
        self.items = list(items)
        self.data_dir = data_dir
        self.stem = stem or data_dir / source.channel.name  # FIFOs are <stem>_0, <stem>_1, ...
        self.host = host
        self.stop_event = threading.Event()
        self.epochs = 0
        self.error: Optional[BaseException] = None
        self._fifo(0)

    def _fifo(self, epoch: int) -> Path:
        path = self.stem.with_name(f"{self.stem.name}_{epoch}")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(path, 0o644)
        return path

    def _open_writer(self, path: Path) -> Optional[int]:
        """Wait for the job to open the FIFO for reading (or for the job to end)."""
        while not self.stop_event.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(OPEN_POLL)
                continue
            os.set_blocking(fd, True)
            return fd
        return None

    def run(self) -> None:
        try:
            epoch = 0
            while not self.stop_event.is_set():
                fd = self._open_writer(self._fifo(epoch))
                if fd is None:
                    return
                self._fifo(epoch + 1)
                try:
                    self._feed(fd)
                except BrokenPipeError:
                    log.info("%s: the job closed %s_%d before its end", self.host, self.source.channel.name, epoch)
                finally:
                    os.close(fd)
                epoch += 1
                self.epochs = epoch
        except BaseException as exc:  # reported by the job runner
            self.error = exc
            log.error("%s: pipe channel %s failed: %s", self.host, self.source.channel.name, exc)

    def _feed(self, fd: int) -> None:
        for item in self.items:
            with self._open(item) as body:
                while not self.stop_event.is_set():
                    chunk = body.read(1024 * 1024)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]

    def _open(self, item: Item) -> IO[bytes]:
        """The object's bytes, decompressed on the way for a Gzip input (processing's S3CompressionType)."""
        body = self.source.storage.open(self.source.location, item)
        if self.source.channel.compression != "Gzip":
            return body
        import gzip

        return gzip.GzipFile(fileobj=body, mode="rb")  # type: ignore[return-value]

    def stop(self) -> None:
        self.stop_event.set()
