"""The fast TensorProto converters agree with TensorFlow's own."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving.tensors import to_ndarray, to_tensor_proto

ARRAYS = [
    np.array([0.5, np.nan, -1.0], dtype=np.float32),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.array([[1.5]], dtype=np.float64),
    np.array([True, False]),
    np.array([7], dtype=np.int32),
    np.array([b"a", b"", b"\xff\x00"], dtype=object),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: str(a.dtype))
def test_round_trip_matches_tensorflow(array):
    ours = to_tensor_proto(array)
    np.testing.assert_array_equal(tf.make_ndarray(ours), array)
    theirs = tf.make_tensor_proto(array)
    np.testing.assert_array_equal(to_ndarray(theirs), array)
    assert ours.dtype == theirs.dtype


def test_values_in_typed_fields_and_broadcast_scalars():
    proto = tf.make_tensor_proto([1, 2, 3], dtype=tf.int64)
    proto.ClearField("tensor_content")
    proto.int64_val.extend([1, 2, 3])
    np.testing.assert_array_equal(to_ndarray(proto), [1, 2, 3])
    filled = tf.make_tensor_proto(4.0, dtype=tf.float32, shape=[3])
    np.testing.assert_array_equal(to_ndarray(filled), tf.make_ndarray(filled))
