"""numpy -> TF Serving's JSON responses: :predict (row or columnar, as MakeJsonFromTensors), :classify, :regress.

Floats as TF Serving's WriteDecimal writes them; bytes as UTF-8 text or {"b64": ...} for outputs named "*_bytes".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfxp.serving.protocol._json_common import (
    _BYTES_SUFFIX,
    _JSON_DTYPES,
    COLUMNAR,
    ROW,
    CodecError,
    _as_bytes,
    _bytes_to_text,
    _tf_type_name,
)

# --------------------------------------------------------------------------- predict: response


def encode_predict_response(outputs: Mapping[str, Any], format: str) -> str:
    """Output arrays -> the :predict response as JSON text, as MakeJsonFromTensors writes it.

    Row: {"predictions": [...]} split along dim 0 (a list of {name: value} objects when there are
    several outputs, which must then share dim 0). Columnar: {"outputs": value | {name: value}}.
    Floats as WriteDecimal writes them; bytes as {"b64": ...} for outputs named "*_bytes", else UTF-8
    text (invalid bytes replaced). Raises CodecError for what TF Serving can't write (a dtype JSON
    can't express, a scalar in row format, outputs of different batch sizes).
    """
    if not outputs:
        raise CodecError("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if format == ROW:
        return '{"predictions":' + _row_predictions(arrays) + "}"
    if format == COLUMNAR:
        values = {name: _tensor_text(arr, name.endswith(_BYTES_SUFFIX)) for name, arr in arrays.items()}
        if len(values) == 1:
            return '{"outputs":' + next(iter(values.values())) + "}"
        return '{"outputs":' + _object_text(values) + "}"
    raise CodecError("Invalid request format")


def _row_predictions(arrays: Mapping[str, np.ndarray]) -> str:
    batch_size = None
    for name, arr in arrays.items():
        if arr.ndim == 0:
            raise CodecError(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and arr.shape[0] != batch_size:
            raise CodecError(f"Tensor name: {name} has inconsistent batch size: {arr.shape[0]} expecting: {batch_size}")
        batch_size = arr.shape[0]
    rows = {name: _row_texts(arr, name.endswith(_BYTES_SUFFIX)) for name, arr in arrays.items()}
    if len(rows) == 1:
        return "[" + ",".join(next(iter(rows.values()))) + "]"
    return (
        "["
        + ",".join(_object_text({name: texts[i] for name, texts in rows.items()}) for i in range(batch_size or 0))
        + "]"
    )


def _object_text(values: Mapping[str, str]) -> str:
    return "{" + ",".join(_string_text(name) + ":" + text for name, text in values.items()) + "}"


def _tensor_text(arr: np.ndarray, as_b64: bool) -> str:
    """AddTensorValues from dim 0: nested lists, a bare value for a scalar."""
    return _nest(_leaf_texts(arr, as_b64))


def _row_texts(arr: np.ndarray, as_b64: bool) -> list[str]:
    """AddTensorValues from dim 1, one text per row."""
    leaves = _leaf_texts(arr, as_b64)
    return [_nest(leaves[i]) for i in range(leaves.shape[0])]


def _nest(texts: Any) -> str:
    if not isinstance(texts, np.ndarray):  # one element of a 1-d array
        return texts
    if texts.ndim == 0:
        return texts.item()
    if texts.ndim == 1:
        return "[" + ",".join(texts.tolist()) + "]"
    return "[" + ",".join(_nest(sub) for sub in texts) + "]"


def _leaf_texts(arr: np.ndarray, as_b64: bool) -> np.ndarray:
    """One JSON text per element (an object array of str, same shape), as AddSingleValueAndAdvance."""
    kind = arr.dtype.kind
    if kind in "OSU":
        leaf = _bytes_to_b64_text if as_b64 else _bytes_to_string_text
        return np.array([leaf(v) for v in arr.reshape(-1).tolist()], dtype=object).reshape(arr.shape)
    if arr.dtype.name not in _JSON_DTYPES:
        raise CodecError(f"Failed to write JSON value for tensor type: {_tf_type_name(arr.dtype)}")
    if kind == "f":
        return decimal_texts(arr)
    if kind == "b":
        return np.where(arr, "true", "false").astype(object)
    return arr.astype(str).astype(object)


def decimal_texts(values: np.ndarray) -> np.ndarray:
    """TF Serving's WriteDecimal for each element of a float32/float64 array (an object array of str).

    absl::StrCat (six significant digits, as "%.6g"); when that does not read back as the same value
    at the array's precision, "%.9g" (float) / "%.17g" (double); ".0" appended to whole numbers not
    in scientific notation; NaN, Infinity and -Infinity literals.
    """
    arr = np.asarray(values)
    doubles = arr.reshape(-1).astype(np.float64).tolist()
    six = [f"{v:.6g}" for v in doubles]
    # Six significant digits never exceed the array's range ("3.40282e+38" < FLT_MAX): no overflow here.
    round_trips = (np.array(six, dtype=np.float64).astype(arr.dtype) == arr.reshape(-1)).tolist()
    full = "%.9g" if arr.dtype.itemsize <= 4 else "%.17g"
    texts = []
    for text, value, exact in zip(six, doubles, round_trips, strict=True):
        special = _NON_FINITE.get(text)
        if special is not None:
            texts.append(special)
            continue
        if not exact:
            text = full % value
        if "." not in text and "e" not in text:
            text += ".0"
        texts.append(text)
    return np.array(texts, dtype=object).reshape(arr.shape)


# "%g" spellings of the non-finite values -> WriteDecimal's literals.
_NON_FINITE = {"nan": "NaN", "-nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _string_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _bytes_to_string_text(value: Any) -> str:
    return _string_text(_bytes_to_text(value))


def _bytes_to_b64_text(value: Any) -> str:
    return '{"b64":"' + base64.b64encode(_as_bytes(value)).decode("ascii") + '"}'


def encode_classify_response(results: list[list[tuple[Any, float]]]) -> str:
    """Per example, its (label, score) pairs -> '{"results": [[["label", score], ...], ...]}' JSON text.

    Scores are proto floats, written as WriteDecimal writes a float.
    """
    if not results:
        raise CodecError("Cannot convert empty ClassificationResults to JSON")
    scores = decimal_texts(np.asarray([s for classes in results for _, s in classes], dtype=np.float32))
    position = iter(scores.tolist())
    rows = []
    for classes in results:
        pairs = ["[" + _bytes_to_string_text(label) + "," + next(position) + "]" for label, _ in classes]
        rows.append("[" + ",".join(pairs) + "]")
    return '{"results":[' + ",".join(rows) + "]}"


def encode_regress_response(values: list[float]) -> str:
    """One regression value per example -> '{"results": [v, ...]}' JSON text (proto floats)."""
    if len(values) == 0:
        raise CodecError("Cannot convert empty RegressionResults to JSON")
    return '{"results":[' + ",".join(decimal_texts(np.asarray(values, dtype=np.float32)).tolist()) + "]}"
