"""Where data lives -- an S3 URI, a ``file://`` URI or a local path -- behind one small interface.

Everything the emulator reads or writes (channels, source archives, checkpoints, artifacts)
goes through ``Storage``, so local paths work wherever an S3 URI does. boto3 is imported only
when an S3 location is actually used.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import posixpath
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Optional, Sequence
from urllib.parse import unquote, urlparse

from toolkit import settings
from toolkit.errors import ConfigError, ToolkitError
from toolkit.local.progress import Progress, Transferred

log = logging.getLogger("toolkit")
CHUNK = 1024 * 1024
WORKERS = 16  # parallel GETs/PUTs; also the size of boto3's connection pool
MULTIPART_THRESHOLD = 64 * 1024 * 1024


class TransferError(ToolkitError):
    """Data could not be moved between S3 (or a local folder) and the job."""


@dataclass(frozen=True)
class Location:
    """A parsed URI: S3 (``bucket`` + ``key``) or local (``path``)."""

    uri: str
    bucket: str = ""
    key: str = ""
    path: Optional[Path] = None

    @property
    def is_s3(self) -> bool:
        return self.path is None

    def join(self, *parts: str) -> Location:
        """This location with path parts appended (``s3://b/out`` + ``job`` -> ``s3://b/out/job``)."""
        if self.path is not None:
            path = self.path.joinpath(*parts)
            return Location(str(path), path=path)
        key = posixpath.join(self.key.rstrip("/"), *parts) if self.key.strip("/") else posixpath.join(*parts)
        return Location(f"s3://{self.bucket}/{key}", bucket=self.bucket, key=key)

    def __str__(self) -> str:
        return self.uri


def parse_location(uri: str, what: str = "location") -> Location:
    """``s3://bucket/prefix``, ``file:///path`` or a plain path; anything else is a ConfigError."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"{what}: empty; expected s3://bucket/prefix, file:///path or a local path")
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise ConfigError(f"{what}: {uri!r} has no bucket; expected s3://bucket/prefix")
        return Location(uri, bucket=parsed.netloc, key=parsed.path.lstrip("/"))
    if uri.startswith("file://"):
        path = Path(unquote(urlparse(uri).path))
        return Location(uri, path=path)
    if "://" in uri:
        raise ConfigError(
            f"{what}: {uri!r} has an unsupported scheme; expected s3://bucket/prefix, file:///path or a local path"
        )
    path = Path(uri).expanduser().absolute()
    return Location(str(path), path=path)


@dataclass(frozen=True)
class Item:
    """One object (or file) under a location, with its name relative to the channel root."""

    name: str
    size: int
    key: str = ""  # S3 key
    path: Optional[Path] = None  # local file


def relative_name(prefix: str, key: str) -> str:
    """A key's path under the channel folder: what follows the prefix, or (when the prefix ends
    inside a name, ``data/tr`` for ``data/train/a.csv``) what follows the prefix's last '/'."""
    if key == prefix:
        return posixpath.basename(key)
    rest = key[len(prefix):]
    if not prefix or prefix.endswith("/") or rest.startswith("/"):
        return rest.lstrip("/")
    return key[len(prefix.rsplit("/", 1)[0]) + 1:] if "/" in prefix else key


