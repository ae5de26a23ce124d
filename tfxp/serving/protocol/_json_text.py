"""TF Serving's JSON text: reading it as rapidjson 1.1.0 does (parse_json) and writing it (dumps, to_utf8).

No tensors here: text <-> Python values. The rules are in `_json_common`'s docstring.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

from tfxp.serving.protocol._json_common import (
    _DBL_MAX_DIGITS,
    _INT64_MIN,
    _UINT64_MAX,
    CodecError,
    _json_default,
    _value_str,
)

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
