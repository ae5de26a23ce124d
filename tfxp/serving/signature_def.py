"""The one description of a signature in tfxp.serving: `SignatureDef` and its `TensorInfo`s.

Used alike by the server (servable, data plane, REST and gRPC front ends, metadata) and by the
client (`tfxp.serving.client` re-exports both under its public names `Signature` and `TensorInfo`).
Field names are TF Serving's (`tensorflow/core/protobuf/meta_graph.proto`): a TensorInfo has
`dtype` ("DT_FLOAT", as `DataType_Name` spells it), `tensor_shape` (-1 for a dimension of any size,
None for an unknown rank) and `name` (the graph tensor, e.g. "x:0"; "" when not known); a
SignatureDef has `inputs`, `outputs` and `method_name`, and here also its key, `name`.

TF-free and numpy-free at import time (the client is a light import); numpy is loaded only to read
or give a numpy dtype (`TensorInfo(np.float32, ...)`, `TensorInfo.numpy_dtype`), which is the
server's side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

# The numpy-side spelling of DT_STRING (a numpy array of it holds bytes objects).
STRING = "string"

# tensorflow.DataType enum number -> DataType_Name, for the types numpy can hold. Types TF Serving's
# REST API can't convert (half, uint16, complex, bfloat16) are here so that their signatures load and
# serve over gRPC; JSON for them is refused as TF Serving refuses it.
_DT_NAMES = {
    1: "DT_FLOAT",
    2: "DT_DOUBLE",
    3: "DT_INT32",
    4: "DT_UINT8",
    5: "DT_INT16",
    6: "DT_INT8",
    7: "DT_STRING",
    8: "DT_COMPLEX64",
    9: "DT_INT64",
    10: "DT_BOOL",
    14: "DT_BFLOAT16",
    17: "DT_UINT16",
    18: "DT_COMPLEX128",
    19: "DT_HALF",
    22: "DT_UINT32",
    23: "DT_UINT64",
}
# DataType_Name -> numpy dtype name (DT_STRING is STRING).
_NUMPY_NAMES = {
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_INT32": "int32",
    "DT_UINT8": "uint8",
    "DT_INT16": "int16",
    "DT_INT8": "int8",
    "DT_COMPLEX64": "complex64",
    "DT_INT64": "int64",
    "DT_BOOL": "bool",
    "DT_BFLOAT16": "bfloat16",
    "DT_UINT16": "uint16",
    "DT_COMPLEX128": "complex128",
    "DT_HALF": "float16",
    "DT_UINT32": "uint32",
    "DT_UINT64": "uint64",
}
_DT_BY_NUMPY_NAME = {numpy_name: dt for dt, numpy_name in _NUMPY_NAMES.items()}


class UnsupportedDtypeError(ValueError):
    """A dtype the server can't hold in numpy (resource, variant, quantized types), or no dtype at all."""


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a SignatureDef.

    dtype: TF's DataType_Name ("DT_FLOAT", "DT_STRING", ...). Also accepted, and stored as that name:
      a numpy dtype or its name (np.float32, "float32"), "string" / str / bytes / object for DT_STRING.
      Raises UnsupportedDtypeError for a numpy dtype TF has no type for.
    tensor_shape: one entry per dimension, -1 for a dimension of any size (None is read as -1);
      None when the rank is unknown.
    name: the graph tensor ("x:0"); not part of equality (two signatures may name different tensors
      of the same spec).
    """

    dtype: str
    tensor_shape: tuple[int, ...] | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        if self.tensor_shape is not None:
            dims = tuple(-1 if d is None or int(d) < 0 else int(d) for d in self.tensor_shape)
            object.__setattr__(self, "tensor_shape", dims)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """`tensor_shape` (the client's name for it since tfxp 1.0)."""
        return self.tensor_shape

    @property
    def numpy_dtype(self) -> Any:
        """The numpy dtype of the tensor's values, or STRING ("string") for DT_STRING (values are bytes).

        Raises UnsupportedDtypeError for a dtype numpy can't hold (DT_RESOURCE, DT_VARIANT, ...).
        """
        return _numpy_dtype(self.dtype)

    @classmethod
    def from_proto(cls, proto: Any) -> TensorInfo:
        """From a `tensorflow.TensorInfo` message (as found in a SignatureDef), without importing TF.

        Raises UnsupportedDtypeError for a dtype numpy can't hold (resource, variant, quantized types).
        """
        if proto.dtype not in _DT_NAMES:
            raise UnsupportedDtypeError(f"Unsupported tensor dtype enum: {proto.dtype}")
        shape_proto = proto.tensor_shape
        dims = None if shape_proto.unknown_rank else tuple(d.size for d in shape_proto.dim)
        return cls(_DT_NAMES[proto.dtype], dims, proto.name)

    @classmethod
    def from_json(cls, info: Any) -> TensorInfo:
        """From a TensorInfo as JSON (REST metadata's `signature_def`, or gRPC's via MessageToDict)."""
        shape = info.get("tensor_shape") or {}
        # JSON writes int64 sizes as strings ("-1").
        dims = None if shape.get("unknown_rank") else tuple(int(d.get("size", -1)) for d in shape.get("dim") or ())
        return cls(info.get("dtype", "DT_INVALID"), dims, info.get("name", ""))


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: {tensor key: TensorInfo} of its inputs and outputs, its method name, and its key in the
    SignatureDefMap (`name`, not part of equality: it is where the signature is, not what it is)."""

    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str = ""
    name: str = field(default="", compare=False)


def dtype_name(dtype: Any) -> str:
    """TF's DataType_Name for `dtype` given as a DataType_Name, "string", or anything numpy reads as a dtype.

    A "DT_..." name is kept as given (a server may report types this server can't hold, e.g.
    DT_RESOURCE). Raises UnsupportedDtypeError for a numpy dtype TF has no type for.
    """
    if isinstance(dtype, str) and dtype.startswith("DT_"):
        return dtype
    if (isinstance(dtype, str) and dtype == STRING) or dtype is str or dtype is bytes or dtype is object:
        return "DT_STRING"
    import numpy as np  # the server's side: the client passes DataType_Names

    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedDtypeError(f"Unsupported tensor dtype: {dtype!r}") from exc
    if resolved.kind in "OSU":
        return "DT_STRING"
    if resolved.name not in _DT_BY_NUMPY_NAME:
        raise UnsupportedDtypeError(f"Unsupported tensor dtype: {resolved}")
    return _DT_BY_NUMPY_NAME[resolved.name]


@functools.cache
def _numpy_dtype(name: str) -> Any:
    if name == "DT_STRING":
        return STRING
    if name not in _NUMPY_NAMES:
        raise UnsupportedDtypeError(f"Unsupported tensor dtype: {name}")
    import numpy as np

    if name == "DT_BFLOAT16":
        import ml_dtypes  # TensorFlow's own numpy bfloat16 (a TensorFlow dependency)

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_NUMPY_NAMES[name])