def _safe(name: str, where: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TransferError(f"{where}: object name {name!r} points outside the destination folder")
    return "/".join(parts)


class Storage:
    """Lists, downloads, streams and uploads; one boto3 client shared by every thread."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self._client: Any = None
        self._lock = threading.Lock()

    # -- S3 client ----------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> Optional[str]:
        from toolkit import aws

        return aws.endpoint_url(self.environ, "s3")

    @property
    def region(self) -> str:
        return settings.region(self.environ) or "us-east-1"

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from toolkit import aws

                self._client = aws.client(self.environ, "s3", region=self.region, max_pool_connections=WORKERS * 2,
                                          retries={"max_attempts": 5, "mode": "standard"})
            return self._client

    def _s3_error(self, exc: Exception, loc: Location, doing: str, needs: str = "s3:GetObject and s3:ListBucket",
                  ) -> TransferError:
        """One line in the fetchers' own words (toolkit.builtin.s3.explain), after what was being done."""
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, (BotoCoreError, ClientError)):
            from toolkit.builtin.s3 import explain

            said = explain(exc, str(loc), loc.bucket, check="check the location", needs=needs)
            return TransferError(f"{doing} {said}")
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return TransferError(f"{doing} {loc}: {type(exc).__name__}{where}: {exc}")

    # -- listing ------------------------------------------------------------------------------

    def list(self, loc: Location, what: str, allow_empty: bool = False) -> list[Item]:
        """Every object under the location, sorted by key; an empty location is an error
        (the platform fails such a job before it starts) unless ``allow_empty``."""
        if allow_empty and loc.path is not None and not loc.path.exists():
            return []
        items = self._list_s3(loc, what) if loc.is_s3 else self._list_local(loc, what)
        if not items and not allow_empty:
            raise ConfigError(f"{what}: no objects found under {loc}; the platform fails a job whose channel is empty")
        return items

    def _list_local(self, loc: Location, what: str) -> list[Item]:
        assert loc.path is not None
        root = loc.path
        if root.is_file():
            return [Item(root.name, root.stat().st_size, path=root)]
        if not root.is_dir():
            raise ConfigError(f"{what}: local path {root} does not exist")
        items = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                items.append(Item(path.relative_to(root).as_posix(), path.stat().st_size, path=path))
        return items

    def _list_s3(self, loc: Location, what: str) -> list[Item]:
        items = []
        try:
            pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key)
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a console-made "folder"
                    items.append(Item(_safe(relative_name(loc.key, key), what), int(obj["Size"]), key=key))
        except ToolkitError:
            raise
        except Exception as exc:
            raise self._s3_error(exc, loc, f"{what}: cannot list") from exc
        return sorted(items, key=lambda i: i.key)

    # -- reading ------------------------------------------------------------------------------

    def open(self, loc: Location, item: Item) -> IO[bytes]:
        """A binary stream of one item (an S3 body or a local file)."""
        if item.path is not None:
            return open(item.path, "rb")
        try:
            return self.client().get_object(Bucket=loc.bucket, Key=item.key)["Body"]
        except Exception as exc:
            raise self._s3_error(exc, loc, f"cannot read {item.key} from") from exc

    def download(self, loc: Location, items: Sequence[Item], dest: Path, label: str) -> Transferred:
        """Copy every item into ``dest`` under its relative name, in parallel for S3."""
        progress = Progress(label, len(items), sum(i.size for i in items))
        dest.mkdir(parents=True, exist_ok=True)

        def one(item: Item) -> None:
            target = dest / item.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.path is not None:
                shutil.copyfile(item.path, target)
                progress.add(item.size, 1)
                return
            with self.open(loc, item) as body, open(target, "wb") as out:
                for chunk in iter(lambda: body.read(CHUNK), b""):
                    out.write(chunk)
                    progress.add(len(chunk))
            progress.add(0, 1)

        self._parallel(one, items, 1 if not loc.is_s3 else WORKERS, f"{label}: download from {loc} failed")
        return progress.finish()

    def read_bytes(self, loc: Location) -> bytes:
        if loc.path is not None:
            return loc.path.read_bytes()
        with self.open(loc, Item(posixpath.basename(loc.key), 0, key=loc.key)) as body:
            return body.read()

    def download_file(self, loc: Location, target: Path) -> Path:
        """One object (or file) to ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if loc.path is not None:
            if not loc.path.is_file():
                raise ConfigError(f"{loc} is not a file")
            shutil.copyfile(loc.path, target)
            return target
        with self.open(loc, Item(posixpath.basename(loc.key), 0, key=loc.key)) as body, open(target, "wb") as out:
            shutil.copyfileobj(body, out, CHUNK)
        return target

    # -- writing ------------------------------------------------------------------------------

    def upload_file(self, src: Path, loc: Location, extra_args: Optional[Mapping[str, str]] = None) -> None:
        """One file to S3 (``extra_args``: PutObject's, e.g. ServerSideEncryption) or a local path."""
        if loc.path is not None:
            loc.path.parent.mkdir(parents=True, exist_ok=True)
            if src.resolve() != loc.path.resolve():
                shutil.copyfile(src, loc.path)
            return
        try:
            if src.stat().st_size < MULTIPART_THRESHOLD:
                with open(src, "rb") as body:
                    self.client().put_object(Bucket=loc.bucket, Key=loc.key, Body=body, **(extra_args or {}))
            else:
                from boto3.s3.transfer import TransferConfig

                self.client().upload_file(str(src), loc.bucket, loc.key, ExtraArgs=dict(extra_args or {}),
                                          Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD))
        except Exception as exc:
            raise self._s3_error(exc, loc, f"cannot upload {src} to", needs="s3:PutObject") from exc

    def upload_files(self, files: Sequence[tuple[Path, Location]], label: str) -> Transferred:
        progress = Progress(label, len(files), sum(src.stat().st_size for src, _ in files))

        def one(pair: tuple[Path, Location]) -> None:
            self.upload_file(*pair)
            progress.add(pair[0].stat().st_size, 1)

        self._parallel(one, files, WORKERS, f"{label}: upload failed")
        return progress.finish()

    @staticmethod
    def _parallel(fn: Any, items: Sequence[Any], workers: int, what: str) -> None:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                try:
                    fn(item)
                except OSError as exc:
                    raise TransferError(f"{what}: {exc}") from exc
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            futures = [pool.submit(fn, item) for item in items]
            for future in concurrent.futures.as_completed(futures):
                exc = future.exception()
                if exc is not None:
                    for other in futures:
                        other.cancel()
                    if isinstance(exc, ToolkitError):
                        raise exc
                    raise TransferError(f"{what}: {type(exc).__name__}: {exc}") from exc


def walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix name, path) of every regular file under ``root``, sorted."""
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix(), path
