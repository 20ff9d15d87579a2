"""Archive extraction at its edges: `..` anywhere in a name, absolute and drive-letter names, each
limit at, below and above its boundary, decompression bombs, and free space. Real tar/zip files
through the real extractor (files and one-way streams)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from archives import _add, tarball

from toolkit import archive
from toolkit.errors import ArchiveError


class OneWay(io.RawIOBase):
    """A non-seekable stream, as an HTTP or S3 body is."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._buf.read(size)


HOSTILE_NAMES = ["../x.py", "a/../../x.py", "./../x.py", "a/b/../../../x.py", "pkg/../../evil.py",
                 "a/./../../x.py", "a\\..\\..\\x.py", "/etc/x.py", "\\x.py", "C:x.py", "C:\\x.py", "c:/x.py"]


@pytest.mark.parametrize("as_stream", [False, True])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_dotdot_anywhere_and_absolute_names_are_refused(tmp_path: Path, name: str, as_stream: bool) -> None:
    data = tarball(lambda t: (_add(t, "ok.py", b"x"), _add(t, name, b"evil")))
    dest = tmp_path / "deep" / "er" / "dest"
    with pytest.raises(ArchiveError, match="refusing to extract") as err:
        if as_stream:
            archive.extract(OneWay(data), dest, label="L", stream=True)  # type: ignore[arg-type]
        else:
            (tmp_path / "a.tar.gz").write_bytes(data)
            archive.extract(tmp_path / "a.tar.gz", dest, label="L")
    assert repr(name) in str(err.value)
    assert not dest.exists()
    assert not list(tmp_path.rglob("x.py")) and not list(tmp_path.rglob("evil.py"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_dotdot_anywhere_in_a_zip_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.py", "x")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    with pytest.raises(ArchiveError, match="refusing to extract"):
        archive.extract(path, tmp_path / "d" / "dest", label="L")
    assert not (tmp_path / "d" / "dest").exists()


@pytest.mark.parametrize("name", ["a/../b.py", "a/b/../c.py"])
def test_dotdot_that_stays_inside_is_refused_too(tmp_path: Path, name: str) -> None:
    # one rule: no '..' at all (no real source tree needs one)
    data = tarball(lambda t: _add(t, name, b"x"))
    with pytest.raises(ArchiveError, match=r"\('\.\.'\)"):
        archive.extract(OneWay(data), tmp_path / "dest", stream=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["./a.py", "a//b.py", "a/./b.py", "..a.py", "a..b/c.py", "...py"])
def test_names_with_dots_that_are_not_dotdot_are_fine(tmp_path: Path, name: str) -> None:
    data = tarball(lambda t: _add(t, name, b"x"))
    dest = archive.extract(OneWay(data), tmp_path / "dest", stream=True)  # type: ignore[arg-type]
    assert (dest / name).read_bytes() == b"x"


def files(n: int, size: int) -> bytes:
    return tarball(lambda t: [_add(t, f"f{i}", b"x" * size) for i in range(n)])


@pytest.mark.parametrize("limit, ok", [(301, True), (300, True), (299, False)])
def test_size_limit_at_below_and_above(tmp_path: Path, limit: int, ok: bool) -> None:
    data = files(3, 100)
    dest = tmp_path / "dest"
    if ok:
        archive.extract(OneWay(data), dest, stream=True, max_bytes=limit)  # type: ignore[arg-type]
        assert len(list(dest.iterdir())) == 3
    else:
        with pytest.raises(ArchiveError, match="expands to more than 299 bytes"):
            archive.extract(OneWay(data), dest, stream=True, max_bytes=limit)  # type: ignore[arg-type]
        assert not dest.exists()


@pytest.mark.parametrize("limit, ok", [(4, True), (3, True), (2, False)])
def test_member_limit_at_below_and_above(tmp_path: Path, limit: int, ok: bool) -> None:
    data = files(3, 1)
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(3):
            zf.writestr(f"f{i}", "x")
    for kind, source in (("tar", lambda: OneWay(data)), ("zip", lambda: zpath)):
        dest = tmp_path / f"dest-{kind}"
        if ok:
            archive.extract(source(), dest, stream=kind == "tar", max_members=limit)  # type: ignore[arg-type]
        else:
            with pytest.raises(ArchiveError, match="more than 2 members"):
                archive.extract(source(), dest, stream=kind == "tar", max_members=limit)  # type: ignore[arg-type]
            assert not dest.exists()


def zeros_tar_gz(size: int) -> bytes:
    """A gzip-compressed tar with one member of ``size`` zero bytes (about 1000:1)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return gzip.compress(raw.getvalue(), compresslevel=1)


def test_decompression_bomb_is_refused_while_it_inflates(tmp_path: Path) -> None:
    data = zeros_tar_gz(80 * 1024**2)
    assert len(data) < 1024**2
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="expands more than 100 times its compressed size"):
        archive.extract(OneWay(data), dest, stream=True)  # type: ignore[arg-type]
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_the_ratio_setting_still_lets_a_genuine_archive_through(tmp_path: Path) -> None:
    data = zeros_tar_gz(80 * 1024**2)
    dest = archive.extract(OneWay(data), tmp_path / "dest", stream=True, max_ratio=0)  # type: ignore[arg-type]
    assert (dest / "zeros.bin").stat().st_size == 80 * 1024**2


def test_a_small_repetitive_archive_is_below_the_ratio_floor(tmp_path: Path) -> None:
    data = zeros_tar_gz(8 * 1024**2)  # 1000:1, but far below 64 MiB
    dest = archive.extract(OneWay(data), tmp_path / "dest", stream=True)  # type: ignore[arg-type]
    assert (dest / "zeros.bin").stat().st_size == 8 * 1024**2


def test_zip_bomb_is_refused_from_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as out:
        for _ in range(80):
            out.write(bytes(1024**2))
    with pytest.raises(ArchiveError, match="expands more than 100 times"):
        archive.extract(path, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_an_archive_larger_than_the_free_space_is_refused_before_writing(tmp_path: Path) -> None:
    free = archive.free_bytes(tmp_path)
    assert free is not None
    # a header that declares more than the disk has free; its data never arrives
    header = tarfile.TarInfo("huge.bin")
    header.size = free + 1024**3
    data = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="bytes are free in"):
        archive.extract(OneWay(data), dest, stream=True, max_bytes=2**62)  # type: ignore[arg-type]
    assert not dest.exists()


@pytest.mark.parametrize("total, ok", [(999, True), (1000, True), (1001, False)])
def test_free_space_boundary(tmp_path: Path, total: int, ok: bool) -> None:
    if ok:
        archive.check_room(total, tmp_path, "L", free=1000)
    else:
        with pytest.raises(ArchiveError, match="needs 1001 bytes but only 1000 bytes are free"):
            archive.check_room(total, tmp_path, "L", free=1000)


def test_a_streamed_zip_is_not_spooled_past_the_limit(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", bytes(3 * 1024**2))
    with pytest.raises(ArchiveError, match="expands to more than"):
        archive.extract(OneWay(buf.getvalue()), tmp_path / "dest", stream=True, max_bytes=1024**2)  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == []
