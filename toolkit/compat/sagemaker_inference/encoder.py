"""sagemaker_inference.encoder: array-likes to JSON (str), CSV (str) or NPY (bytes)."""

from __future__ import annotations

import io
import json
from typing import Any, Callable

import numpy as np

from . import content_types, errors


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _array_to_json(array_like: Any) -> str:
    return json.dumps(array_like, default=_plain)


def _array_to_npy(array_like: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, array_like)
    return out.getvalue()


def _array_to_csv(array_like: Any) -> str:
    """One line per row (a 1-D array: per value), fields written with str()."""
    out = io.StringIO()
    np.savetxt(out, array_like, delimiter=",", fmt="%s")
    return out.getvalue()


_encoder_map: dict[str, Callable[[Any], Any]] = {
    content_types.NPY: _array_to_npy,
    content_types.CSV: _array_to_csv,
    content_types.JSON: _array_to_json,
}

SUPPORTED_CONTENT_TYPES = set(_encoder_map)


def encode(array_like: Any, content_type: str) -> Any:
    """``array_like`` encoded as ``content_type``; ``errors.UnsupportedFormatError`` for another type."""
    encoder = _encoder_map.get(content_type)
    if encoder is None:
        raise errors.UnsupportedFormatError(content_type)
    return encoder(array_like)
