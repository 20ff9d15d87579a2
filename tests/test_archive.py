"""toolkit/archive.py: safe extraction of real tar/zip archives, from files and from streams."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from archives import (
    BAD_ARCHIVES,
    HOSTILE,
    assert_failed_cleanly,
    bake,
    bomb_gz,
    good,
    good_zip,
    many_members,
    snapshot,
    submit,
)
from helpers import Job

from toolkit import archive
from toolkit.errors import ArchiveError, ConfigError


class OneWay(io.RawIOBase):
    """A non-seekable stream, as an HTTP or S3 body is: read() only, in small pieces."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(b), 7000))
        b[: len(chunk)] = chunk
        return len(chunk)

    def seekable(self) -> bool:
        return False


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def check_source_dir(dest: Path) -> None:
    assert (dest / "train.py").read_text().startswith("import os")
    assert (dest / "pkg" / "helper.py").read_text() == "VALUE = 42\n"
    assert os.access(dest / "run.sh", os.X_OK)
    assert os.readlink(dest / "helper_link.py") == "pkg/helper.py"
    assert (dest / "helper_link.py").read_text() == "VALUE = 42\n"
    assert (dest / "pkg" / "copy.py").stat().st_ino == (dest / "pkg" / "helper.py").stat().st_ino


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
@pytest.mark.parametrize("as_stream", [False, True])
def test_extracts_every_tar_format_from_a_file_or_a_stream(tmp_path: Path, mode: str, as_stream: bool) -> None:
    data = good(mode=mode)
    dest = tmp_path / "out" / "code"
    if as_stream:
        archive.extract(OneWay(data), dest, label="body", stream=True)
    else:
        (tmp_path / "src.tar").write_bytes(data)
        archive.extract(tmp_path / "src.tar", dest)
    check_source_dir(dest)
    assert leftovers(dest.parent) == ["code"]


@pytest.mark.parametrize("as_stream", [False, True])
def test_extracts_zip_from_a_file_or_a_stream(tmp_path: Path, as_stream: bool) -> None:
    dest = tmp_path / "code"
    if as_stream:
        archive.extract(OneWay(good_zip()), dest, stream=True)
    else:
        (tmp_path / "src.zip").write_bytes(good_zip())
        archive.extract(tmp_path / "src.zip", dest)
    assert (dest / "pkg" / "helper.py").read_text() == "VALUE = 42\n"
    assert leftovers(tmp_path) == sorted(["code"] + (["src.zip"] if not as_stream else []))


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("as_stream", [False, True])
def test_hostile_archives_are_refused_whole(tmp_path: Path, case: str, as_stream: bool) -> None:
    data, fragment = HOSTILE[case]
    parent = tmp_path / "parent"
    parent.mkdir()
    dest = parent / "code"
    with pytest.raises(ArchiveError) as err:
        if as_stream:
            archive.extract(OneWay(data), dest, label="s3://b/k.tar.gz", stream=True)
        else:
            (tmp_path / "k.tar.gz").write_bytes(data)
            archive.extract(tmp_path / "k.tar.gz", dest, label="s3://b/k.tar.gz")
    message = str(err.value)
    assert fragment in message and message.startswith("s3://b/k.tar.gz: ") and "\n" not in message
    assert leftovers(parent) == []  # nothing half-extracted, nothing written beside it
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "evil.py").exists()


def test_size_bomb_stops_at_the_limit_before_writing_it(tmp_path: Path) -> None:
    data = bomb_gz(64 * 1024 * 1024)
    assert len(data) < 200_000
    with pytest.raises(ArchiveError, match=r"expands to more than 10000000 bytes; raise TOOLKIT_MAX_EXTRACT_BYTES"):
        archive.extract(OneWay(data), tmp_path / "code", stream=True, max_bytes=10_000_000)
    assert leftovers(tmp_path) == []


def test_member_count_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"more than 100 members; raise TOOLKIT_MAX_EXTRACT_MEMBERS"):
        archive.extract(OneWay(many_members(101)), tmp_path / "code", stream=True, max_members=100)
    archive.extract(OneWay(many_members(100)), tmp_path / "code", stream=True, max_members=100)
    assert len(list((tmp_path / "code").iterdir())) == 100


def test_limits_come_from_the_environment_and_reject_nonsense() -> None:
    assert archive.limits({}) == (archive.DEFAULT_MAX_BYTES, archive.DEFAULT_MAX_MEMBERS)
    assert archive.limits({"TOOLKIT_MAX_EXTRACT_BYTES": "1000", "TOOLKIT_MAX_EXTRACT_MEMBERS": "5"}) == (1000, 5)
    with pytest.raises(ConfigError, match="TOOLKIT_MAX_EXTRACT_BYTES='10GB' is not a whole number"):
        archive.limits({"TOOLKIT_MAX_EXTRACT_BYTES": "10GB"})


def test_existing_destination_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mine.py").write_text("keep")
    with pytest.raises(ArchiveError, match="already exists"):
        archive.extract(OneWay(good()), tmp_path / "code", stream=True)
    assert leftovers(tmp_path / "code") == ["mine.py"]


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not a readable tar or zip archive"):
        archive.extract(OneWay(b"print('hello')\n" * 100), tmp_path / "code", label="x", stream=True)
    assert leftovers(tmp_path) == []


def test_special_bits_on_folders_are_dropped_not_refused(tmp_path: Path) -> None:
    import tarfile

    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("shared")
        info.type, info.mode = tarfile.DIRTYPE, 0o3775  # setgid + sticky: common on group folders
        tar.addfile(info)

    from archives import tarball

    archive.extract(OneWay(tarball(build)), tmp_path / "code", stream=True)
    mode = (tmp_path / "code" / "shared").stat().st_mode
    assert not mode & (stat.S_ISGID | stat.S_ISVTX)


def test_sniff_tells_archives_from_scripts() -> None:
    assert archive.sniff(good()[:512]) == "gzip"
    assert archive.sniff(good(mode="w")[:512]) == "tar"
    assert archive.sniff(good(mode="w:bz2")[:512]) == "bzip2"
    assert archive.sniff(good(mode="w:xz")[:512]) == "xz"
    assert archive.sniff(good_zip()[:512]) == "zip"
    assert archive.sniff(b"import os\n") is None


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_archive_cut_short_is_refused_whatever_the_compression(tmp_path: Path, mode: str) -> None:
    import random

    data = good({"data.bin": random.Random(2).randbytes(100_000)}, mode=mode)
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        archive.extract(OneWay(data[: len(data) - 20_000]), tmp_path / "code", stream=True)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_every_bad_archive_fails_train_cleanly(job: Job, tmp_path: Path, case: str) -> None:
    """End to end with the real ``train``: the archive is a local file here (no S3 client to
    start); tests/test_fetch_s3.py runs some of the same cases from S3."""
    data, fragment, extra = BAD_ARCHIVES[case]
    before = bake(job)
    archive_path = tmp_path / f"{case}.tar.gz"
    archive_path.write_bytes(data)
    proc = submit(job, str(archive_path)).run(TMPDIR=str(job.root), **extra)
    failure = assert_failed_cleanly(job, proc, fragment)
    assert failure.startswith(f"{archive_path}: ")
    assert snapshot(job.code) == before  # the image's code is untouched
    assert not (tmp_path / "escaped.txt").exists() and not (job.root / "escaped.txt").exists()
