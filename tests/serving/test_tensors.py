"""TensorProto <-> numpy, checked against TensorFlow's own C++ (`tf.io.parse_tensor` is Tensor::FromProto)
and Python (`tf.make_tensor_proto`, `tf.make_ndarray`) converters."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from tfxp.serving.tensors import MAX_FILL_BYTES, TensorProtoError, dtype_name, to_ndarray, to_ndarrays, to_tensor_proto

ARRAYS = [
    np.array([0.5, np.nan, -1.0, np.inf], dtype=np.float32),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.array([[1.5]], dtype=np.float64),
    np.array([True, False]),
    np.array([7], dtype=np.int32),
    np.array([-1, 127], dtype=np.int8),
    np.array([255, 0], dtype=np.uint8),
    np.array([-300], dtype=np.int16),
    np.array([65535], dtype=np.uint16),
    np.array([2**32 - 1], dtype=np.uint32),
    np.array([2**64 - 1], dtype=np.uint64),
    np.array([1.5, -65504.0], dtype=np.float16),
    tf.constant([1.5, -3.0], tf.bfloat16).numpy(),
    np.array([1 + 2j, -3j], dtype=np.complex64),
    np.array([[1e300 - 1j]], dtype=np.complex128),
    np.array(3.25, dtype=np.float32),  # a scalar
    np.zeros((2, 0), dtype=np.float32),  # no elements
    np.array([b"a", b"", b"\xff\x00"], dtype=object),
]
TYPED_FIELDS = {
    "float32": "float_val",
    "float64": "double_val",
    "int32": "int_val",
    "int64": "int64_val",
    "bool": "bool_val",
    "int8": "int_val",
    "uint8": "int_val",
    "int16": "int_val",
    "uint16": "int_val",
    "uint32": "uint32_val",
    "uint64": "uint64_val",
    "float16": "half_val",
    "bfloat16": "half_val",
    "complex64": "scomplex_val",
    "complex128": "dcomplex_val",
    "object": "string_val",
}


def _tf_dtype(array: np.ndarray) -> tf.DType:
    return tf.string if array.dtype == object else tf.as_dtype(array.dtype)


def _from_proto(proto: tensor_pb2.TensorProto, dtype: tf.DType) -> np.ndarray:
    """TensorFlow's C++ Tensor::FromProto (ParseTensor op), the reference for decoding."""
    return tf.io.parse_tensor(proto.SerializeToString(), dtype).numpy()


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_encoding_uses_typed_fields_as_tensorflow_reads_them(array):
    """Tensor::AsProtoField: every value in the dtype's typed field, none in tensor_content."""
    proto = to_tensor_proto(array)
    assert proto.tensor_content == b""
    assert proto.dtype == tf.make_tensor_proto(array).dtype
    filled = [f.name for f, _ in proto.ListFields() if f.name.endswith("_val")]
    assert filled == ([TYPED_FIELDS[array.dtype.name]] if array.size else [])
    for decoded in (tf.make_ndarray(proto), _from_proto(proto, _tf_dtype(array))):
        assert decoded.shape == array.shape
        np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_decoding_tensorflows_protos(array):
    """Whatever tf.make_tensor_proto writes (tensor_content for most numeric arrays) decodes exactly."""
    theirs = tf.make_tensor_proto(array)
    ours = to_ndarray(theirs)
    assert ours.shape == array.shape
    assert ours.dtype == (object if array.dtype == object else array.dtype)
    np.testing.assert_array_equal(ours, array)
    np.testing.assert_array_equal(to_ndarray(to_tensor_proto(array)), array)


def test_str_arrays_encode_as_utf8():
    proto = to_tensor_proto(np.array(["héllo", "x"]))
    assert proto.dtype == types_pb2.DT_STRING and list(proto.string_val) == ["héllo".encode(), b"x"]


def test_encoding_into_an_existing_proto_replaces_it():
    proto = tf.make_tensor_proto(np.arange(4, dtype=np.int64))
    to_tensor_proto(np.array([1.5], np.float32), proto)
    assert proto.dtype == types_pb2.DT_FLOAT and list(proto.float_val) == [1.5] and proto.tensor_content == b""


def _proto(dtype: int, dims, **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add().size = size
    return proto


@pytest.mark.parametrize(
    "proto, tf_dtype",
    [
        (tf.make_tensor_proto(4.0, dtype=tf.float32, shape=[3]), tf.float32),  # one value for a shape
        (tf.make_tensor_proto([1, 2], dtype=tf.int64, shape=[2, 2]), tf.int64),  # last value repeated
        (_proto(types_pb2.DT_FLOAT, [3]), tf.float32),  # no values: zeros
        (_proto(types_pb2.DT_STRING, [2], string_val=[b"s"]), tf.string),
        (_proto(types_pb2.DT_STRING, [2]), tf.string),  # empty strings
        (_proto(types_pb2.DT_HALF, [3], half_val=[0x3C00]), tf.float16),  # 1.0, repeated
        (_proto(types_pb2.DT_COMPLEX64, [2], scomplex_val=[1.0, 2.0]), tf.complex64),
        (_proto(types_pb2.DT_INT8, [2], int_val=[300, -129]), tf.int8),  # int_val narrowed as static_cast
        (_proto(types_pb2.DT_BOOL, [], bool_val=[True]), tf.bool),
        (
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0], tensor_shape={"unknown_rank": True}),
            tf.float32,
        ),  # TensorShape ignores unknown_rank (for compatibility, says tensor_shape.cc)
        (_proto(types_pb2.DT_FLOAT, [0, 2**40]), tf.float32),  # no elements, whatever the other dims
    ],
)
def test_fills_and_narrowing_as_tensor_from_proto(proto, tf_dtype):
    """tensor.cc FromProtoField: fewer values than elements -> the last one repeated (or zeros)."""
    ours = to_ndarray(proto)
    reference = _from_proto(proto, tf_dtype)
    assert ours.shape == reference.shape
    np.testing.assert_array_equal(ours, reference)


