"""TF Serving REST JSON codec: request decoding, response encoding, examples, and every error path."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from tfxp.serving.protocol import (
    CodecError,
    TensorInfo,
    decimal_texts,
    decode_examples,
    decode_predict_request,
    dumps,
    encode_classify_response,
    encode_predict_response,
    encode_regress_response,
    parse_json,
    signature_name,
    to_utf8,
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


@pytest.mark.parametrize(
    "token, expected",
    [
        ("NaN", "nan"),
        ("-NaN", "nan"),
        ("Inf", "inf"),
        ("-Inf", "-inf"),
        ("Infinity", "inf"),
        ("-Infinity", "-inf"),
    ],
)
def test_parse_json_reads_rapidjsons_nan_and_inf_spellings(token, expected):
    # rapidjson 1.1.0 ParseNumber with kParseNanAndInfFlag: "-NaN" is NaN, "Inf" and "Infinity" both infinite.
    doc = parse_json(f'{{"s": "Inf -NaN", "inputs": [{token}]}}'.encode())
    assert repr(doc["inputs"][0]) == expected and doc["s"] == "Inf -NaN"  # strings are left alone


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b" \n", "JSON Parse error: The document is empty. at offset: 2"),
        (b"instances = [1, 2]", "JSON Parse error: Invalid value. at offset: 0"),
        (b"[1 2]", "JSON Parse error: Missing a comma or ']' after an array element. at offset: 3"),
        (b'{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
        (b'{"a": 1,}', "JSON Parse error: Missing a name for object member. at offset: 8"),
        (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
        (b'{"a": 1} x', "JSON Parse error: The document root must not be followed by other values. at offset: 9"),
        (b'{"a": "b', "JSON Parse error: Missing a closing quotation mark in string. at offset: 6"),
        (b'{"a": [1.]}', "JSON Parse error: Miss fraction part in number. at offset: 9"),
        (b'{"a": [Infinit]}', "JSON Parse error: Invalid value. at offset: 7"),
        (b'{"a": [1e309]}', "JSON Parse error: Number too big to be stored in double. at offset: 7"),
        (b'{"a": [' + b"9" * 400 + b"]}", "JSON Parse error: Number too big to be stored in double. at offset: 7"),
        (b'{"a": [' + b"9" * 4301 + b"]}", "JSON Parse error: Number too big to be stored in double. at offset: 7"),
        (b'{"signature_name": "\\ud800"}', "JSON Parse error: The surrogate pair in string is invalid. at offset: 20"),
        (
            b'{"p": "\\ud83d\\ude00", "s": "\\ud800x"}',
            "JSON Parse error: The surrogate pair in string is invalid. at offset: 28",
        ),
        (b'{"a": "\xc3\xa9", "b": "\xff"}', "JSON Parse error: Invalid encoding in string. at offset: 18"),
        (b"[" * 100_000, "JSON Parse error: The document is nested too deeply"),
    ],
)
def test_parse_json_errors_are_rapidjsons(body, message):
    with pytest.raises(CodecError) as info:
        parse_json(body)
    assert str(info.value).startswith(message) and info.value.code == "INVALID_ARGUMENT"


def test_parse_json_numbers_as_rapidjson_stores_them():
    doc = parse_json(b'\xef\xbb\xbf{"a": [1e308, 18446744073709551615, 18446744073709551616, -9223372036854775809]}')
    assert doc["a"][0] == 1e308
    assert doc["a"][1] == 2**64 - 1 and isinstance(doc["a"][1], int)  # uint64: still an integer
    # Beyond [int64 min, uint64 max] rapidjson holds a double: fine for a float input, not for an integer one.
    big = '{"inputs": [18446744073709551616, -9223372036854775809]}'
    assert _decode(big, {"d": TensorInfo(np.float64, None)})[0]["d"].tolist() == [2.0**64, -(2.0**63)]
    assert "is not of expected type: uint64" in _error(big, {"u": TensorInfo(np.uint64, None)})
    assert _decode('{"inputs": [18446744073709551615]}', {"u": TensorInfo(np.uint64, None)})[0]["u"][0] == 2**64 - 1
    # A lone low surrogate is kept (rapidjson writes its 3 UTF-8 bytes); a valid pair is one character.
    doc = parse_json(b'{"s": "\\udc00", "p": "\\ud83d\\ude00", "literal": "\\\\ud800"}')
    assert doc == {"s": "\udc00", "p": "\U0001f600", "literal": "\\ud800"}
    inputs, _ = _decode(b'{"inputs": ["\\udc00"]}', {"s": TensorInfo("string", None)})
    assert inputs["s"].tolist() == [b"\xed\xb0\x80"]


def test_signature_name():
    assert signature_name({}) == "" and signature_name({"signature_name": "s"}) == "s"
    with pytest.raises(CodecError, match="not formatted correctly. 'signature_name' key must be a string value.$"):
        signature_name({"signature_name": 5, "instances": [[1, 2]]})


def test_rank_beyond_numpys_limit_is_refused_before_decoding():
    infos = {"x": TensorInfo(np.float32, None)}
    nested = lambda depth: "[" * depth + "1" + "]" * depth
    assert _decode(f'{{"inputs": {nested(32)}}}', infos)[0]["x"].ndim == 32
    assert "Encountered lists nested 33 levels deep" in _error(f'{{"inputs": {nested(33)}}}', infos)
    # Row format adds the batch dimension.
    assert _decode(f'{{"instances": [{nested(31)}]}}', infos)[0]["x"].ndim == 32
    assert "nested 32 levels deep" in _error(f'{{"instances": [{nested(32)}]}}', infos)
    assert "nested 900 levels deep" in _error(f'{{"inputs": {nested(900)}}}', infos)


@pytest.mark.parametrize("dtype, name", [(np.float16, "half"), (np.uint16, "uint16"), (np.complex64, "complex64")])
def test_json_for_dtypes_tf_serving_cant_convert_is_unimplemented(dtype, name):
    # AddValueToTensor's default: UNIMPLEMENTED (501) for "inputs"; wrapped in INVALID_ARGUMENT for "instances".
    with pytest.raises(CodecError) as info:
        _decode('{"inputs": [1]}', {"h": TensorInfo(dtype, None)})
    assert info.value.code == "UNIMPLEMENTED"
    assert str(info.value).startswith(f"Conversion of JSON Value: 1 to type: {name}")
    with pytest.raises(CodecError) as info:
        _decode('{"instances": [1]}', {"h": TensorInfo(dtype, None)})
    assert info.value.code == "INVALID_ARGUMENT" and "Error: UNIMPLEMENTED: Conversion of JSON Value" in str(info.value)


def test_checkpoint_stops_decoding():
    class Stop(Exception):
        pass

    calls = []

    def checkpoint():
        calls.append(1)
        if len(calls) > 2:
            raise Stop

    with pytest.raises(Stop):
        decode_predict_request({"instances": [[1.0, 2.0]] * 10_000}, ONE_FLOAT, checkpoint=checkpoint)
    with pytest.raises(Stop):
        decode_examples({"examples": [{"x": 1.0}] * 10_000}, checkpoint)


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
    # TF Serving's message, then the input's name.
    assert msg == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "a" Type: String is not of expected type: float (input: x)'
    )


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


def test_numbers_for_float_inputs_are_rounded_not_refused():
    # json_tensor_test.cc FloatTensorWithPrecisionLoss / ...ExceedsMaxReturnsInf / ...ExceedsMinReturnsZero.
    inputs, _ = _decode(
        '{"inputs": [[16777217, 1435774380, 1435774380.0, 1.7976931348623157e308, '
        "-1.7976931348623157e308, 2.2250738585072014e-308, -2.2250738585072014e-308]]}",
        {"x": TensorInfo(np.float32, None)},
    )
    x = inputs["x"][0]
    assert x[:3].tolist() == [16777216.0, 1435774336.0, 1435774336.0]
    assert x[3] == np.inf and x[4] == -np.inf
    assert x[5] == 0 and not np.signbit(x[5]) and x[6] == 0 and np.signbit(x[6])
    # The C++ double -> float cast: up to half an ulp above FLT_MAX rounds down to it, from there on inf.
    flt_max = float(np.finfo(np.float32).max)
    inputs, _ = _decode(
        '{"inputs": [3.4028235677973362e38, 3.4028235677973366e38, -3.4028235677973362e38]}',
        {"x": TensorInfo(np.float32, None)},
    )
    assert inputs["x"].tolist() == [flt_max, np.inf, -flt_max]
    inputs, _ = _decode('{"inputs": [1, 2.0, 0.662, 0]}', {"d": TensorInfo(np.float64, None)})
    assert inputs["d"].tolist() == [1.0, 2.0, 0.662, 0.0]


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
    assert msg.startswith("Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: ")
    assert detail in msg and msg.endswith("(input: x)")


def test_error_ragged_across_instances():
    msg = _error('{"instances": [[1, 2], [3]]}', ONE_FLOAT)
    assert msg.startswith("Failed to process element: 1 of 'instances'")
    assert "Expecting tensor size: 2 but got: 1" in msg
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
    assert "Expecting object but got list at item 1" in _error('{"instances": [{"a": 1, "b": "s"}, [1]]}', TWO_INPUTS)
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


def test_shapes_are_not_compared_with_the_signature():
    # TF Serving's json_tensor.cc never looks at TensorInfo.tensor_shape: the model decides (issue 10, item 3).
    assert _decode('{"instances": [[1, 2, 3]]}', ONE_FLOAT)[0]["x"].shape == (1, 3)
    assert _decode('{"inputs": [1, 2]}', ONE_FLOAT)[0]["x"].shape == (2,)
    fixed_batch = {"x": TensorInfo(np.float32, (1, 2))}
    assert _decode('{"instances": [[1, 2], [3, 4]]}', fixed_batch)[0]["x"].shape == (2, 2)


# --------------------------------------------------------------------------- responses


def _json(text: str):
    return json.loads(text)  # accepts NaN / Infinity literals


def test_row_response_single_output_drops_name():
    text = encode_predict_response({"scores": np.array([[0.2, 0.8], [1, 0]], np.float32)}, "row")
    # float32 is written as TF Serving's WriteDecimal writes it, not as the widened double.
    assert text == '{"predictions":[[0.2,0.8],[1.0,0.0]]}'


def test_row_response_multiple_outputs_are_objects_per_row():
    outputs = {"label": np.array([b"cat", b"dog"], dtype=object), "prob": np.array([0.5, 0.25], np.float64)}
    assert _json(encode_predict_response(outputs, "row")) == {
        "predictions": [{"label": "cat", "prob": 0.5}, {"label": "dog", "prob": 0.25}]
    }


def test_columnar_response():
    assert encode_predict_response({"y": np.array([1, 2], np.int64)}, "columnar") == '{"outputs":[1,2]}'
    outputs = {"y": np.array([1, 2], np.int64), "ok": np.array(True)}
    assert _json(encode_predict_response(outputs, "columnar")) == {"outputs": {"y": [1, 2], "ok": True}}


def test_bytes_outputs_b64_only_for_bytes_suffix():
    raw = b"\x89PNG\xff"
    outputs = {"image_bytes": np.array([raw], dtype=object), "text": np.array([raw], dtype=object)}
    rows = _json(encode_predict_response(outputs, "row"))["predictions"]
    assert rows[0]["image_bytes"] == {"b64": base64.b64encode(raw).decode()}
    assert base64.b64decode(rows[0]["image_bytes"]["b64"]) == raw
    assert rows[0]["text"] == raw.decode("utf-8", errors="replace")
    assert _json(encode_predict_response({"s": np.array([b"ok"], dtype="S")}, "columnar")) == {"outputs": ["ok"]}


def test_response_numbers_are_written_as_write_decimal():
    # json_tensor_test.cc FromJsonSingleFloatTensorSixDigitPrecision and ...NonFinite (compared as text).
    floats = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    assert encode_predict_response({"f": floats}, "row") == (
        '{"predictions":[[9e+06,999999.0,0.5],[0.0003,3e-05,555557.5]]}'
    )
    non_finite = np.array([[np.nan, np.inf], [3, -np.inf]], np.float32)
    assert encode_predict_response({"f": non_finite}, "row") == '{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'
    # Six digits do not read back: full precision, at the tensor's own width.
    assert decimal_texts(np.array([1 / 3, 0.1], np.float32)).tolist() == ["0.333333343", "0.1"]
    assert decimal_texts(np.array([1 / 3, 0.1, -0.0], np.float64)).tolist() == ["0.33333333333333331", "0.1", "-0.0"]


def test_response_integers_and_bools():
    outputs = {"n": np.array([[np.iinfo(np.uint64).max], [0]], np.uint64), "b": np.array([True, False])}
    assert _json(encode_predict_response(outputs, "row")) == {
        "predictions": [{"n": [18446744073709551615], "b": True}, {"n": [0], "b": False}]
    }


def test_response_errors():
    # json_tensor_test.cc FromJsonSingleTensorErrors / FromJsonMultipleNamedTensorsErrors.
    with pytest.raises(CodecError, match="Tensor name: b has inconsistent batch size: 3 expecting: 2"):
        encode_predict_response({"a": np.zeros(2), "b": np.zeros(3)}, "row")
    with pytest.raises(CodecError, match="Tensor name: s has no shape information"):
        encode_predict_response({"s": np.float32(1)}, "row")
    with pytest.raises(CodecError, match="empty tensor map"):
        encode_predict_response({}, "row")
    with pytest.raises(CodecError, match="Invalid request format"):
        encode_predict_response({"a": np.zeros(1)}, "rows")
    for dtype, name in ((np.complex64, "complex64"), (np.float16, "half"), (np.uint16, "uint16")):
        with pytest.raises(CodecError, match=f"Failed to write JSON value for tensor type: {name}$"):
            encode_predict_response({"t": np.zeros(2, dtype)}, "row")


def test_zero_batch_responses():
    # json_tensor_test.cc FromJsonSingleZeroBatchTensor / FromJsonMultipleZeroBatchTensors.
    assert encode_predict_response({"i": np.zeros((0, 2), np.int32)}, "row") == '{"predictions":[]}'
    outputs = {"s": np.zeros((0, 1, 2), object), "f": np.zeros((0, 3, 4), np.float32)}
    assert encode_predict_response(outputs, "row") == '{"predictions":[]}'


def test_round_trip_through_json_text():
    infos = {"img_bytes": TensorInfo("string", (None,)), "k": TensorInfo(np.float32, (None,))}
    request = {"instances": [{"img_bytes": _b64(b"\x00\x01"), "k": 0.5}]}
    inputs, fmt = decode_predict_request(parse_json(dumps(request)), infos)
    response = parse_json(encode_predict_response(inputs, fmt))
    assert response == {"predictions": [{"img_bytes": _b64(b"\x00\x01"), "k": 0.5}]}


def test_classify_and_regress_responses():
    # json_tensor_test.cc JsonFromClassificationResult / JsonFromRegressionResult(WithNonFinite).
    out = encode_classify_response([[("car", 0.2), ("bike", 0.7), (b"bus", 0.1)], [("car", 0.7), ("", 1.0)]])
    assert out == '{"results":[[["car",0.2],["bike",0.7],["bus",0.1]],[["car",0.7],["",1.0]]]}'
    assert encode_regress_response([0.2, 0.9, 1.0]) == '{"results":[0.2,0.9,1.0]}'
    assert encode_regress_response([0.2, np.inf, 1.0, -np.inf, np.nan]) == (
        '{"results":[0.2,Infinity,1.0,-Infinity,NaN]}'
    )
    with pytest.raises(CodecError, match="empty ClassificationResults"):
        encode_classify_response([])
    with pytest.raises(CodecError, match="empty RegressionResults"):
        encode_regress_response([])


def test_error_json_escapes_quotes_and_lone_surrogates():
    # json_tensor_test.cc MakeJsonFromStatus: the message survives as JSON text.
    assert json.loads(dumps({"error": 'Bad key: "key"'})) == {"error": 'Bad key: "key"'}
    body = to_utf8(dumps({"error": "signature \udc00"}))
    assert body == b'{"error":"signature \\udc00"}'  # valid UTF-8, and JSON for the same string
    assert json.loads(body) == {"error": "signature \udc00"}


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
                    {"trip_miles": [1.5, 2.0], "payment": "Cash", "img": _b64(b"\xff\x00"), "flag": True},
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


def test_decode_examples_floats_are_get_float(example_pb2):
    # AddValueToFeature: add_value(val.GetFloat()), the double cast to float (no precision or range check).
    (raw,) = decode_examples(
        parse_json(b'{"examples": [{"f": [16777217.0, 1e300, -1e300, 3.4028235677973362e38, NaN, 0.1]}]}')
    )
    values = example_pb2.Example.FromString(raw).features.feature["f"].float_list.value
    flt_max = float(np.finfo(np.float32).max)
    assert list(values[:4]) == [16777216.0, math.inf, -math.inf, flt_max]
    assert math.isnan(values[4]) and values[5] == np.float32(0.1)


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
        ({"examples": [{"f": [2**63]}]}, "Feature: f has uint64_t element. Only int64_t is supported."),
        ({"examples": [{"f": [10, 10.0]}]}, "Unexpected element type in feature: f expecting type: int64"),
        ({"examples": [{"f": [1.5, 2]}]}, "Unexpected element type in feature: f expecting type: float"),
        # The first bad element decides, as AddValueToFeature goes element by element.
        ({"examples": [{"f": [1, "s", None]}]}, "Unexpected element type in feature: f expecting type: int64"),
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
    assert TensorInfo(object, None).numpy_dtype == "string" and TensorInfo(object, None).dtype == "DT_STRING"


def test_tensor_info_from_signature_proto():
    from tensorflow.core.protobuf import meta_graph_pb2

    proto = meta_graph_pb2.TensorInfo(dtype=1)
    proto.tensor_shape.dim.add(size=-1)
    proto.tensor_shape.dim.add(size=4)
    assert TensorInfo.from_proto(proto) == TensorInfo(np.float32, (None, 4))
    proto = meta_graph_pb2.TensorInfo(dtype=7)
    proto.tensor_shape.unknown_rank = True
    assert TensorInfo.from_proto(proto) == TensorInfo("string", None)
