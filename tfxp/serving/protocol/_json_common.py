"""TF Serving's JSON: what the codec's parts share (constants, CodecError, how a value is quoted in a message).

The rules of the whole codec (`tfxp.serving.protocol`'s JSON functions), matching TF Serving 2.16.1's
`tensorflow_serving/util/json_tensor.cc`:

Pure functions, no HTTP. What TF Serving accepts is accepted, what it refuses is refused with its
message (clients match on them), so a request behaves the same here and on `tensorflow/serving`:

- JSON text is read as rapidjson 1.1.0 reads it with `kParseNanAndInfFlag`: `NaN`, `Inf`, `Infinity`,
  `-Inf`, `-Infinity`, `-NaN` are numbers; a number beyond double range is a parse error ("Number too
  big to be stored in double."); a lone high surrogate escape is one too; a lone low surrogate escape
  is kept (as the 3 bytes rapidjson writes for it). Parse errors use rapidjson's messages.
- Numbers for float inputs are rounded to the tensor's precision, never refused for it (TF Serving
  dropped its lossless check, b/181409782): 16777217 -> 16777216.0 for DT_FLOAT, and
  ±1.7976931348623157e308 -> ±inf.
- Shapes are not compared with the signature's (TF Serving leaves that to the model).
- Response numbers are written as TF Serving's WriteDecimal writes them (`9e+06`, `999999.0`,
  `0.333333343`, `NaN`, `-Infinity`).

Refusals beyond TF Serving's, each where TF Serving would give an answer the request did not ask for
or could not be represented: integers out of an 8/16-bit input's range (TF Serving accepts any int32
and wraps it), tensors of rank > 32 (numpy's limit), request bytes that are not UTF-8 (rapidjson does
not check). Output strings that are not UTF-8 are written with U+FFFD (TF Serving writes the raw bytes,
which is not JSON). Where TF Serving's message does not say which input failed, the name is appended.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from tfxp.serving.signature_def import STRING

ROW = "row"
COLUMNAR = "columnar"

_B64_KEY = "b64"
_BYTES_SUFFIX = "_bytes"
# TF Serving prints the whole offending JSON value (even the whole request); cap it so
# one bad multi-megabyte request does not echo itself back.
_MAX_VALUE_CHARS = 1000
MAX_RANK = 32  # numpy's limit on dimensions (TF's is 254)

# numpy -> TF's DataTypeString(), which TF Serving puts in its messages.
_TF_TYPE_NAMES = {
    "float32": "float",
    "float64": "double",
    "float16": "half",
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "complex64": "complex64",
    "complex128": "complex128",
    "bfloat16": "bfloat16",
}
# The dtypes AddValueToTensor / AddSingleValueAndAdvance handle; JSON for the others is UNIMPLEMENTED.
_JSON_DTYPES = {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool"}
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_ROUNDS_TO_INF = 2.0**128 - 2.0**103  # FLT_MAX + half an ulp: from here on, float(x) is inf
_DBL_MAX_DIGITS = 309  # an integer literal this long no longer fits a double (rapidjson: "Number too big")

DType = np.dtype | str
Shape = tuple[int | None, ...]
# Called between units of decoding work (rows, examples); raises to stop a request (e.g. its deadline).
Checkpoint = Callable[[], None] | None


class CodecError(ValueError):
    """A request or response that TF Serving would reject; the message is the REST error body.

    `code` is the status code name (`grpc.StatusCode` / `serving.errors.Code` member names):
    INVALID_ARGUMENT (400) unless TF Serving says otherwise (UNIMPLEMENTED, 501, for JSON of a dtype it
    can't convert).
    """

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.code = code


def _tf_type_name(dtype: DType) -> str:
    return STRING if dtype == STRING else _TF_TYPE_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)):
        arr = np.asarray(obj)
        if arr.dtype.kind in "OSU":
            return _map_leaves(arr.tolist(), _bytes_to_text)
        return arr.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _value_str(val: Any) -> str:
    """TF Serving's JsonValueToString (rapidjson PrettyWriter: 4-space indent), at most ~1000 chars.

    Encodes lazily, so a huge or deeply nested value costs only what is printed.
    """
    encoder = json.JSONEncoder(indent=4, ensure_ascii=False, allow_nan=True, default=_json_default)
    parts, size = [], 0
    try:
        for chunk in encoder.iterencode(val):
            parts.append(chunk)
            size += len(chunk)
            if size > _MAX_VALUE_CHARS:
                return "".join(parts)[:_MAX_VALUE_CHARS] + "..."
    except (RecursionError, ValueError, TypeError):
        return "".join(parts)[:_MAX_VALUE_CHARS] + "..."
    return "".join(parts)


def _json_type(val: Any) -> str:
    if val is None:
        return "Null"
    if isinstance(val, bool):
        return "True" if val else "False"
    if isinstance(val, dict):
        return "Object"
    if isinstance(val, list):
        return "Array"
    if isinstance(val, str):
        return "String"
    return "Number"


def _shape_str(shape: Shape) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def _nested_error(e: CodecError) -> str:
    # TF Serving embeds the inner Status via ToString(), which prefixes the code.
    return f"{e.code}: {e}"


def _map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, list):
        return [_map_leaves(v, leaf) for v in value]
    return leaf(value)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise CodecError(f"Failed to write JSON value for tensor type: string (got {type(value).__name__})")


def _bytes_to_text(value: Any) -> str:
    return value if isinstance(value, str) else _as_bytes(value).decode("utf-8", errors="replace")
