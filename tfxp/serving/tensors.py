"""TensorProto <-> numpy for the gRPC path, as TensorFlow's `Tensor::FromProto` / `Tensor::AsProtoField` do it.

Decoding (`to_ndarray`, `to_ndarrays`) follows `tensorflow/core/framework/tensor.cc`:
- the shape must be a valid TensorShape (at most 254 dims, sizes >= 0, element count within int64;
  `unknown_rank` is ignored, as TF does) — and have at most 32 dims, numpy's limit, where TF allows 254;
- values come from `tensor_content` (raw little-endian bytes, exactly count * itemsize of them) or,
  when that is empty, from the dtype's typed field (`float_val`, `int64_val`, `string_val`, ...);
- a typed field with fewer values than the shape holds is filled the way TF fills it: with the last
  value, or with zeros / empty strings when no value is sent (`tf.make_tensor_proto(0.0, shape=[n])`
  sends one value).

Two departures, both refusals where TF would answer something the client did not ask for or would
spend memory the request did not pay for:
- more values than the shape holds (TF keeps the first `count` and silently drops the rest) is an error;
- filling is bounded: a request may declare at most `MAX_FILL_BYTES` of elements it does not send, so a
  48-byte request claiming shape [10^8] is refused before anything is allocated.

Encoding (`to_tensor_proto`) puts values in the typed fields, as TF Serving's Predict does
(`predict_util.cc` answers with `Tensor::AsProtoField`), never in `tensor_content`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import ml_dtypes  # TensorFlow's own numpy bfloat16 (a TF dependency, locked)
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

# How many bytes of elements a request may declare beyond the values it sends (TF's fill convention).
# Small fills (a zero mask of [64, 512] floats is 128 KiB) pass; amplification of a tiny request does not.
MAX_FILL_BYTES = 4 * 2**20
MAX_DIMS = 254  # TensorShape::MaxDimensions()
NUMPY_MAX_DIMS = 32  # NPY_MAXDIMS of numpy 1.x: a tensor of higher rank can't be held here
_MAX_ELEMENTS = 2**63 - 1  # TensorShape keeps the element count in an int64
_STRING_ITEMSIZE = 8  # a filled DT_STRING element is one more pointer to the same bytes object


@dataclass(frozen=True)
class _Kind:
    """How one DataType is stored in a TensorProto's typed field.

    `wire` is the field's element type; `view` how a `dtype` value relates to it: "cast" (int_val holds
    int8/16 and uint8/16 widened to int32, narrowed back as TF's static_cast does), "bits" (half_val holds
    the 16-bit pattern of a half/bfloat16) or "pairs" (scomplex_val/dcomplex_val interleave real, imag).
    """

    dtype: np.dtype
    field: str
    wire: np.dtype
    view: str = "cast"

    def from_field(self, values) -> np.ndarray:
        wire = np.fromiter(values, self.wire, count=len(values))
        if self.view == "bits":
            return wire.astype(np.uint16).view(self.dtype)
        if self.view == "pairs":
            return wire.view(self.dtype)
        return wire.astype(self.dtype, copy=False)

    def to_field(self, array: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(array).reshape(-1)
        if self.view == "bits":
            return array.view(np.uint16).astype(self.wire)
        if self.view == "pairs":
            return array.view(self.wire)
        return array.astype(self.wire, copy=False)


def _typed(dtype, field: str, wire=None, view: str = "cast") -> _Kind:
    return _Kind(np.dtype(dtype), field, np.dtype(wire or dtype), view)


_KINDS: dict[int, _Kind] = {
    types_pb2.DT_FLOAT: _typed(np.float32, "float_val"),
    types_pb2.DT_DOUBLE: _typed(np.float64, "double_val"),
    types_pb2.DT_INT32: _typed(np.int32, "int_val"),
    types_pb2.DT_UINT8: _typed(np.uint8, "int_val", np.int32),
    types_pb2.DT_INT16: _typed(np.int16, "int_val", np.int32),
    types_pb2.DT_INT8: _typed(np.int8, "int_val", np.int32),
    types_pb2.DT_UINT16: _typed(np.uint16, "int_val", np.int32),
    types_pb2.DT_INT64: _typed(np.int64, "int64_val"),
    types_pb2.DT_BOOL: _typed(np.bool_, "bool_val"),
    types_pb2.DT_UINT32: _typed(np.uint32, "uint32_val"),
    types_pb2.DT_UINT64: _typed(np.uint64, "uint64_val"),
    types_pb2.DT_HALF: _typed(np.float16, "half_val", np.int32, "bits"),
    types_pb2.DT_BFLOAT16: _typed(ml_dtypes.bfloat16, "half_val", np.int32, "bits"),
    types_pb2.DT_COMPLEX64: _typed(np.complex64, "scomplex_val", np.float32, "pairs"),
    types_pb2.DT_COMPLEX128: _typed(np.complex128, "dcomplex_val", np.float64, "pairs"),
}
_NUMPY_TO_DT = {kind.dtype: dt for dt, kind in _KINDS.items()}
# Fields whose packed wire form is the values' little-endian bytes (bool: one varint byte, 0 or 1): a
# response's values are written by merging those bytes, ~100x faster than appending them one by one.
_RAW_FIELDS = {"float_val": "<f4", "double_val": "<f8", "scomplex_val": "<f4", "dcomplex_val": "<f8", "bool_val": "u1"}


class TensorProtoError(ValueError):
    """A TensorProto that does not describe a tensor (TF Serving: INVALID_ARGUMENT "tensor parsing error")."""

    def __init__(self, message: str, alias: str = ""):
        super().__init__(message)
        self.alias = alias


def dtype_name(array: np.ndarray) -> str:
    """TF's DataType_Name of a numpy array's dtype ("DT_FLOAT", "DT_STRING", ...), for error messages."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        return "DT_STRING"
    dt = _NUMPY_TO_DT.get(array.dtype)
    return types_pb2.DataType.Name(dt) if dt is not None else str(array.dtype)


