"""Built-in codecs: JSON, JSON Lines, CSV, plain text, raw bytes, NPY and NPZ.

numpy is imported the first time an NPY/NPZ body (or a CSV body, when numpy is installed) is
decoded, never at start-up; without numpy installed the NPY/NPZ types are simply not offered and
CSV decodes to lists. NPY/NPZ bodies are loaded with ``allow_pickle=False``: a pickled object
array from a client is refused with 400, never unpickled. Before numpy allocates anything, the
shape and dtype in each NPY header are checked against the bytes the body really carries, and an
NPZ body's members against ``NPZ_MAX_EXPANSION``: a header that claims more is a 400, not a
MemoryError after trying to allocate it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from typing import IO, Any, Callable, Optional, Sequence

from toolkit.errors import ClientError
from toolkit.hookspecs import hookimpl

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
TEXT = "text/plain"
OCTET = "application/octet-stream"
NPY = "application/x-npy"
NPZ = "application/x-npz"
# The arrays of an NPZ body may take at most this many times the body's size, or NPZ_MIN_ALLOWANCE,
# whichever is more: numpy.savez output is about 1:1 and savez_compressed of real data a few to one,
# while a deflate bomb packs about 1000:1.
NPZ_MAX_EXPANSION = 32
NPZ_MIN_ALLOWANCE = 64 * 1024 * 1024
ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/x-ndjson": JSONLINES,
           "text/json": JSON}


def has_numpy() -> bool:
    return importlib.util.find_spec("numpy") is not None


def _plain(value: Any) -> Any:
    """json.dumps fallback: numpy arrays and scalars (and anything with tolist) become lists/numbers."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, (bytes, bytearray)):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ClientError("the model answered with binary data, which JSON cannot carry; "
                              "ask for Accept: application/octet-stream", status=406) from None
    if isinstance(value, (set, frozenset, tuple)) or hasattr(value, "__iter__"):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- JSON -------------------------------------------------------------------------------------


def decode_json(body: bytes) -> Any:
    if not body:
        raise ClientError("the application/json body is empty; send a JSON document")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ClientError(f"the application/json body is not valid JSON: {exc}") from None


def encode_json(data: Any) -> bytes:
    return json.dumps(data, default=_plain).encode("utf-8")


