"""TF Serving's REST JSON <-> numpy, matching TF Serving 2.16.1's `tensorflow_serving/util/json_tensor.cc`.

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

import base64
import binascii
import contextlib
import functools
import gc
import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from tfxp.serving.signature_def import STRING, TensorInfo

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


# --------------------------------------------------------------------------- JSON text: parsing


class _NumberTooBig(Exception):
    def __init__(self, token: str):
        super().__init__(token)
        self.token = token


# Cheap pre-checks on the request text; the slow paths run only when they match.
_NAN_INF_HINT = re.compile(r"-NaN|Inf(?!inity)")
# A high surrogate escape not followed by a low one (rapidjson 1.1.0 refuses it; a lone low one it keeps).
_LONE_HIGH_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_HIGH_SURROGATE = re.compile("[\ud800-\udbff]")
# A JSON string, or (outside strings) one of rapidjson's NaN/Inf spellings.
_STRING_OR_NAN_INF = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?)(NaN|Inf(?:inity)?)([A-Za-z]*)')
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_ONLY_WHITESPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace (str.isspace() is wider)

# Python's json messages -> rapidjson 1.1.0's (error/en.h), which TF Serving puts after "JSON Parse error: ".
_RAPIDJSON_MESSAGES = {
    "Expecting value": "Invalid value.",
    "Extra data": "The document root must not be followed by other values.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid escape character in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}


def parse_json(body: bytes | str) -> dict:
    """Parses a request body as TF Serving's ParseJson (rapidjson, kParseNanAndInfFlag) does.

    Returns the top-level object. Integers within [-2^63, 2^64-1] are ints; other numbers floats.
    Raises CodecError("JSON Parse error: <rapidjson message> at offset: N") on malformed JSON and
    CodecError("JSON Value: ... Is not object") when the top level is not an object.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        if not body:
            raise CodecError("JSON Parse error: The document is empty")
        try:
            # rapidjson's UTF-8 input stream skips a byte order mark.
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise CodecError(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    else:
        text = body
    if not text:
        raise CodecError("JSON Parse error: The document is empty")
    if _ONLY_WHITESPACE.fullmatch(text):
        raise CodecError(f"JSON Parse error: The document is empty. at offset: {_byte_offset(text, len(text))}")
    doc = _loads(text)
    lone = _LONE_HIGH_SURROGATE_ESCAPE.search(text)
    # The escape may be a literal "\\ud800" in a string; only a high surrogate left in the doc counts.
    if lone is not None and _has_lone_high_surrogate(doc):
        raise CodecError(
            f"JSON Parse error: The surrogate pair in string is invalid. at offset: {_byte_offset(text, lone.start())}"
        )
    if not isinstance(doc, dict):
        raise CodecError(f"JSON Value: {_value_str(doc)} Is not object")
    return doc


def _loads(text: str) -> Any:
    try:
        return _json_loads(text)
    except json.JSONDecodeError as e:
        if not _NAN_INF_HINT.search(text):
            raise CodecError(_parse_error(e)) from None
    # Only when Python's reader failed: spell rapidjson's Inf/-Inf/-NaN as Python reads them, retry.
    try:
        return _json_loads(_STRING_OR_NAN_INF.sub(_python_nan_inf, text))
    except json.JSONDecodeError as e:
        raise CodecError(_parse_error(e)) from None


def _json_loads(text: str) -> Any:
    """json.loads with rapidjson's number rules; every failure but JSONDecodeError becomes the CodecError
    TF Serving's would be.

    The hooks are Python functions on purpose: the interpreter can hand the GIL to the event loop
    between them, where a plain json.loads of a 17 MB body holds it for a second. For the same reason
    the cyclic garbage collector is paused while a large body is read (JSON values can't form cycles,
    and its full passes over millions of new objects hold the GIL for up to a second too).
    """
    try:
        with gc_paused() if len(text) >= LARGE_BODY_BYTES else contextlib.nullcontext():
            return json.loads(text, object_hook=_object, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError:
        raise
    except _NumberTooBig as e:
        raise CodecError(
            f"JSON Parse error: Number too big to be stored in double. at offset: "
            f"{_byte_offset(text, max(text.find(e.token), 0))}"
        ) from None
    except RecursionError:
        # rapidjson 1.1.0 recurses without a limit (a TODO in json_tensor.cc); refuse instead.
        raise CodecError("JSON Parse error: The document is nested too deeply") from None
    except ValueError as e:  # not expected (the hooks see every number first); still the client's input
        raise CodecError(f"JSON Parse error: {e}") from None


LARGE_BODY_BYTES = 1 << 20  # from this size on, a request is decoded with the garbage collector paused
_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """gc.disable() while any thread is inside (the switch is process-wide, so entries are counted).

    For the life of a large request's decoded JSON: its millions of new objects can't form cycles,
    and a collection traversing them holds the GIL (every other request waits) for up to a second.
    Freed by reference counting at the end, they are gone before the collector runs again.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _object(value: dict) -> dict:
    return value


def _python_nan_inf(match: re.Match) -> str:
    """rapidjson's NaN/Inf spellings as Python's json reads them; strings are left alone."""
    if match.group(2) is None or match.group(3):  # a string, or a misspelling ("Infinit") left to fail
        return match.group(0)
    if match.group(2) == "NaN":
        return "NaN"  # rapidjson reads -NaN as NaN
    return match.group(1) + "Infinity"


def _parse_int(token: str) -> int | float:
    """An integer literal as rapidjson stores it: int64/uint64, else a double; too long -> error
    (checked by length before int(), which refuses more than 4300 digits)."""
    if len(token) < 20:
        return int(token)
    if len(token.lstrip("-")) > _DBL_MAX_DIGITS:
        raise _NumberTooBig(token)
    value = int(token)
    if _INT64_MIN <= value <= _UINT64_MAX:
        return value
    try:
        return float(value)
    except OverflowError:
        raise _NumberTooBig(token) from None


def _parse_float(token: str) -> float:
    """A decimal literal; rapidjson refuses an exponent beyond 308 (+ fraction digits) instead of inf."""
    value = float(token)
    if math.isinf(value):
        mantissa, _, exponent = token.lower().partition("e")
        fraction = mantissa.partition(".")[2]
        if exponent and int(exponent) > 308 + len(fraction):
            raise _NumberTooBig(token)
    return value


def _parse_error(e: json.JSONDecodeError) -> str:
    message, pos = _RAPIDJSON_MESSAGES.get(e.msg), e.pos
    if message is None:
        message, pos = _delimiter_error(e) if e.msg == "Expecting ',' delimiter" else (e.msg, e.pos)
    return f"JSON Parse error: {message} at offset: {_byte_offset(e.doc, pos)}"


def _delimiter_error(e: json.JSONDecodeError) -> tuple[str, int]:
    """Python's "Expecting ',' delimiter" as rapidjson says it: a number cut short, or the container's comma."""
    text, pos = e.doc, e.pos
    if text[pos - 1 : pos].isdigit() and text[pos : pos + 1] in (".", "e", "E"):
        # rapidjson reports these after the "." / "e" (and the exponent's sign).
        after = pos + 1 + (text[pos : pos + 1] in "eE" and text[pos + 1 : pos + 2] in ("+", "-"))
        return ("Miss fraction part in number." if text[pos] == "." else "Miss exponent in number."), after
    stack = []
    for match in _STRING_OR_BRACKET.finditer(text, 0, pos):
        token = match.group(0)
        if token in "[{":
            stack.append(token)
        elif token in "]}" and stack:
            stack.pop()
    if stack and stack[-1] == "{":
        return "Missing a comma or '}' after an object member.", pos
    return "Missing a comma or ']' after an array element.", pos


def _byte_offset(text: str, pos: int) -> int:
    """rapidjson reports offsets in bytes of the UTF-8 text."""
    return len(text[:pos].encode("utf-8", "surrogatepass"))


def _has_lone_high_surrogate(doc: Any) -> bool:
    """Python's json joins valid pairs; a high surrogate left in any string or key stands alone."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _HIGH_SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


# --------------------------------------------------------------------------- JSON text: writing


def dumps(obj: Any) -> str:
    """Compact JSON with NaN/Infinity literals (TF Serving emits them) and raw UTF-8 like rapidjson."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def to_utf8(text: str) -> bytes:
    """JSON text -> response bytes. A lone surrogate (only possible inside a JSON string, e.g. an
    echoed `"\\udc00"` signature name) is written as its `\\udc00` escape: valid UTF-8 and valid JSON."""
    return text.encode("utf-8", "backslashreplace")


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


def _nested_error(e: CodecError) -> str:
    # TF Serving embeds the inner Status via ToString(), which prefixes the code.
    return f"{e.code}: {e}"


# --------------------------------------------------------------------------- predict: request


def signature_name(request: Mapping[str, Any]) -> str:
    """FillSignature: the optional "signature_name" ("" when absent; the caller defaults it).

    Raises CodecError when it is not a string, with TF Serving's message.
    """
    if "signature_name" not in request:
        return ""
    value = request["signature_name"]
    if not isinstance(value, str):
        raise CodecError(
            f"JSON Value: {_value_str(request)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return value


def decode_predict_request(
    request: Mapping[str, Any],
    signature_inputs: Mapping[str, TensorInfo],
    signature: str = "",
    checkpoint: Checkpoint = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Turns a parsed :predict body into input arrays, as FillPredictRequestFromJson does.

    Returns (inputs, format) with format "row" ("instances") or "columnar" ("inputs"), which the
    response must echo. `signature` only names the signature in messages; "signature_name" is read
    by the caller (`signature_name`); other unknown keys are ignored. String inputs become object
    arrays of bytes; any shape passes (the model decides). `checkpoint` is called between rows.
    Raises CodecError (INVALID_ARGUMENT, or UNIMPLEMENTED for a dtype JSON can't express).
    """
    if not signature_inputs:
        raise CodecError(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
    if "instances" in request:
        if "inputs" in request:
            raise CodecError(
                f"JSON Value: {_value_str(request)} Not formatted correctly expecting only "
                "one of 'inputs' or 'instances' keys to exist "
            )
        return _decode_instances(request, signature_inputs, checkpoint), ROW
    if "inputs" in request:
        return _decode_inputs(request["inputs"], signature_inputs, checkpoint), COLUMNAR
    raise CodecError("Missing 'inputs' or 'instances' key")


def _decode_instances(
    request: Mapping[str, Any], infos: Mapping[str, TensorInfo], checkpoint: Checkpoint
) -> dict[str, np.ndarray]:
    instances = request["instances"]
    if not isinstance(instances, list):
        raise CodecError(f"JSON Value: {_value_str(request)} Excepting 'instances' to be an list/array")
    if not instances:
        raise CodecError(f"JSON Value: {_value_str(request)} No values in 'instances' array")
    objects = _is_element_object(instances[0])
    if not objects and len(infos) > 1:
        raise CodecError(
            "instances is a plain list, but expecting list of objects as multiple input tensors required "
            f"as per tensorinfo_map (inputs: {','.join(sorted(infos))})"
        )
    batch = _RowBatch(infos)
    for index, elem in enumerate(instances):
        if checkpoint is not None and index % 256 == 0:
            checkpoint()
        if objects:
            _add_object_element(batch, index, elem, infos)
        else:
            _add_plain_element(batch, index, elem, next(iter(infos)))
    return batch.arrays(len(instances))


def _is_element_object(val: Any) -> bool:
    return isinstance(val, dict) and not _is_b64_object(val)


def _add_object_element(batch: _RowBatch, index: int, elem: Any, infos: Mapping[str, TensorInfo]) -> None:
    if not _is_element_object(elem):
        raise CodecError(f"Expecting object but got list at item {index} of input list")
    for name, value in elem.items():
        try:
            batch.add(name, value)
        except CodecError as e:
            raise CodecError(
                f"Failed to process element: {index} key: {name} of 'instances' list. Error: {_nested_error(e)}"
            ) from None
    missing = sorted(set(infos) - set(elem))
    if missing:
        raise CodecError(
            f"Failed to process element: {index} of 'instances' list. JSON object: {_value_str(elem)} "
            f"keys must be equal to: {','.join(sorted(infos))} (missing: {','.join(missing)})"
        )


def _add_plain_element(batch: _RowBatch, index: int, elem: Any, name: str) -> None:
    if _is_element_object(elem):
        raise CodecError(f"Expecting value/list but got object at item {index} of input list")
    try:
        batch.add(name, elem)
    except CodecError as e:
        raise CodecError(
            f"Failed to process element: {index} of 'instances' list. Error: {_nested_error(e)} (input: {name})"
        ) from None


class _RowBatch:
    """Collects one input's values across 'instances' and enforces a common per-row shape."""

    def __init__(self, infos: Mapping[str, TensorInfo]):
        self._infos = infos
        self._flat: dict[str, list[Any]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def add(self, name: str, value: Any) -> None:
        if name not in self._infos:
            raise CodecError(f"JSON object: does not have named input: {name}")
        # One dimension is left for the batch.
        flat, shape = _json_to_flat(value, self._infos[name].numpy_dtype, MAX_RANK - 1)
        if name not in self._shapes:
            self._shapes[name] = shape
            self._flat[name] = []
        elif len(flat) != math.prod(self._shapes[name]):
            raise CodecError(f"Expecting tensor size: {math.prod(self._shapes[name])} but got: {len(flat)}")
        elif shape != self._shapes[name]:
            raise CodecError(f"Expecting shape {_shape_str(self._shapes[name])} but got: {_shape_str(shape)}")
        self._flat[name].extend(flat)

    def arrays(self, batch_size: int) -> dict[str, np.ndarray]:
        return {
            name: _to_array(self._flat[name], (batch_size,) + self._shapes[name], self._infos[name].numpy_dtype)
            for name in self._infos
        }


def _decode_inputs(value: Any, infos: Mapping[str, TensorInfo], checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64_object(value):
        if len(infos) > 1:
            raise CodecError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required "
                f"as per tensorinfo_map (inputs: {','.join(sorted(infos))})"
            )
        name = next(iter(infos))
        return {name: _decode_column(name, value, infos[name])}
    result = {}
    for name, info in infos.items():
        if checkpoint is not None:
            checkpoint()
        # Extra keys are ignored, as TF Serving only looks up the signature's names.
        if name not in value:
            raise CodecError(f"Missing named input: {name} in 'inputs' object.")
        result[name] = _decode_column(name, value[name], info)
    return result


def _decode_column(name: str, value: Any, info: TensorInfo) -> np.ndarray:
    try:
        flat, shape = _json_to_flat(value, info.numpy_dtype)
    except CodecError as e:
        # TF Serving returns the bare inner error (its code too); the input's name is appended.
        raise CodecError(f"{e} (input: {name})", e.code) from None
    return _to_array(flat, shape, info.numpy_dtype)


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


def _string_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _bytes_to_string_text(value: Any) -> str:
    return _string_text(_bytes_to_text(value))


def _bytes_to_b64_text(value: Any) -> str:
    return '{"b64":"' + base64.b64encode(_as_bytes(value)).decode("ascii") + '"}'


# --------------------------------------------------------------------------- classify / regress


def decode_examples(request: Mapping[str, Any], checkpoint: Checkpoint = None) -> list[bytes]:
    """A parsed :classify/:regress body -> serialized tf.Example protos, one per example.

    As FillClassifyRegressRequestFromJson + TF Serving's InputToSerializedExampleTensor: with a
    "context", each example is the serialized context followed by the serialized example (protobuf
    merge: the example's own feature wins). Values, as AddValueToFeature: bool/int -> int64_list,
    other numbers -> float_list (rounded to float32), string/{"b64"} -> bytes_list; one kind per
    feature ([1, 2.5] is refused, as TF Serving refuses it). `checkpoint` is called between examples.
    Raises CodecError with TF Serving's messages.
    """
    # Importing these protos loads the TensorFlow runtime (the package __init__ runs), so only
    # pay for it when a classify/regress request actually arrives.
    from tensorflow.core.example import example_pb2

    context = b""
    if "context" in request:
        context = _example_from_json(request["context"], example_pb2).SerializeToString()
    if "examples" not in request:
        # TF Serving says "classify" for :regress too.
        raise CodecError(
            f"JSON Value: {_value_str(request)} When method is classify, key 'examples' is expected and was not found"
        )
    examples = request["examples"]
    if not isinstance(examples, list):
        raise CodecError(f"JSON Value: {_value_str(request)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise CodecError(f"JSON Value: {_value_str(request)} 'examples' value is an empty array")
    serialized = []
    for index, value in enumerate(examples):
        if checkpoint is not None and index % 256 == 0:
            checkpoint()
        serialized.append(context + _example_from_json(value, example_pb2).SerializeToString())
    return serialized


def _example_from_json(value: Any, example_pb2: Any) -> Any:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise CodecError(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, content in value.items():
        _fill_feature(name, content if isinstance(content, list) else [content], features[name])
    return example


def _fill_feature(name: str, items: list, feature: Any) -> None:
    """AddValueToFeature for each item, in order: the first value fixes the feature's kind."""
    kind = None
    values: list = []
    for val in items:
        item_kind, item = _feature_value(name, val)
        if kind is None:
            kind = item_kind
        elif item_kind != kind:
            raise CodecError(f"Unexpected element type in feature: {name} expecting type: {kind}")
        values.append(item)
    if kind == "bytes":
        feature.bytes_list.value.extend(values)
    elif kind == "float":
        feature.float_list.value.extend([_get_float(v) for v in values])
    elif kind == "int64":
        feature.int64_list.value.extend(values)


def _get_float(value: float) -> float:
    """rapidjson's GetFloat(), static_cast<float>(double), as a double protobuf stores unchanged.

    Protobuf rounds in-range values the same way, but makes inf of anything beyond FLT_MAX, where the
    cast still gives FLT_MAX up to half an ulp above it.
    """
    if -_FLOAT32_MAX <= value <= _FLOAT32_MAX or value != value:
        return value
    if -_FLOAT32_ROUNDS_TO_INF < value < _FLOAT32_ROUNDS_TO_INF:
        return math.copysign(_FLOAT32_MAX, value)
    return math.copysign(math.inf, value)


def _feature_value(name: str, val: Any) -> tuple[str, Any]:
    """(kind, value) of one JSON value, or CodecError, as AddValueToFeature classifies it."""
    if isinstance(val, bool):
        return "int64", int(val)
    if isinstance(val, str):
        return "bytes", _text_bytes(val)
    if isinstance(val, dict):
        if not _is_b64_object(val):
            raise CodecError(f"Feature: {name} has element with unexpected JSON type: Object")
        return "bytes", _decode_b64_object(val)
    if val is None or isinstance(val, list):
        raise CodecError(f"Feature: {name} has element with unexpected JSON type: {_json_type(val)}")
    if _is_json_int(val):
        if val > _INT64_MAX:
            raise CodecError(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        return "int64", val
    return "float", _as_double(val)  # a decimal token, or an integer beyond uint64 (a double to rapidjson)


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
