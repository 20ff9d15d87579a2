"""sagemaker_inference.decoder: request bodies to numpy arrays (a sparse matrix for NPZ).

As in the real module, JSON and CSV take the text (bytes are decoded as UTF-8 here too). One
difference: an NPY body holding pickled objects is refused (400) instead of unpickled, because
unpickling what a client sends runs the client's code.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Union

import numpy as np

from toolkit.errors import ClientError

from . import content_types, errors

Text = Union[str, bytes]


def _as_text(data: Text) -> str:
    return data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data


def _json_to_numpy(string_like: Text, dtype: Any = None) -> np.ndarray:
    return np.array(json.loads(_as_text(string_like)), dtype=dtype)


def _csv_to_numpy(string_like: Text, dtype: Any = None) -> np.ndarray:
    return np.genfromtxt(io.StringIO(_as_text(string_like)), dtype=dtype, delimiter=",")


def _npy_to_numpy(npy_array: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(npy_array), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ClientError("the NPY body holds pickled Python objects, which this server does not load; "
                              "send a numeric array") from None
        raise


def _npz_to_sparse(npz_bytes: bytes) -> Any:
    try:
        import scipy.sparse
    except ImportError:
        raise ImportError("decoding application/x-npz to a sparse matrix needs scipy: pip install scipy") from None
    return scipy.sparse.load_npz(io.BytesIO(npz_bytes))


_decoder_map: dict[str, Callable[[Any], Any]] = {
    content_types.NPY: _npy_to_numpy,
    content_types.CSV: _csv_to_numpy,
    content_types.JSON: _json_to_numpy,
    content_types.NPZ: _npz_to_sparse,
}


def decode(obj: Any, content_type: str) -> Any:
    """``obj`` decoded as ``content_type`` (parameters such as charset are ignored here; the real
    module knows only the bare types); ``errors.UnsupportedFormatError`` for any other type."""
    media = content_type.split(";", 1)[0].strip().lower() if isinstance(content_type, str) else content_type
    decoder = _decoder_map.get(media)
    if decoder is None:
        raise errors.UnsupportedFormatError(content_type)
    return decoder(obj)
