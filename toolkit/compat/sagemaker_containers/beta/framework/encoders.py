"""Stand-in for ``sagemaker_containers.beta.framework.encoders``: numpy arrays to and from JSON, CSV and
NPY exactly as sagemaker-containers 2.8 converts them (JSON and CSV as ``str``, NPY as ``bytes``).
numpy is imported when a conversion runs, not when the module is imported."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

from toolkit.compat.importing import module_getattr

from . import content_types
from .errors import ClientError, UnsupportedFormatError

__getattr__ = module_getattr(__name__, ("decode", "encode", "array_to_npy", "npy_to_numpy", "array_to_json",
                                        "json_to_numpy", "csv_to_numpy", "array_to_csv"))


def array_to_npy(array_like: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array_like)
    return buffer.getvalue()


def npy_to_numpy(npy_array: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(npy_array), allow_pickle=True)  # as the real one: the script's own choice


def array_to_json(array_like: Any) -> str:
    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        return json.JSONEncoder().default(value)

    return json.dumps(array_like, default=default)


def json_to_numpy(string_like: Any, dtype: Any = None) -> Any:
    import numpy as np

    return np.array(json.loads(string_like), dtype=dtype)


def csv_to_numpy(string_like: str, dtype: Any = None) -> Any:
    """Rows of fields as an array, squeezed; numbers become floats (``astype(None)``), as in the real one."""
    import numpy as np

    try:
        reader = csv.reader(io.StringIO(string_like), delimiter=",", quotechar='"', doublequote=True, strict=True)
        array = np.array(list(reader)).squeeze()
        array = array.astype(dtype)
    except ValueError as exc:
        if dtype is not None:
            raise ClientError(f"Error while writing numpy array: {exc}. dtype is: {dtype}") from exc
    except Exception as exc:
        raise ClientError(f"Error while decoding csv: {exc}") from exc
    return array


def array_to_csv(array_like: Any) -> str:
    import numpy as np

    array = np.array(array_like)
    if len(array.shape) == 1:
        array = np.reshape(array, (array.shape[0], 1))
    try:
        stream = io.StringIO()
        csv.writer(stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True,
                   strict=True).writerows(array)
        return stream.getvalue()
    except csv.Error as exc:
        raise ClientError(f"Error while encoding csv: {exc}") from exc


_encoders_map: dict[str, Callable[[Any], Any]] = {
    content_types.NPY: array_to_npy, content_types.CSV: array_to_csv, content_types.JSON: array_to_json,
}
_decoders_map: dict[str, Callable[[Any], Any]] = {
    content_types.NPY: npy_to_numpy, content_types.CSV: csv_to_numpy, content_types.JSON: json_to_numpy,
}


def _convert(table: dict[str, Callable[[Any], Any]], value: Any, content_type: str) -> Any:
    try:
        convert = table[content_type]
    except KeyError:
        raise UnsupportedFormatError(content_type) from None
    return convert(value)


def decode(obj: Any, content_type: str) -> Any:
    """``obj`` (the request body) as a numpy array; ``UnsupportedFormatError`` for other types."""
    return _convert(_decoders_map, obj, content_type)


def encode(array_like: Any, content_type: str) -> Any:
    """``array_like`` as JSON or CSV text, or NPY bytes; ``UnsupportedFormatError`` for other types."""
    return _convert(_encoders_map, array_like, content_type)
