"""TF Serving's JSON requests -> numpy: :predict in row ("instances") and columnar ("inputs") format, and
:classify/:regress "examples" (+ "context") -> serialized tf.Examples.

As FillPredictRequestFromJson / FillClassifyRegressRequestFromJson. The rules are in `_json_common`'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfxp.serving.protocol._json_common import (
    _FLOAT32_MAX,
    _FLOAT32_ROUNDS_TO_INF,
    _INT64_MAX,
    COLUMNAR,
    MAX_RANK,
    ROW,
    Checkpoint,
    CodecError,
    _json_type,
    _nested_error,
    _shape_str,
    _value_str,
)
from tfxp.serving.protocol._json_values import (
    _as_double,
    _decode_b64_object,
    _is_b64_object,
    _is_json_int,
    _json_to_flat,
    _text_bytes,
    _to_array,
)
from tfxp.serving.signature_def import TensorInfo

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
        self._dtypes = {name: info.numpy_dtype for name, info in infos.items()}  # read once, used per row
        self._flat: dict[str, list[Any]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}

    def add(self, name: str, value: Any) -> None:
        if name not in self._infos:
            raise CodecError(f"JSON object: does not have named input: {name}")
        # One dimension is left for the batch.
        flat, shape = _json_to_flat(value, self._dtypes[name], MAX_RANK - 1)
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
            name: _to_array(self._flat[name], (batch_size,) + self._shapes[name], self._dtypes[name])
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