def shape_string(shape) -> str:
    """A shape as TF's TensorShape::DebugString prints it: "[2,3]", "[]"."""
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


# --------------------------------------------------------------------------- decoding


def to_ndarrays(
    protos: Mapping[str, tensor_pb2.TensorProto], max_fill_bytes: int = MAX_FILL_BYTES
) -> dict[str, np.ndarray]:
    """A request's named TensorProtos -> arrays, with one fill budget for the whole request.

    Raises TensorProtoError (with `.alias`, the input's name) for the first tensor that can't be decoded.
    """
    arrays, budget = {}, max_fill_bytes
    for alias, proto in protos.items():
        try:
            arrays[alias], filled = _decode(proto, budget)
        except TensorProtoError as exc:
            raise TensorProtoError(str(exc), alias) from None
        budget -= filled
    return arrays


def to_ndarray(proto: tensor_pb2.TensorProto, max_fill_bytes: int = MAX_FILL_BYTES) -> np.ndarray:
    """One TensorProto -> an array of its dtype and shape (strings as an object array of bytes).

    Raises TensorProtoError: unsupported dtype (DT_RESOURCE, DT_VARIANT, quantized, ...), invalid shape,
    `tensor_content` of the wrong length, more values than the shape holds, or a fill beyond
    `max_fill_bytes`.
    """
    return _decode(proto, max_fill_bytes)[0]


def _decode(proto: tensor_pb2.TensorProto, max_fill_bytes: int) -> tuple[np.ndarray, int]:
    """(array, bytes of elements filled in beyond the values sent)."""
    is_string = proto.dtype == types_pb2.DT_STRING
    kind = None if is_string else _request_kind(proto.dtype)
    itemsize = _STRING_ITEMSIZE if is_string else kind.dtype.itemsize
    shape = _valid_shape(proto.tensor_shape)
    count = math.prod(shape)
    if count == 0 and math.prod(d for d in shape if d) * itemsize > _MAX_ELEMENTS:
        # TF takes [0, 2^62] (no elements); numpy refuses any shape whose nonzero dims overflow its sizes
        raise TensorProtoError(f"tensor_shape {shape_string(shape)} is too large for a numpy array, even empty")
    if proto.tensor_content:
        return _from_content(proto.tensor_content, kind, shape, count), 0
    values = proto.string_val if is_string else getattr(proto, kind.field)
    sent = _values_sent(values, kind, shape, count)
    filled = (count - sent) * itemsize
    if filled > max_fill_bytes:  # checked before anything of `count` elements is allocated
        raise TensorProtoError(
            f"shape {shape_string(shape)} declares {count} elements but sends {sent} value(s); "
            f"filling in the rest (TF's convention) is limited to {max_fill_bytes} bytes a request"
        )
    if not is_string and sent == count:
        return kind.from_field(values).reshape(shape), 0
    array = np.empty(count, dtype=object if is_string else kind.dtype)
    array[:sent] = list(values) if is_string else kind.from_field(values)
    if sent < count:  # tensor.cc FromProtoField: repeat the last value sent, or the dtype's zero
        array[sent:] = array[sent - 1] if sent else (b"" if is_string else 0)
    return array.reshape(shape), filled


def _values_sent(values, kind: _Kind | None, shape: tuple[int, ...], count: int) -> int:
    sent = len(values)
    if kind is not None and kind.view == "pairs":
        if sent % 2:
            raise TensorProtoError(f"{kind.field} has an odd number of values; they are (real, imaginary) pairs")
        sent //= 2
    if sent > count:  # TF keeps the first `count` and drops the rest: refused, never a silent answer
        raise TensorProtoError(f"{sent} values sent for shape {shape_string(shape)} of {count} elements")
    return sent


