"""Built-in plugin: the defaults of the AWS XGBoost container's script mode
(aws/sagemaker-xgboost-container: serving.py, encoder.py) for ``xgboost.Booster`` and the scikit-learn
wrappers (``XGBModel``: XGBClassifier, XGBRegressor...).

- input_fn: CSV (the delimiter sniffed from the first line, an empty field is a missing value) and LIBSVM
  (``text/libsvm``, ``text/x-libsvm``; 1-based indices shifted to 0, absent features 0) become a
  ``DMatrix`` for a Booster, a float array for an XGBModel (whose ``predict`` refuses a DMatrix in
  xgboost 2 and later). JSON rows of numbers and NPY are accepted too (the container answers 415).
  Blank lines are skipped (the container fails on a trailing newline).
- predict_fn: ``model.predict(data, validate_features=False)``.
- output_fn: the codecs (a float32 prediction is written to CSV as the container writes it).

xgboost is imported only for a model whose class comes from xgboost.
"""

from __future__ import annotations

import csv
import math
from typing import Any, Optional

from toolkit.errors import ClientError
from toolkit.hookspecs import hookimpl
from toolkit.serving import mediatypes
from toolkit.serving.frameworks import ModelDefaults, kind_of

CSV = "text/csv"
LIBSVM = ("text/libsvm", "text/x-libsvm")
JSON = "application/json"
NPY = "application/x-npy"
SUPPORTED = (CSV, *LIBSVM, JSON, NPY)


def _text(body: bytes, media: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"the {media} body is not UTF-8: {exc}") from None


def csv_rows(text: str) -> list[list[float]]:
    """Rows of floats; the delimiter is sniffed from the first line (``,`` when unsure) and an empty
    field is NaN, which XGBoost treats as missing."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ClientError("the text/csv body is empty; send one record per line")
    try:
        delimiter = csv.Sniffer().sniff(lines[0][:512]).delimiter
    except csv.Error:
        delimiter = ","
    if delimiter.isalnum() or delimiter in ".-+":
        delimiter = ","
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append([float(field) if field.strip() else math.nan for field in line.split(delimiter)])
        except ValueError as exc:
            raise ClientError(f"text/csv line {number} has a field that is not a number ({exc}); "
                              f"XGBoost needs numeric features") from None
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise ClientError(f"text/csv rows have different numbers of fields ({', '.join(map(str, sorted(widths)))}); "
                          f"send the same features on every line")
    return rows


def libsvm_rows(text: str) -> list[list[float]]:
    """LIBSVM lines (``label idx:value ...``; the label is ignored) as dense rows: 1-based indices are
    shifted to 0 when no index 0 appears, and absent features are 0."""
    parsed: list[dict[int, float]] = []
    for number, line in enumerate((ln for ln in text.splitlines() if ln.strip()), 1):
        row: dict[int, float] = {}
        for token in line.split():
            if ":" in token:
                index, _, value = token.partition(":")
                try:
                    row[int(index)] = float(value)
                except ValueError:
                    raise ClientError(f"LIBSVM line {number}: {token!r} is not index:value") from None
        parsed.append(row)
    indices = [i for row in parsed for i in row]
    if not indices:
        raise ClientError("the LIBSVM body has no index:value features")
    offset = 1 if min(indices) >= 1 else 0
    width = max(indices) - offset + 1
    dense = []
    for row in parsed:
        values = [0.0] * width
        for index, value in row.items():
            values[index - offset] = value
        dense.append(values)
    return dense


class XGBoostDefaults(ModelDefaults):
    name = "xgboost"

    def __init__(self, model: Any) -> None:
        import xgboost

        self.xgboost = xgboost
        self.booster = isinstance(model, xgboost.Booster)

    def input_fn(self, body: bytes, content_type: str, codecs: Any) -> Any:
        import numpy as np

        media = mediatypes.bare(content_type)
        if media == CSV:
            rows: Any = csv_rows(_text(body, media))
        elif media in LIBSVM:
            rows = libsvm_rows(_text(body, media))
        elif media in (JSON, NPY):
            rows = codecs.decode(body, content_type)
        else:
            raise ClientError(f"Content-Type {content_type or '(none)'!r} is not supported for an XGBoost model; "
                              f"send one of: {', '.join(SUPPORTED)} (or define input_fn)", status=415)
        try:
            array = np.array(rows, dtype=float, ndmin=2)
        except (TypeError, ValueError):
            raise ClientError(f"an XGBoost model's default input_fn needs rows of numbers in the {media} body; "
                              f"define input_fn in inference.py for other shapes") from None
        if array.ndim != 2:
            raise ClientError(f"an XGBoost model needs rows of features (2 dimensions), the {media} body has "
                              f"{array.ndim}")
        return self.xgboost.DMatrix(array) if self.booster else array

    def predict_fn(self, data: Any, model: Any) -> Any:
        return model.predict(data, validate_features=False)


@hookimpl
def toolkit_model_defaults(model: Any) -> Optional[ModelDefaults]:
    if kind_of(model, "xgboost") is None:
        return None
    import xgboost

    return XGBoostDefaults(model) if isinstance(model, (xgboost.Booster, xgboost.XGBModel)) else None
