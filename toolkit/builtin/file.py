"""Fetcher for code on this machine: a directory, a tar/zip archive or a single file, as a
plain path or a ``file://`` URI."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence
from urllib.parse import unquote, urlparse

from toolkit import archive
from toolkit.errors import FetchError
from toolkit.hookspecs import hookimpl


def local_path(uri: str) -> Optional[Path]:
    """The path a local URI names, or None when the URI has another scheme."""
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        return Path(unquote(parsed.path))
    if "://" in uri or uri.startswith("git+"):
        return None
    return Path(uri)


@hookimpl
def toolkit_fetch_schemes() -> Sequence[str]:
    return ["file", "(local path)"]


@hookimpl
def toolkit_fetch_code(uri: str, dest: Path, settings: Mapping[str, str]) -> Optional[Path]:
    path = local_path(uri)
    if path is None:
        return None
    if path.is_dir():
        return path
    if not path.exists():
        raise FetchError(f"code location {uri} does not exist (expected a directory, archive or file)")
    if archive.is_archive_name(path.name) or _looks_like_archive(path):
        max_bytes, max_members = archive.limits(settings)
        return archive.extract(path, dest, label=uri, max_bytes=max_bytes, max_members=max_members,
                               max_ratio=archive.max_ratio(settings))
    import shutil

    dest.mkdir(parents=True)
    shutil.copy2(path, dest / path.name)
    return dest


def _looks_like_archive(path: Path) -> bool:
    import tarfile
    import zipfile

    try:
        return tarfile.is_tarfile(path) or zipfile.is_zipfile(path)
    except OSError:
        return False
