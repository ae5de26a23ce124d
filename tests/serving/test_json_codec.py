"""TF Serving REST JSON codec: request decoding, response encoding, examples, and every error path."""
from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from serving.json_codec import (
    CodecError,
    TensorInfo,
    decode_examples,
    decode_predict_request,
    dumps,
    encode_classify_response,
    encode_predict_response,
    encode_regress_response,
    parse_json,
)

ONE_FLOAT = {"x": TensorInfo(np.float32, (None, 2))}
TWO_INPUTS = {"a": TensorInfo(np.int64, (None,)), "b": TensorInfo("string", (None,))}


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def _decode(body: str, infos) -> tuple[dict[str, np.ndarray], str]:
    return decode_predict_request(parse_json(body), infos)


# --------------------------------------------------------------------------- parse_json / dumps


def test_parse_json_accepts_nan_and_infinity_literals():
    doc = parse_json(b'{"inputs": [NaN, Infinity, -Infinity]}')
    assert math.isnan(doc["inputs"][0]) and doc["inputs"][1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"a": 1', b"\xff\xfe{}"])
def test_parse_json_rejects_malformed(body):
    with pytest.raises(CodecError, match="^JSON Parse error: "):
        parse_json(body)


def test_parse_json_requires_object_at_top_level():
    with pytest.raises(CodecError, match="Is not object"):
        parse_json("[1, 2]")


def test_dumps_is_compact_and_keeps_nan_literals():
    assert dumps({"a": [float("nan"), float("inf"), -float("inf")], "s": "é"}) == (
        '{"a":[NaN,Infinity,-Infinity],"s":"é"}'
    )
    assert dumps({"n": np.int64(3), "f": np.float32(0.5)}) == '{"n":3,"f":0.5}'


# --------------------------------------------------------------------------- row format


def test_row_single_input_plain_list():
    inputs, fmt = _decode('{"instances": [[1, 2.5], [3, 4]]}', ONE_FLOAT)
    assert fmt == "row"
    assert inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(inputs["x"], np.array([[1, 2.5], [3, 4]], np.float32))


def test_row_single_input_named_objects_are_accepted():
    inputs, _ = _decode('{"instances": [{"x": [1, 2]}, {"x": [3, 4]}]}', ONE_FLOAT)
    np.testing.assert_array_equal(inputs["x"], [[1, 2], [3, 4]])


def test_row_multiple_inputs_share_batch_dimension():
    body = '{"signature_name": "serving_default", "instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "é"}]}'
    inputs, fmt = _decode(body, TWO_INPUTS)
    assert fmt == "row"
    assert inputs["a"].dtype == np.int64 and inputs["a"].tolist() == [1, 2]
    assert inputs["b"].dtype == object and inputs["b"].tolist() == [b"x", "é".encode()]


def test_row_b64_values_become_bytes():
    infos = {"img_bytes": TensorInfo("string", (None,))}
    body = json.dumps({"instances": [_b64(b"\x00\xffpng"), _b64(b"")]})
    inputs, _ = _decode(body, infos)
    assert inputs["img_bytes"].tolist() == [b"\x00\xffpng", b""]


def test_row_b64_inside_named_object():
    body = json.dumps({"instances": [{"a": 7, "b": _b64(b"\x01\x02")}]})
    inputs, _ = _decode(body, TWO_INPUTS)
    assert inputs["b"].tolist() == [b"\x01\x02"]


def test_row_nan_and_infinity_for_float_input():
    inputs, _ = _decode('{"instances": [[NaN, Infinity], [-Infinity, 0]]}', ONE_FLOAT)
    x = inputs["x"]
    assert math.isnan(x[0, 0]) and x[0, 1] == np.inf and x[1, 0] == -np.inf


def test_unknown_top_level_keys_are_ignored():
    inputs, _ = _decode('{"instances": [[1, 2]], "whatever": {"x": 1}}', ONE_FLOAT)
    assert inputs["x"].shape == (1, 2)


def test_scalar_instances_and_bool_input():
    inputs, _ = _decode('{"instances": [true, false]}', {"flag": TensorInfo(np.bool_, (None,))})
    assert inputs["flag"].dtype == np.bool_ and inputs["flag"].tolist() == [True, False]


# --------------------------------------------------------------------------- columnar format


def test_columnar_single_value():
    inputs, fmt = _decode('{"inputs": [[1, 2], [3, 4], [5, 6]]}', ONE_FLOAT)
    assert fmt == "columnar" and inputs["x"].shape == (3, 2)


def test_columnar_named_inputs_may_have_different_batch_sizes():
    inputs, fmt = _decode('{"inputs": {"a": [1, 2, 3], "b": ["p"]}}', TWO_INPUTS)
    assert fmt == "columnar"
    assert inputs["a"].tolist() == [1, 2, 3] and inputs["b"].tolist() == [b"p"]


def test_columnar_single_b64_value_and_scalar():
    inputs, _ = _decode(json.dumps({"inputs": _b64(b"raw")}), {"s": TensorInfo("string", ())})
    assert inputs["s"].shape == () and inputs["s"].item() == b"raw"


def test_columnar_unknown_rank_accepts_any_shape():
    inputs, _ = _decode('{"inputs": [[[1]]]}', {"x": TensorInfo(np.int32, None)})
    assert inputs["x"].dtype == np.int32 and inputs["x"].shape == (1, 1, 1)


def test_columnar_float64_keeps_full_precision():
    inputs, _ = _decode('{"inputs": [0.1, 9007199254740991]}', {"d": TensorInfo(np.float64, (2,))})
    assert inputs["d"].tolist() == [0.1, 9007199254740991.0]


# --------------------------------------------------------------------------- request errors


def _error(body: str, infos) -> str:
    with pytest.raises(CodecError) as info:
        _decode(body, infos)
    return str(info.value)


def test_error_neither_key():
    assert _error('{"signature_name": "x"}', ONE_FLOAT) == "Missing 'inputs' or 'instances' key"


def test_error_both_keys():
    assert "expecting only one of 'inputs' or 'instances' keys" in _error(
        '{"inputs": [[1, 2]], "instances": [[1, 2]]}', ONE_FLOAT
    )


def test_error_empty_and_non_list_instances():
    assert "No values in 'instances' array" in _error('{"instances": []}', ONE_FLOAT)
    assert "'instances' to be an list/array" in _error('{"instances": {"x": 1}}', ONE_FLOAT)


def test_error_wrong_dtype_names_input_and_type():
    msg = _error('{"instances": [["a", 1]]}', ONE_FLOAT)
    assert msg.startswith("Failed to process element: 0 key: x of 'instances' list. Error: ")
    assert 'JSON Value: "a" Type: String is not of expected type: float' in msg


def test_error_number_for_string_input():
    msg = _error('{"instances": [{"a": 1, "b": 5}]}', TWO_INPUTS)
    assert "key: b of 'instances'" in msg and "Type: Number is not of expected type: string" in msg


def test_error_bool_mismatch_both_ways():
    assert "key: a " in _error('{"instances": [{"a": true, "b": "s"}]}', TWO_INPUTS)
    msg = _error('{"inputs": [1]}', {"flag": TensorInfo(np.bool_, None)})
    assert "input: flag" in msg and "is not of expected type: bool" in msg


def test_error_null_value():
    assert "Type: Null is not of expected type: int64" in _error('{"inputs": {"a": [null], "b": []}}', TWO_INPUTS)


def test_error_float_for_integer_input():
    msg = _error('{"instances": [{"a": 1.5, "b": "s"}]}', TWO_INPUTS)
    assert "key: a " in msg and "JSON Value: 1.5 Type: Number is not of expected type: int64" in msg
    # rapidjson keeps 2.0 as a double, so TF Serving rejects integral floats for int inputs as well.
    assert "not of expected type: int64" in _error('{"inputs": {"a": [2.0], "b": []}}', TWO_INPUTS)


def test_error_integer_out_of_range():
    assert "not of expected type: int32" in _error('{"inputs": [2147483648]}', {"i": TensorInfo(np.int32, None)})


def test_error_int_not_exactly_representable_as_float():
    msg = _error('{"inputs": [[16777217, 0]]}', ONE_FLOAT)
    assert "input: x" in msg and "Cannot convert JSON value: 16777217 to float without loss of precision." in msg


@pytest.mark.parametrize(
    "body, detail",
    [
        ('{"instances": [[[1, 2], [3]]]}', "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ('{"instances": [[[1, 2], 3]]}', "JSON Value: 3 found at incorrect level: 2"),
        ('{"instances": [[1, [2]]]}', "Encountered list at unexpected level: 1 expected < 1"),
    ],
)
def test_error_ragged_within_an_instance(body, detail):
    msg = _error(body, {"x": TensorInfo(np.float32, None)})
    assert "key: x of 'instances' list" in msg and detail in msg


def test_error_ragged_across_instances():
    msg = _error('{"instances": [[1, 2], [3]]}', ONE_FLOAT)
    assert msg.startswith("Failed to process element: 1 key: x ") and "Expecting tensor size: 2 but got: 1" in msg
    msg = _error('{"instances": [[[1, 2]], [[1], [2]]]}', {"x": TensorInfo(np.float32, None)})
    assert "Expecting shape [1,2] but got: [2,1]" in msg


def test_error_ragged_columnar():
    msg = _error('{"inputs": [[1, 2], [3]]}', ONE_FLOAT)
    assert "input: x" in msg and "Encountered list at unexpected size" in msg


def test_error_missing_key_in_row_object():
    msg = _error('{"instances": [{"a": 1}]}', TWO_INPUTS)
    assert "Failed to process element: 0 of 'instances' list" in msg
    assert "keys must be equal to: a,b" in msg and "(missing: b)" in msg


def test_error_extra_key_in_row_object():
    msg = _error('{"instances": [{"a": 1, "b": "s", "c": 2}]}', TWO_INPUTS)
    assert "Failed to process element: 0 key: c of 'instances' list" in msg
    assert "does not have named input: c" in msg


def test_error_plain_list_for_multiple_inputs():
    assert "instances is a plain list" in _error('{"instances": [1, 2]}', TWO_INPUTS)
    assert "inputs is a plain value/list" in _error('{"inputs": [1, 2]}', TWO_INPUTS)


def test_error_mixing_objects_and_values_in_instances():
    assert "Expecting object but got list at item 1" in _error(
        '{"instances": [{"a": 1, "b": "s"}, [1]]}', TWO_INPUTS
    )
    assert "Expecting value/list but got object at item 1" in _error(
        '{"instances": [[1, 2], {"x": [1, 2]}]}', ONE_FLOAT
    )


def test_error_missing_named_columnar_input():
    assert _error('{"inputs": {"a": [1]}}', TWO_INPUTS) == "Missing named input: b in 'inputs' object."


def test_error_b64_object_with_extra_keys():
    body = json.dumps({"instances": [{"a": 1, "b": {"b64": "eA==", "mime": "x"}}]})
    msg = _error(body, TWO_INPUTS)
    assert "key: b " in msg and "not formatted correctly for base64 data" in msg


def test_error_b64_invalid_and_for_numeric_input():
    assert "Unable to base64 decode" in _error('{"inputs": {"a": [], "b": [{"b64": "!!"}]}}', TWO_INPUTS)
    assert "Type: Object is not of expected type: float" in _error('{"inputs": [{"b64": "eA=="}]}', ONE_FLOAT)


def test_error_shape_mismatch_with_signature():
    msg = _error('{"instances": [[1, 2, 3]]}', ONE_FLOAT)
    assert msg == "Input: x has shape [1,3] which is incompatible with the signature's shape [-1,2]"
    assert "Input: x has shape [2]" in _error('{"inputs": [1, 2]}', ONE_FLOAT)
    fixed_batch = {"x": TensorInfo(np.float32, (1, 2))}
    assert "[2,2]" in _error('{"instances": [[1, 2], [3, 4]]}', fixed_batch)


# --------------------------------------------------------------------------- responses


def test_row_response_single_output_drops_name():
    out = encode_predict_response({"scores": np.array([[0.2, 0.8], [1, 0]], np.float32)}, "row")
    assert out == {"predictions": [[0.2, 0.8], [1.0, 0.0]]}
    # float32 is written at its own precision, not as the widened double.
    assert dumps(out) == '{"predictions":[[0.2,0.8],[1.0,0.0]]}'


def test_row_response_multiple_outputs_are_objects_per_row():
    outputs = {"label": np.array([b"cat", b"dog"], dtype=object), "prob": np.array([0.5, 0.25], np.float64)}
    assert encode_predict_response(outputs, "row") == {
        "predictions": [{"label": "cat", "prob": 0.5}, {"label": "dog", "prob": 0.25}]
    }


def test_columnar_response():
    assert encode_predict_response({"y": np.array([1, 2], np.int64)}, "columnar") == {"outputs": [1, 2]}
    outputs = {"y": np.array([1, 2], np.int64), "ok": np.array(True)}
    assert encode_predict_response(outputs, "columnar") == {"outputs": {"y": [1, 2], "ok": True}}


def test_bytes_outputs_b64_only_for_bytes_suffix():
    raw = b"\x89PNG\xff"
    outputs = {"image_bytes": np.array([raw], dtype=object), "text": np.array([raw], dtype=object)}
    rows = encode_predict_response(outputs, "row")["predictions"]
    assert rows[0]["image_bytes"] == {"b64": base64.b64encode(raw).decode()}
    assert base64.b64decode(rows[0]["image_bytes"]["b64"]) == raw
    assert rows[0]["text"] == raw.decode("utf-8", errors="replace")
    assert encode_predict_response({"s": np.array([b"ok"], dtype="S")}, "columnar") == {"outputs": ["ok"]}


def test_response_nan_and_infinity_literals():
    out = encode_predict_response({"y": np.array([np.nan, np.inf, -np.inf], np.float32)}, "columnar")
    assert dumps(out) == '{"outputs":[NaN,Infinity,-Infinity]}'


def test_response_scalars_are_python_types():
    out = encode_predict_response({"n": np.array([np.int64(3)]), "f": np.array([np.float64(0.5)])}, "row")
    value = out["predictions"][0]
    assert type(value["n"]) is int and type(value["f"]) is float


def test_response_errors():
    with pytest.raises(CodecError, match="Tensor name: b has inconsistent batch size: 3 expecting: 2"):
        encode_predict_response({"a": np.zeros(2), "b": np.zeros(3)}, "row")
    with pytest.raises(CodecError, match="Tensor name: s has no shape information"):
        encode_predict_response({"s": np.float32(1)}, "row")
    with pytest.raises(CodecError, match="empty tensor map"):
        encode_predict_response({}, "row")
    with pytest.raises(CodecError, match="Invalid request format"):
        encode_predict_response({"a": np.zeros(1)}, "rows")


def test_round_trip_through_json_text():
    infos = {"img_bytes": TensorInfo("string", (None,)), "k": TensorInfo(np.float32, (None,))}
    request = {"instances": [{"img_bytes": _b64(b"\x00\x01"), "k": 0.5}]}
    inputs, fmt = decode_predict_request(parse_json(dumps(request)), infos)
    response = parse_json(dumps(encode_predict_response(inputs, fmt)))
    assert response == {"predictions": [{"img_bytes": _b64(b"\x00\x01"), "k": 0.5}]}


def test_classify_and_regress_responses():
    out = encode_classify_response([[("a", 0.1), ("b", 0.9)], [("a", 1.0), ("b", 0.0)]])
    assert dumps(out) == '{"results":[[["a",0.1],["b",0.9]],[["a",1.0],["b",0.0]]]}'
    assert encode_regress_response([1.5, float("nan")])["results"][0] == 1.5
    assert dumps(encode_regress_response([0.3])) == '{"results":[0.3]}'
    with pytest.raises(CodecError):
        encode_classify_response([])
    with pytest.raises(CodecError):
        encode_regress_response([])


# --------------------------------------------------------------------------- examples


@pytest.fixture(scope="module")
def example_pb2():
    from tensorflow.core.example import example_pb2

    return example_pb2


def test_decode_examples_merges_context_and_decodes_b64(example_pb2):
    request = parse_json(
        json.dumps(
            {
                "signature_name": "classify",
                "context": {"company": "Flash Cab", "fare": 1.0},
                "examples": [
                    {"trip_miles": [1.5, 2], "payment": "Cash", "img": _b64(b"\xff\x00"), "flag": True},
                    {"trip_miles": 3, "fare": 9.5},
                ],
            }
        )
    )
    first, second = (example_pb2.Example.FromString(b) for b in decode_examples(request))
    f1, f2 = first.features.feature, second.features.feature
    assert f1["company"].bytes_list.value == [b"Flash Cab"]
    assert list(f1["trip_miles"].float_list.value) == [1.5, 2.0]
    assert f1["payment"].bytes_list.value == [b"Cash"]
    assert f1["img"].bytes_list.value == [b"\xff\x00"]
    assert f1["flag"].int64_list.value == [1]
    assert f1["fare"].float_list.value == [1.0]
    assert f2["trip_miles"].int64_list.value == [3]
    assert f2["fare"].float_list.value == [9.5]  # the example overrides the context
    assert f2["company"].bytes_list.value == [b"Flash Cab"]


def test_decode_examples_without_context_and_empty_list(example_pb2):
    (raw,) = decode_examples({"examples": [{"ids": [1, 2, 3], "none": []}]})
    feature = example_pb2.Example.FromString(raw).features.feature
    assert feature["ids"].int64_list.value == [1, 2, 3]
    assert feature["none"].WhichOneof("kind") is None


@pytest.mark.parametrize(
    "request_, detail",
    [
        ({"context": {"a": 1}}, "key 'examples' is expected and was not found"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": {"a": 1}}, "Expecting 'examples' value to be an list/array"),
        ({"examples": [[1]]}, "Example must be JSON object but got JSON Array"),
        ({"examples": [{"f": None}]}, "Feature: f has element with unexpected JSON type: Null"),
        ({"examples": [{"f": [[1]]}]}, "Feature: f has element with unexpected JSON type: Array"),
        ({"examples": [{"f": {"b64": "eA==", "x": 1}}]}, "Feature: f has element with unexpected JSON type: Object"),
        ({"examples": [{"f": ["s", 1]}]}, "Unexpected element type in feature: f expecting type: bytes"),
        ({"examples": [{"f": [2**63]}]}, "Feature: f has uint64 element"),
        ({"examples": [{"f": {"b64": "!!"}}]}, "Unable to base64 decode"),
        ({"context": [1], "examples": [{}]}, "Example must be JSON object"),
    ],
)
def test_decode_examples_errors(request_, detail):
    with pytest.raises(CodecError) as info:
        decode_examples(request_)
    assert detail in str(info.value)


# --------------------------------------------------------------------------- TensorInfo


def test_tensor_info_normalizes_dtype_and_unknown_dims():
    assert TensorInfo("float32", (-1, 3)) == TensorInfo(np.float32, (None, 3))
    assert TensorInfo(object, None).dtype == "string"


def test_tensor_info_from_signature_proto():
    from tensorflow.core.protobuf import meta_graph_pb2

    proto = meta_graph_pb2.TensorInfo(dtype=1)
    proto.tensor_shape.dim.add(size=-1)
    proto.tensor_shape.dim.add(size=4)
    assert TensorInfo.from_proto(proto) == TensorInfo(np.float32, (None, 4))
    proto = meta_graph_pb2.TensorInfo(dtype=7)
    proto.tensor_shape.unknown_rank = True
    assert TensorInfo.from_proto(proto) == TensorInfo("string", None)
