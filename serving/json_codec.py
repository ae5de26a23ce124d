"""TF Serving's REST JSON <-> numpy, matching `tensorflow_serving/util/json_tensor.cc`.

Pure functions, no HTTP. Error messages reuse TF Serving's wording so clients that
match on them behave the same against this server and the real `tensorflow/serving`;
where TF Serving's message does not say which input failed, the input's name is added.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

ROW = "row"
COLUMNAR = "columnar"
STRING = "string"

_B64_KEY = "b64"
_BYTES_SUFFIX = "_bytes"
# TF Serving prints the whole offending JSON value (even the whole request); cap it so
# one bad multi-megabyte request does not echo itself back.
_MAX_VALUE_CHARS = 1000

# tensorflow.DataType enum numbers -> numpy, so signatures can be read without TF.
_DT_ENUM_TO_DTYPE: dict[int, Union[np.dtype, str]] = {
    1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32),
    4: np.dtype(np.uint8), 5: np.dtype(np.int16), 6: np.dtype(np.int8), 7: STRING,
    9: np.dtype(np.int64), 10: np.dtype(np.bool_), 17: np.dtype(np.uint16),
    19: np.dtype(np.float16), 22: np.dtype(np.uint32), 23: np.dtype(np.uint64),
}
# numpy -> TF's DataTypeString(), which TF Serving puts in its type errors.
_TF_TYPE_NAMES = {
    "float32": "float", "float64": "double", "float16": "half", "bool": "bool",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
}
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

DType = Union[np.dtype, str]
Shape = tuple[Union[int, None], ...]


class CodecError(ValueError):
    """A request or response that TF Serving would reject; the message is the REST error body (400)."""


@dataclass(frozen=True)
class TensorInfo:
    """What a signature says about one tensor.

    dtype: a numpy dtype, or "string" for DT_STRING (values are bytes).
    shape: one entry per dimension, None for an unknown size; shape=None means unknown rank.
    """

    dtype: DType
    shape: Union[Shape, None] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _normalize_dtype(self.dtype))
        if self.shape is not None:
            # -1 is how TensorShapeProto spells an unknown dimension.
            dims = tuple(None if d is None or int(d) < 0 else int(d) for d in self.shape)
            object.__setattr__(self, "shape", dims)

    @classmethod
    def from_proto(cls, proto: Any) -> "TensorInfo":
        """From a `tensorflow.TensorInfo` message (as found in a SignatureDef), without importing TF."""
        if proto.dtype not in _DT_ENUM_TO_DTYPE:
            raise CodecError(f"Unsupported tensor dtype enum: {proto.dtype}")
        shape_proto = proto.tensor_shape
        if shape_proto.unknown_rank:
            return cls(_DT_ENUM_TO_DTYPE[proto.dtype], None)
        return cls(_DT_ENUM_TO_DTYPE[proto.dtype], tuple(d.size for d in shape_proto.dim))


def _normalize_dtype(dtype: Any) -> DType:
    if isinstance(dtype, str) and dtype in (STRING, "DT_STRING"):
        return STRING
    if dtype in (str, bytes, object) or (isinstance(dtype, np.dtype) and dtype.kind in "OSU"):
        return STRING
    resolved = np.dtype(dtype)
    if resolved.name not in _TF_TYPE_NAMES:
        raise CodecError(f"Unsupported tensor dtype: {resolved}")
    return resolved


def _tf_type_name(dtype: DType) -> str:
    return STRING if dtype == STRING else _TF_TYPE_NAMES[np.dtype(dtype).name]


# --------------------------------------------------------------------------- JSON text


def parse_json(body: Union[bytes, str]) -> Any:
    """Parses a request body; NaN/Infinity/-Infinity literals are accepted, as TF Serving does.

    Raises CodecError("JSON Parse error: ...") on malformed JSON and when the top level is not an object.
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CodecError(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    if not body.strip():
        raise CodecError("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise CodecError(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except RecursionError:
        raise CodecError("JSON Parse error: The document is nested too deeply") from None
    except ValueError as e:  # e.g. Python's limit on the digits of an integer literal
        raise CodecError(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise CodecError(f"JSON Value: {_value_str(doc)} Is not object")
    return doc


def dumps(obj: Any) -> str:
    """Compact JSON with NaN/Infinity literals (TF Serving emits them) and raw UTF-8 like rapidjson."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)):
        return _tensor_to_json(np.asarray(obj), as_b64=False)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _value_str(val: Any) -> str:
    """TF Serving's JsonValueToString (rapidjson PrettyWriter: 4-space indent)."""
    text = json.dumps(val, indent=4, ensure_ascii=False, allow_nan=True)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."


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


def _type_error(val: Any, dtype: DType) -> CodecError:
    return CodecError(
        f"JSON Value: {_value_str(val)} Type: {_json_type(val)} is not of expected type: {_tf_type_name(dtype)}"
    )


def _lossy_error(val: Any, target: str) -> CodecError:
    return CodecError(f"Cannot convert JSON value: {_value_str(val)} to {target} without loss of precision.")


def _is_json_int(val: Any) -> bool:
    """True where rapidjson would hold an integer: integer tokens within [int64 min, uint64 max]."""
    return isinstance(val, int) and not isinstance(val, bool) and _INT64_MIN <= val <= _UINT64_MAX


def _is_number(val: Any) -> bool:
    return isinstance(val, (int, float)) and not isinstance(val, bool)


def _is_lossless(val: Any, dtype: np.dtype) -> bool:
    """rapidjson's IsLosslessDecimal: ints must fit the mantissa, doubles the float's range."""
    try:
        as_float = float(val)
    except OverflowError:  # an integer token too long for any double
        return False
    if not math.isfinite(as_float):
        return True
    if _is_json_int(val):
        return abs(val) <= 2 ** (np.finfo(dtype).nmant + 1) - 1
    return abs(as_float) <= float(np.finfo(dtype).max)


def _convert_scalar(val: Any, dtype: DType) -> Any:
    """One leaf value, checked the way AddValueToTensor does."""
    if dtype == STRING:
        if isinstance(val, dict):
            return _decode_b64_object(val)
        if not isinstance(val, str):
            raise _type_error(val, dtype)
        return val.encode("utf-8", "surrogatepass")
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        if not isinstance(val, bool):
            raise _type_error(val, dtype)
        return val
    if dtype.kind == "f":
        if not _is_number(val):
            raise _type_error(val, dtype)
        if not _is_lossless(val, dtype):
            raise _lossy_error(val, _tf_type_name(dtype))
        return val
    # Integers: a JSON float token (even 1.0) is not an int to rapidjson, so TF Serving rejects it.
    info = np.iinfo(dtype)
    if not _is_json_int(val) or not info.min <= val <= info.max:
        raise _type_error(val, dtype)
    return val


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


def _fill(val: Any, level: int, shape: list[int], dtype: DType, out: list[Any]) -> None:
    """FillTensorProto: every leaf at depth == rank, every list as long as the first one at its level."""
    rank = len(shape)
    if not isinstance(val, list):
        if level != rank:
            raise CodecError(
                f"JSON Value: {_value_str(val)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        out.append(_convert_scalar(val, dtype))
        return
    if level >= rank:
        raise CodecError(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(val) != shape[level]:
        raise CodecError(
            f"Encountered list at unexpected size: {len(val)} at level: {level} expected size: {shape[level]}"
        )
    for item in val:
        _fill(item, level + 1, shape, dtype, out)


def _json_to_flat(val: Any, dtype: DType) -> tuple[list[Any], tuple[int, ...]]:
    shape = _dense_shape(val)
    flat: list[Any] = []
    _fill(val, 0, shape, dtype, flat)
    return flat, tuple(shape)


def _to_array(flat: list[Any], shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    if dtype == STRING:
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        return arr.reshape(shape)
    return np.array(flat, dtype=dtype).reshape(shape)


def _check_shape(name: str, arr: np.ndarray, info: TensorInfo) -> None:
    if info.shape is None:
        return
    compatible = len(arr.shape) == len(info.shape) and all(
        want is None or want == got for want, got in zip(info.shape, arr.shape)
    )
    if not compatible:
        raise CodecError(
            f"Input: {name} has shape {_shape_str(arr.shape)} which is incompatible with "
            f"the signature's shape {_shape_str(info.shape)}"
        )


def _nested_error(e: CodecError) -> str:
    # TF Serving embeds the inner Status via ToString(), which prefixes the code.
    return f"INVALID_ARGUMENT: {e}"


# --------------------------------------------------------------------------- predict: request


def decode_predict_request(
    request: Mapping[str, Any], signature_inputs: Mapping[str, TensorInfo]
) -> tuple[dict[str, np.ndarray], str]:
    """Turns a parsed :predict body into input arrays, as FillPredictRequestFromJson does.

    Returns (inputs, format) with format "row" ("instances") or "columnar" ("inputs"), which the
    response must echo. "signature_name" is left to the caller; other unknown keys are ignored.
    String inputs become object arrays of bytes. Raises CodecError naming the failing input.
    """
    if not signature_inputs:
        raise CodecError("Failed to get input map for signature")
    if "instances" in request:
        if "inputs" in request:
            raise CodecError(
                f"JSON Value: {_value_str(request)} Not formatted correctly expecting only "
                "one of 'inputs' or 'instances' keys to exist "
            )
        inputs = _decode_instances(request, signature_inputs)
        fmt = ROW
    elif "inputs" in request:
        inputs = _decode_inputs(request["inputs"], signature_inputs)
        fmt = COLUMNAR
    else:
        raise CodecError("Missing 'inputs' or 'instances' key")
    for name, arr in inputs.items():
        _check_shape(name, arr, signature_inputs[name])
    return inputs, fmt


def _decode_instances(request: Mapping[str, Any], infos: Mapping[str, TensorInfo]) -> dict[str, np.ndarray]:
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
        if objects:
            _add_object_element(batch, index, elem, infos)
        else:
            _add_plain_element(batch, index, elem, next(iter(infos)))
    return batch.arrays(len(instances))


def _is_element_object(val: Any) -> bool:
    return isinstance(val, dict) and not _is_b64_object(val)


def _add_object_element(batch: "_RowBatch", index: int, elem: Any, infos: Mapping[str, TensorInfo]) -> None:
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


def _add_plain_element(batch: "_RowBatch", index: int, elem: Any, name: str) -> None:
    if _is_element_object(elem):
        raise CodecError(f"Expecting value/list but got object at item {index} of input list")
    try:
        batch.add(name, elem)
    except CodecError as e:
        # TF Serving omits the key here; it is added because it is the first thing users ask for.
        raise CodecError(
            f"Failed to process element: {index} key: {name} of 'instances' list. Error: {_nested_error(e)}"
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
        flat, shape = _json_to_flat(value, self._infos[name].dtype)
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
            name: _to_array(self._flat[name], (batch_size,) + self._shapes[name], self._infos[name].dtype)
            for name in self._infos
        }


def _decode_inputs(value: Any, infos: Mapping[str, TensorInfo]) -> dict[str, np.ndarray]:
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
        # Extra keys are ignored, as TF Serving only looks up the signature's names.
        if name not in value:
            raise CodecError(f"Missing named input: {name} in 'inputs' object.")
        result[name] = _decode_column(name, value[name], info)
    return result


def _decode_column(name: str, value: Any, info: TensorInfo) -> np.ndarray:
    try:
        flat, shape = _json_to_flat(value, info.dtype)
    except CodecError as e:
        # TF Serving returns the bare inner error here; the prefix says which input it was.
        raise CodecError(f"Failed to process input: {name} of 'inputs'. Error: {_nested_error(e)}") from None
    return _to_array(flat, shape, info.dtype)


# --------------------------------------------------------------------------- predict: response


def encode_predict_response(outputs: Mapping[str, Any], format: str) -> dict[str, Any]:
    """Output arrays -> the :predict response object, as MakeJsonFromTensors does.

    Row: {"predictions": [...]} split along dim 0 (a list of {name: value} objects when there are
    several outputs, which must then share dim 0). Columnar: {"outputs": value | {name: value}}.
    Bytes become {"b64": ...} for outputs named "*_bytes", else UTF-8 text (invalid bytes replaced).
    """
    if not outputs:
        raise CodecError("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if format == ROW:
        return {"predictions": _row_predictions(arrays)}
    if format == COLUMNAR:
        values = {name: _tensor_to_json(arr, name.endswith(_BYTES_SUFFIX)) for name, arr in arrays.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    raise CodecError("Invalid request format")


def _row_predictions(arrays: Mapping[str, np.ndarray]) -> list[Any]:
    batch_size = None
    for name, arr in arrays.items():
        if arr.ndim == 0:
            raise CodecError(f"Tensor name: {name} has no shape information ")
        if batch_size is not None and arr.shape[0] != batch_size:
            raise CodecError(
                f"Tensor name: {name} has inconsistent batch size: {arr.shape[0]} expecting: {batch_size}"
            )
        batch_size = arr.shape[0]
    values = {name: _tensor_to_json(arr, name.endswith(_BYTES_SUFFIX)) for name, arr in arrays.items()}
    if len(values) == 1:
        return next(iter(values.values()))
    return [{name: rows[i] for name, rows in values.items()} for i in range(batch_size or 0)]


def _tensor_to_json(arr: np.ndarray, as_b64: bool) -> Any:
    kind = arr.dtype.kind
    if kind == "f":
        return _shortest_floats(arr).tolist()
    if kind in "biu":
        return arr.tolist()
    if kind in "OSU":
        leaf = _bytes_to_b64 if as_b64 else _bytes_to_text
        return _map_leaves(arr.tolist(), leaf)
    raise CodecError(f"Failed to write JSON value for tensor type: {arr.dtype}")


def _shortest_floats(arr: np.ndarray) -> np.ndarray:
    # float32 widened to double prints noise digits (0.2 -> 0.20000000298023224); TF Serving
    # writes the shortest text that round-trips in the tensor's own precision, and so does this.
    if arr.dtype.itemsize >= 8:
        return arr.astype(np.float64)
    return arr.astype(str).astype(np.float64)


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


def _bytes_to_b64(value: Any) -> dict[str, str]:
    return {_B64_KEY: base64.b64encode(_as_bytes(value)).decode("ascii")}


def _bytes_to_text(value: Any) -> str:
    return value if isinstance(value, str) else _as_bytes(value).decode("utf-8", errors="replace")


def _float32_text(value: float) -> float:
    """A proto `float` (classify scores, regress values) as TF Serving prints it."""
    return float(str(np.float32(value)))


# --------------------------------------------------------------------------- classify / regress


def decode_examples(request: Mapping[str, Any]) -> list[bytes]:
    """A parsed :classify/:regress body -> serialized tf.train.Example protos, one per example.

    Context features are merged into every example; an example's own feature wins, as when TF
    Serving parses an ExampleListWithContext. Values: int/bool -> int64_list, float -> float_list,
    str/{"b64"} -> bytes_list; a list holds one kind (ints mixed with floats become a float_list).
    """
    # Importing these protos loads the TensorFlow runtime (the package __init__ runs), so only
    # pay for it when a classify/regress request actually arrives.
    from tensorflow.core.example import example_pb2, feature_pb2

    context = {}
    if "context" in request:
        context = _features_from_json(request["context"], feature_pb2)
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
    for value in examples:
        features = {**context, **_features_from_json(value, feature_pb2)}
        example = example_pb2.Example(features=feature_pb2.Features(feature=features))
        serialized.append(example.SerializeToString())
    return serialized


def _features_from_json(value: Any, feature_pb2: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(f"Example must be JSON object but got JSON {_json_type(value)}")
    return {name: _feature_from_json(name, content, feature_pb2) for name, content in value.items()}


def _feature_from_json(name: str, content: Any, feature_pb2: Any) -> Any:
    items = content if isinstance(content, list) else [content]
    kinds = [_feature_kind(name, item) for item in items]
    if not kinds:
        return feature_pb2.Feature()
    kind = _common_kind(name, kinds)
    if kind == "bytes":
        values = [_decode_b64_object(v) if isinstance(v, dict) else v.encode("utf-8", "surrogatepass") for v in items]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=values))
    if kind == "float":
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[float(v) for v in items]))
    return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(v) for v in items]))


def _feature_kind(name: str, val: Any) -> str:
    """AddValueToFeature's classification of one JSON value."""
    if isinstance(val, bool):
        return "int64"
    if isinstance(val, str) or _is_b64_object(val):
        return "bytes"
    if val is None or isinstance(val, (dict, list)):
        raise CodecError(f"Feature: {name} has element with unexpected JSON type: {_json_type(val)}")
    if _is_json_int(val):
        if val > _INT64_MAX:
            raise CodecError(f"Feature: {name} has uint64 element. Only int64 is supported.")
        return "int64"
    if not _is_lossless(val, np.dtype(np.float32)):
        raise _lossy_error(val, "float")
    return "float"


def _common_kind(name: str, kinds: list[str]) -> str:
    distinct = set(kinds)
    if len(distinct) == 1:
        return kinds[0]
    # TF Serving rejects [1, 2.5]; promoting to float is deliberately more lenient.
    if distinct == {"int64", "float"}:
        return "float"
    raise CodecError(f"Unexpected element type in feature: {name} expecting type: {kinds[0]}")


def encode_classify_response(results: list[list[tuple[str, float]]]) -> dict[str, Any]:
    """Per example, its (label, score) pairs -> {"results": [[["label", score], ...], ...]}."""
    if not results:
        raise CodecError("Cannot convert empty ClassificationResults to JSON")
    return {
        "results": [
            [[_bytes_to_text(label), _float32_text(score)] for label, score in classes] for classes in results
        ]
    }


def encode_regress_response(values: list[float]) -> dict[str, Any]:
    """One regression value per example -> {"results": [v, ...]}."""
    if len(values) == 0:
        raise CodecError("Cannot convert empty RegressionResults to JSON")
    return {"results": [_float32_text(v) for v in values]}
