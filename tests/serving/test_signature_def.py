"""The one SignatureDef/TensorInfo type: the server and the client read signatures into the same objects."""

from __future__ import annotations

import numpy as np
import pytest

from tfxp.serving import client, servable
from tfxp.serving.signature_def import Signature, TensorInfo, UnsupportedDtypeError


def test_server_and_client_share_the_type():
    assert client.TensorInfo is TensorInfo and client.Signature is Signature
    assert servable.Signature is Signature


def test_metadata_json_and_signature_proto_give_equal_tensor_infos():
    from google.protobuf import json_format
    from tensorflow.core.protobuf import meta_graph_pb2

    proto = meta_graph_pb2.TensorInfo(dtype=1, name="x:0")
    proto.tensor_shape.dim.add(size=-1)
    proto.tensor_shape.dim.add(size=3)
    as_json = json_format.MessageToDict(proto, preserving_proto_field_name=True)
    from_proto, from_json = TensorInfo.from_proto(proto), TensorInfo.from_json(as_json)
    assert from_proto == from_json == TensorInfo("DT_FLOAT", (-1, 3))
    assert (from_proto.name, from_json.name) == ("x:0", "x:0")
    assert from_json.shape == from_json.tensor_shape == (-1, 3)
    assert from_json.numpy_dtype == np.float32


def test_dtype_spellings_and_refusals():
    assert TensorInfo(np.int64).dtype == TensorInfo("int64").dtype == "DT_INT64"
    assert TensorInfo(bytes).numpy_dtype == "string"
    assert TensorInfo("DT_RESOURCE").dtype == "DT_RESOURCE"  # a server may report it; the client keeps it
    with pytest.raises(UnsupportedDtypeError, match="DT_RESOURCE"):
        TensorInfo("DT_RESOURCE").numpy_dtype  # noqa: B018
    with pytest.raises(UnsupportedDtypeError, match="datetime64"):
        TensorInfo(np.datetime64)
    from tensorflow.core.protobuf import meta_graph_pb2

    with pytest.raises(UnsupportedDtypeError, match="enum: 20"):
        TensorInfo.from_proto(meta_graph_pb2.TensorInfo(dtype=20))  # DT_RESOURCE


def test_signature_equality_is_its_contents():
    outputs = {"y": TensorInfo("DT_FLOAT", (-1,))}
    assert Signature({}, outputs, "tensorflow/serving/predict", name="a") == Signature(
        {}, outputs, "tensorflow/serving/predict", name="b"
    )
