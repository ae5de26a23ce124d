"""JSON values -> tensor values: per-dtype leaf checks, {"b64": ...} objects, nested lists -> flat list + shape.

As json_tensor.cc's AddValueToTensor / FillTensorProto / GetDenseTensorShape. Used by both request formats.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tfxp.serving.protocol._json_common import (
    _B64_KEY,
    _FLOAT32_ROUNDS_TO_INF,
    _INT64_MIN,
    _JSON_DTYPES,
    _UINT64_MAX,
    MAX_RANK,
    CodecError,
    DType,
    _json_type,
    _tf_type_name,
    _value_str,
)
from tfxp.serving.signature_def import STRING

# --------------------------------------------------------------------------- scalars


def _is_b64_object(val: Any) -> bool:
    # Exactly one key, "b64", holding a string; anything else is a plain object.
    return isinstance(val, dict) and len(val) == 1 and isinstance(val.get(_B64_KEY), str)


def _decode_b64_object(val: Any) -> bytes:
    if not _is_b64_object(val):
        raise CodecError(f"JSON Value: {_value_str(val)} not formatted correctly for base64 data")
    text = val[_B64_KEY]
    try:
        # absl::Base64Unescape accepts missing padding; b64decode does not.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise CodecError("Unable to base64 decode") from None


def _text_bytes(text: str) -> bytes:
    # surrogatepass: a lone low surrogate becomes the 3 bytes rapidjson writes for "\udc00".
    return text.encode("utf-8", "surrogatepass")


def _type_error(val: Any, dtype: DType) -> CodecError:
    return CodecError(
        f"JSON Value: {_value_str(val)} Type: {_json_type(val)} is not of expected type: {_tf_type_name(dtype)}"
    )


def _is_json_int(val: Any) -> bool:
    """True where rapidjson would hold an integer: integer tokens within [int64 min, uint64 max]."""
    return isinstance(val, int) and not isinstance(val, bool) and _INT64_MIN <= val <= _UINT64_MAX


def _as_double(val: int | float) -> float:
    try:
        return float(val)
    except OverflowError:  # only for ints not made by parse_json (it refuses them first)
        raise CodecError("JSON Parse error: Number too big to be stored in double.") from None


@functools.cache
def _scalar_converter(dtype: DType) -> Callable[[Any], Any]:
    """The leaf check and conversion for one dtype, built once (this runs for every value of a request)."""
    if dtype == STRING:

        def convert(val):
            if isinstance(val, str):
                return _text_bytes(val)
            if isinstance(val, dict):
                return _decode_b64_object(val)
            raise _type_error(val, STRING)

        return convert
    dtype = np.dtype(dtype)
    if dtype.name not in _JSON_DTYPES:

        def convert(val):
            if isinstance(val, dict):
                raise _type_error(val, dtype)
            raise CodecError(
                f"Conversion of JSON Value: {_value_str(val)} to type: {_tf_type_name(dtype)}", "UNIMPLEMENTED"
            )

        return convert
    if dtype.kind == "b":

        def convert(val):
            if val is True or val is False:
                return val
            raise _type_error(val, dtype)

        return convert
    if dtype.kind == "f":
        # rapidjson GetFloat()/GetDouble(): any number, rounded to the tensor's precision (no lossless check).
        # A double that rounds beyond float's range is ±inf, as the C++ cast gives it; done here, so numpy
        # never casts (and warns about) an out-of-range value.
        limit = _FLOAT32_ROUNDS_TO_INF if dtype.itemsize == 4 else math.inf

        def convert(val):
            if type(val) is not float:
                if not isinstance(val, int) or isinstance(val, bool):
                    raise _type_error(val, dtype)
                val = _as_double(val)
            if -limit < val < limit or val != val:  # (NaN)
                return val
            return math.copysign(math.inf, val)

        return convert
    # Integers: a JSON float token (even 1.0) is not an int to rapidjson, so TF Serving rejects it.
    # Out of the dtype's range is refused too (TF Serving accepts any int32 for 8/16-bit types and wraps).
    low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)

    def convert(val):
        if type(val) is int and low <= val <= high:
            return val
        raise _type_error(val, dtype)

    return convert


# --------------------------------------------------------------------------- tensors


def _dense_shape(val: Any) -> list[int]:
    """GetDenseTensorShape: the shape implied by following the first element down."""
    shape = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _fill(val: Any, level: int, shape: list[int], convert: Callable[[Any], Any], out: list[Any]) -> None:
    """FillTensorProto: every leaf at depth == rank, every list as long as the first one at its level."""
    rank = len(shape)
    if not isinstance(val, list):
        if level != rank:
            raise CodecError(
                f"JSON Value: {_value_str(val)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        out.append(convert(val))
        return
    if level >= rank:
        raise CodecError(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(val) != shape[level]:
        raise CodecError(
            f"Encountered list at unexpected size: {len(val)} at level: {level} expected size: {shape[level]}"
        )
    if level == rank - 1:  # the innermost lists hold the values: no call per value
        for item in val:
            if isinstance(item, list):
                raise CodecError(f"Encountered list at unexpected level: {level + 1} expected < {rank}")
            out.append(convert(item))
        return
    for item in val:
        _fill(item, level + 1, shape, convert, out)


def _json_to_flat(val: Any, dtype: DType, max_rank: int = MAX_RANK) -> tuple[list[Any], tuple[int, ...]]:
    shape = _dense_shape(val)
    if len(shape) > max_rank:
        # Checked before filling: numpy holds at most 32 dimensions (and _fill recurses per level).
        raise CodecError(
            f"Encountered lists nested {len(shape)} levels deep: tensors of rank > {MAX_RANK} are not supported"
        )
    flat: list[Any] = []
    _fill(val, 0, shape, _scalar_converter(dtype), flat)
    return flat, tuple(shape)


def _to_array(flat: list[Any], shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    if dtype == STRING:
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        return arr.reshape(shape)
    return np.array(flat, dtype=dtype).reshape(shape)