def _request_kind(dtype: int) -> _Kind:
    if dtype in _KINDS:
        return _KINDS[dtype]
    name = types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else f"DataType {dtype}"
    raise TensorProtoError(f"dtype {name} can't be sent in a request")


def _valid_shape(shape: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...]:
    """TensorShape::IsValid: <= 254 dims, sizes >= 0, element count within int64. Like TF (which keeps
    this for compatibility), `unknown_rank` is ignored: the dims given are the shape."""
    if len(shape.dim) > MAX_DIMS:
        raise TensorProtoError(f"tensor_shape has {len(shape.dim)} dimensions; at most {MAX_DIMS} are allowed")
    if len(shape.dim) > NUMPY_MAX_DIMS:
        raise TensorProtoError(
            f"tensor_shape has {len(shape.dim)} dimensions; this server takes at most "
            f"{NUMPY_MAX_DIMS} (numpy's limit; TensorFlow's is {MAX_DIMS})"
        )
    sizes = tuple(d.size for d in shape.dim)
    if any(size < 0 for size in sizes):
        raise TensorProtoError(f"tensor_shape {shape_string(sizes)} has a negative dimension")
    if math.prod(sizes) > _MAX_ELEMENTS:
        raise TensorProtoError(f"tensor_shape {shape_string(sizes)} has more than 2^63-1 elements")
    return sizes


def _from_content(content: bytes, kind: _Kind | None, shape: tuple[int, ...], count: int) -> np.ndarray:
    if kind is None:
        return _decode_string_list(content, count).reshape(shape)
    if len(content) != count * kind.dtype.itemsize:
        raise TensorProtoError(
            f"tensor_content has {len(content)} bytes; shape {shape_string(shape)} of "
            f"{types_pb2.DataType.Name(_NUMPY_TO_DT[kind.dtype])} needs {count * kind.dtype.itemsize}"
        )
    return np.frombuffer(content, dtype=kind.dtype).reshape(shape).copy()


def _decode_string_list(content: bytes, count: int) -> np.ndarray:
    """DT_STRING tensor_content (tensor_coding.cc EncodeStringList): `count` varint32 lengths, then the bytes."""
    if count > len(content):  # every length takes at least one byte
        raise TensorProtoError(f"DT_STRING tensor_content of {len(content)} bytes can't hold {count} strings")
    sizes, pos = [], 0
    for _ in range(count):
        size, shift = 0, 0
        while True:
            if pos >= len(content) or shift > 28:
                raise TensorProtoError("DT_STRING tensor_content has a malformed length")
            byte = content[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        sizes.append(size)
    if sum(sizes) != len(content) - pos:
        raise TensorProtoError("DT_STRING tensor_content lengths do not add up to its size")
    array = np.empty(count, dtype=object)
    for i, size in enumerate(sizes):
        array[i] = content[pos : pos + size]
        pos += size
    return array


# --------------------------------------------------------------------------- encoding


def to_tensor_proto(array: np.ndarray, proto: tensor_pb2.TensorProto | None = None) -> tensor_pb2.TensorProto:
    """An array -> TensorProto with its values in the dtype's typed field (Tensor::AsProtoField).

    Fills `proto` in place when given (e.g. `response.outputs[key]`), else a new one. Strings (object,
    bytes or str arrays) go to `string_val` (str as UTF-8). Dtypes without a typed field here
    (quantized, float8, ...) fall back to `tf.make_tensor_proto`.
    """
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto() if proto is None else proto
    proto.Clear()
    if array.dtype.kind not in "OSU" and array.dtype not in _NUMPY_TO_DT:
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(array))
        return proto
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape)
    if array.dtype.kind in "OSU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(_to_bytes(v) for v in array.reshape(-1))
        return proto
    proto.dtype = _NUMPY_TO_DT[array.dtype]
    kind = _KINDS[proto.dtype]
    values = kind.to_field(array)
    if kind.field in _RAW_FIELDS and values.size:
        raw = values.astype(_RAW_FIELDS[kind.field], copy=False).tobytes()
        proto.MergeFromString(_FIELD_TAGS[kind.field] + varint(len(raw)) + raw)
    else:
        getattr(proto, kind.field).extend(values.tolist())
    return proto


def varint(value: int) -> bytes:
    """`value` (>= 0) as a protobuf base-128 varint (the wire format of lengths and field tags)."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# The tag of each raw field in its packed (length-delimited, wire type 2) form.
_FIELD_TAGS = {
    name: varint(tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name[name].number << 3 | 2) for name in _RAW_FIELDS
}


def _to_bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