def decode_jsonlines(body: bytes) -> list:
    records = []
    for number, line in enumerate(body.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ClientError(f"application/jsonlines line {number} is not valid JSON: {exc}") from None
    return records


def encode_jsonlines(data: Any) -> bytes:
    tolist = getattr(data, "tolist", None)
    rows = tolist() if tolist is not None else data
    if isinstance(rows, dict) or not hasattr(rows, "__iter__"):
        rows = [rows]
    return b"".join(json.dumps(row, default=_plain).encode("utf-8") + b"\n" for row in rows)


# -- CSV (headerless, as Batch Transform sends it) ----------------------------------------------


def _ragged(widths: list[int]) -> ClientError:
    first = widths[0]
    row = next(i for i, w in enumerate(widths) if w != first)
    return ClientError(
        f"text/csv rows have different numbers of fields (row 1 has {first}, row {row + 1} has "
        f"{widths[row]}); send one record per line, all with the same number of fields"
    )


def _number(field: str) -> Any:
    try:
        return int(field)
    except ValueError:
        try:
            return float(field)
        except ValueError:
            return field


def decode_csv(body: bytes) -> Any:
    """A 2-D numpy array of floats when numpy is installed and every field is a number (as the AWS
    toolkit decodes CSV), else a list of rows with numbers converted."""
    if not body.strip():
        raise ClientError("the text/csv body is empty; send one record per line")
    if has_numpy():
        import numpy as np

        try:
            return np.loadtxt(io.BytesIO(body), delimiter=",", dtype=float, ndmin=2, encoding="utf-8")
        except ValueError as exc:
            if "columns" in str(exc) or "number of" in str(exc):
                rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
                widths = [len(r) for r in rows if r]
                if len(set(widths)) > 1:
                    raise _ragged(widths) from None
            # not all numbers: fall through to lists of fields
    text = body.decode("utf-8")
    try:
        rows = [[_number(f) for f in row] for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as exc:  # a field over csv's limit (128 KiB), an unclosed quote at the end...
        raise ClientError(f"the text/csv body is not CSV: {exc}") from None
    widths = [len(r) for r in rows]
    if len(set(widths)) > 1:
        raise _ragged(widths)
    return rows


def _numpy_rows(array: Any) -> Any:
    """A 0-2-D numpy array as rows of numpy scalars, which csv writes with numpy's str(): a float32
    0.1 is ``0.1``, as the AWS encoders write it, not the float64 ``0.10000000149011612`` of tolist()."""
    if array.ndim == 0:
        return [[array[()]]]
    if array.ndim == 1:
        return [[value] for value in array]
    return array


def encode_csv(data: Any) -> bytes:
    if type(data).__module__ == "numpy" and getattr(data, "ndim", 3) <= 2:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(_numpy_rows(data))
        return out.getvalue().encode("utf-8")
    tolist = getattr(data, "tolist", None)
    rows = tolist() if tolist is not None else data
    if not isinstance(rows, (list, tuple)):
        rows = [[rows]]
    elif rows and not isinstance(rows[0], (list, tuple)):
        rows = [[value] for value in rows]  # a 1-D result: one value per line, as Batch Transform joins them
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


# -- text and bytes -----------------------------------------------------------------------------


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"the text/plain body is not UTF-8: {exc}") from None


def encode_text(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return (data if isinstance(data, str) else json.dumps(data, default=_plain)).encode("utf-8")


def decode_octet(body: bytes) -> bytes:
    return body


def encode_octet(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    tobytes = getattr(data, "tobytes", None)
    if tobytes is not None:
        return tobytes()
    raise TypeError(f"application/octet-stream needs bytes from the model, got {type(data).__name__}")


# -- NPY / NPZ ----------------------------------------------------------------------------------


def check_npy_header(stream: IO[bytes], size: int, what: str) -> None:
    """Read the NPY header at the start of ``stream`` (``size`` bytes in all) and refuse (400) one that
    declares more data than follows it, before numpy allocates the array it describes. Not an NPY
    stream (no magic): nothing to check, numpy decides."""
    from numpy.lib import format as npy_format

    start = stream.tell()
    magic = stream.read(len(npy_format.MAGIC_PREFIX) + 2)
    if not magic.startswith(npy_format.MAGIC_PREFIX):
        return
    major = magic[-2]
    read_header = npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
    shape, _fortran_order, dtype = read_header(stream)  # ValueError for a malformed header
    if dtype.hasobject:
        return  # numpy refuses it (allow_pickle=False) without allocating
    count = 1
    for dim in shape:
        count *= dim
    declared = count * max(dtype.itemsize, 1)  # zero-size items: still one element each to build
    carried = size - (stream.tell() - start)
    if declared > carried:
        raise ClientError(f"{what} declares shape {shape} of {dtype.str} ({declared:,} bytes) but carries "
                          f"{max(carried, 0):,} bytes of data; send numpy.save output")


def decode_npy(body: bytes) -> Any:
    if not body.startswith(b"\x93NUMPY"):
        raise ClientError("the application/x-npy body is not an NPY array (no NPY header); send numpy.save output")
    import numpy as np

    try:
        check_npy_header(io.BytesIO(body), len(body), "the application/x-npy body")
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ClientError, MemoryError):
        raise
    except Exception as exc:  # whatever numpy raises for a malformed body (ValueError, EOFError, TokenError...)
        raise _not_decodable(exc, "application/x-npy", "an NPY array", "a numeric array (numpy.save(..., "
                                                                         "allow_pickle=False))") from None


def _not_decodable(exc: Exception, media: str, what: str, send: str) -> ClientError:
    if isinstance(exc, ValueError) and "pickle" in str(exc):
        return ClientError(f"the {media} body holds pickled Python objects, which this server never loads; "
                           f"send {send}")
    return ClientError(f"the {media} body is not {what}: {type(exc).__name__}: {exc}")


def encode_npy(data: Any) -> bytes:
    import numpy as np

    out = io.BytesIO()
    np.save(out, np.asarray(data), allow_pickle=False)
    return out.getvalue()


def decode_npz(body: bytes) -> dict:
    if not body.startswith(b"PK"):
        raise ClientError("the application/x-npz body is not an NPZ archive (not a zip file); send numpy.savez output")
    import zipfile

    import numpy as np

    try:
        check_npz_members(zipfile.ZipFile(io.BytesIO(body)), len(body))
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ClientError, MemoryError):
        raise
    except Exception as exc:  # BadZipFile, zlib.error, an encrypted member (RuntimeError), a bad NPY header...
        raise _not_decodable(exc, "application/x-npz", "an NPZ archive", "numeric arrays (numpy.savez)") from None


def check_npz_members(archive: Any, size: int) -> None:
    """Refuse (400) an NPZ archive whose members would expand past the allowance, or one of whose NPY
    headers declares more than its member holds, before anything is decompressed into an array."""
    with archive:
        members = archive.infolist()
        expanded = sum(info.file_size for info in members)
        allowance = max(size * NPZ_MAX_EXPANSION, NPZ_MIN_ALLOWANCE)
        if expanded > allowance:
            raise ClientError(f"the application/x-npz body ({size:,} bytes) expands to {expanded:,} bytes, more "
                              f"than {allowance:,} ({NPZ_MAX_EXPANSION} times its size, at least "
                              f"{NPZ_MIN_ALLOWANCE >> 20} MiB); send numpy.savez output")
        for info in members:
            with archive.open(info) as member:
                check_npy_header(member, info.file_size, f"the application/x-npz member {info.filename!r}")


def encode_npz(data: Any) -> bytes:
    import numpy as np

    out = io.BytesIO()
    if isinstance(data, dict):
        np.savez(out, **{k: np.asarray(v) for k, v in data.items()})
    else:
        np.savez(out, np.asarray(data))
    return out.getvalue()


DECODERS: dict[str, Callable[[bytes], Any]] = {
    JSON: decode_json, JSONLINES: decode_jsonlines, CSV: decode_csv, TEXT: decode_text,
    OCTET: decode_octet, NPY: decode_npy, NPZ: decode_npz,
}
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    JSON: encode_json, JSONLINES: encode_jsonlines, CSV: encode_csv, TEXT: encode_text,
    OCTET: encode_octet, NPY: encode_npy, NPZ: encode_npz,
}
NEEDS_NUMPY = {NPY, NPZ}


def _offered(media_type: str) -> Optional[str]:
    media = ALIASES.get(media_type, media_type)
    if media in NEEDS_NUMPY and not has_numpy():
        return None
    return media


@hookimpl(trylast=True)
def toolkit_decoder(media_type: str) -> Optional[Callable[[bytes], Any]]:
    media = _offered(media_type)
    return DECODERS.get(media) if media else None


@hookimpl(trylast=True)
def toolkit_encoder(media_type: str) -> Optional[Callable[[Any], bytes]]:
    media = _offered(media_type)
    return ENCODERS.get(media) if media else None


@hookimpl
def toolkit_media_types() -> Sequence[str]:
    return [m for m in DECODERS if m not in NEEDS_NUMPY or has_numpy()]