def test_string_tensor_content():
    """tensor_coding.cc EncodeStringList: varint32 lengths, then the bytes (decoded as Tensor::FromProto)."""
    proto = _proto(types_pb2.DT_STRING, [3], tensor_content=b"\x02\x00\xc8\x01" + b"ab" + b"c" * 200)
    expected = np.array([b"ab", b"", b"c" * 200], dtype=object)
    np.testing.assert_array_equal(_from_proto(proto, tf.string), expected)
    np.testing.assert_array_equal(to_ndarray(proto), expected)


# TensorProtos that are no tensor. TF's FromProto refuses the first group too; the second it would accept
# (by dropping values, or by allocating what the request only claims); we refuse those on purpose.
TF_REFUSES = {
    "DT_INVALID": _proto(types_pb2.DT_INVALID, [1], float_val=[1.0]),
    "negative dimension": _proto(types_pb2.DT_FLOAT, [-1]),
    "element count over int64": _proto(types_pb2.DT_FLOAT, [2**40, 2**40], float_val=[1.0]),
    "255 dimensions": _proto(types_pb2.DT_FLOAT, [1] * 255),
    "short tensor_content": _proto(types_pb2.DT_FLOAT, [2], tensor_content=b"\x00\x00\x80\x3f"),
    "long tensor_content": _proto(types_pb2.DT_INT64, [1], tensor_content=b"\x00" * 9),
    "string tensor_content with a bad length": _proto(types_pb2.DT_STRING, [1], tensor_content=b"\x05ab"),
}
WE_REFUSE = {
    "33 dimensions (numpy's limit)": _proto(types_pb2.DT_FLOAT, [1] * 33, float_val=[1.0]),
    "[0, 2^62] (too large for numpy, even empty)": _proto(types_pb2.DT_FLOAT, [0, 2**62]),
    "DT_RESOURCE": _proto(types_pb2.DT_RESOURCE, [1]),
    "DT_VARIANT": _proto(types_pb2.DT_VARIANT, [1]),
    "DT_QINT8": _proto(types_pb2.DT_QINT8, [1], int_val=[1]),
    "unknown dtype enum": _proto(77, [1]),
    "more values than elements": _proto(types_pb2.DT_FLOAT, [1], float_val=[1.0, 2.0]),
    "values for no elements": _proto(types_pb2.DT_FLOAT, [0], float_val=[1.0]),
    "odd scomplex_val": _proto(types_pb2.DT_COMPLEX64, [1], scomplex_val=[1.0]),
    "[10^8] float, one value": _proto(types_pb2.DT_FLOAT, [10**8], float_val=[1.0]),
    "[10^8] string, one value": _proto(types_pb2.DT_STRING, [10**8], string_val=[b"a"]),
    "[10^12] float, no value": _proto(types_pb2.DT_FLOAT, [10**12]),
    "[10^12] strings, short content": _proto(types_pb2.DT_STRING, [10**12], tensor_content=b"\x00"),
}


@pytest.mark.parametrize("case", list(TF_REFUSES))
def test_refused_like_tensorflow(case):
    with pytest.raises(TensorProtoError):
        to_ndarray(TF_REFUSES[case])
    dtype = tf.string if TF_REFUSES[case].dtype == types_pb2.DT_STRING else tf.float32
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        _from_proto(TF_REFUSES[case], dtype if TF_REFUSES[case].dtype != types_pb2.DT_INT64 else tf.int64)


@pytest.mark.parametrize("case", list(WE_REFUSE))
def test_refused_before_allocating(case):
    """Issue 10: a tiny request claiming [10^8] made the server allocate ~390 MB before refusing it."""
    tracemalloc.start()
    try:
        with pytest.raises(TensorProtoError):
            to_ndarray(WE_REFUSE[case])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated to refuse it"


def test_fill_budget_is_shared_by_a_requests_tensors():
    one_mib_of_floats = 2**18
    each = {
        f"x{i}": _proto(types_pb2.DT_FLOAT, [one_mib_of_floats], float_val=[1.0])
        for i in range(MAX_FILL_BYTES // 2**20)
    }
    assert all(a.shape == (one_mib_of_floats,) for a in to_ndarrays(each).values())
    each["last"] = _proto(types_pb2.DT_FLOAT, [one_mib_of_floats], float_val=[1.0])
    with pytest.raises(TensorProtoError) as info:
        to_ndarrays(each)
    assert info.value.alias == "last"
    assert "limited to" in str(info.value)


def test_sent_values_cost_no_fill_budget():
    """A large tensor whose values are all sent is not a fill (its size is the request's own)."""
    big = tf.make_tensor_proto(np.ones(2 * MAX_FILL_BYTES // 4, np.float32))
    assert to_ndarrays({"a": big, "b": big}, max_fill_bytes=0)["a"].size == 2 * MAX_FILL_BYTES // 4


def test_dtype_names():
    assert dtype_name(np.zeros(1, np.float32)) == "DT_FLOAT"
    assert dtype_name(np.array([b"a"], dtype=object)) == "DT_STRING"
    assert dtype_name(np.zeros(1, np.int64)) == "DT_INT64"
