"""The reference SavedModels (TF Serving's own test models, built here) load and answer with plain TensorFlow.

No server: the TF1 graph goes through `tf.compat.v1.saved_model.loader` in a Session, which is the path
TF Serving's C++ loader takes; the TF2 and Keras models through `tf.saved_model.load`.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import reference_models as rm  # beside this file; conftest.py puts this folder on sys.path
import tensorflow as tf
from google.protobuf import json_format

TF_SERVING_MIRROR = "/work/.mirror/tensorflow+serving/repo"
TESTDATA = "2.16.1:tensorflow_serving/servables/tensorflow/testdata"
X = [1.0, 2.0, 5.0]
HALF_PLUS_TWO_X = [2.5, 3.0, 4.5]


@pytest.fixture(scope="module")
def tf1_base(reference_model_paths):
    return reference_model_paths["half_plus_two"]


@pytest.fixture(scope="module")
def half_plus_three(tmp_path_factory):
    return rm.write_half_plus_two_tf1(tmp_path_factory.mktemp("reference"), name="half_plus_three", b=3.0)


def _signature_defs(version_path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel.FromString((version_path / "saved_model.pb").read_bytes())
    return saved_model.meta_graphs[0].signature_def


def _mirror_file(path: str) -> bytes:
    """A file of TF Serving 2.16.1 from the local git mirror; skips the test when there is none."""
    if not os.path.isdir(TF_SERVING_MIRROR):
        pytest.skip("no TF Serving mirror to compare with")
    return subprocess.run(
        ["git", "-C", TF_SERVING_MIRROR, "show", f"{TESTDATA}/{path}"], check=True, capture_output=True
    ).stdout


# --------------------------------------------------------------------------- TF1 half_plus_two


def test_tf1_is_laid_out_as_tf_servings_quickstart_model(tf1_base):
    assert tf1_base.name == "half_plus_two"
    assert sorted(p.name for p in tf1_base.iterdir()) == ["00000123"]  # no staging dir left behind
    version = tf1_base / "00000123"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    assert (version / "assets" / "foo.txt").read_text() == "asset-file-contents"


def test_tf1_signature_defs_equal_tf_servings_checked_in_model(tf1_base):
    """Same SignatureDefs (names, keys, tensor names, dtypes, shapes, method names) as the 00000123 binary."""
    from tensorflow.core.protobuf import saved_model_pb2

    reference = (
        saved_model_pb2.SavedModel.FromString(_mirror_file("saved_model_half_plus_two_cpu/00000123/saved_model.pb"))
        .meta_graphs[0]
        .signature_def
    )
    assert dict(_signature_defs(tf1_base / "00000123")) == dict(reference)


def test_tf1_metadata_expectation_is_tf_servings_json(tf1_base):
    """`half_plus_two_tf1_metadata()` is TF Serving's half_plus_two_model_metadata.json, and matches our model."""
    expected = rm.half_plus_two_tf1_metadata()
    assert expected == json.loads(_mirror_file("half_plus_two_model_metadata.json"))
    built = {
        key: json_format.MessageToDict(value, preserving_proto_field_name=True)
        for key, value in _signature_defs(tf1_base / "00000123").items()
    }
    # MessageToDict leaves out default-valued fields that TF Serving's JSON prints; compare the rest.
    for key, signature in expected["metadata"]["signature_def"]["signature_def"].items():
        assert built[key]["method_name"] == signature["method_name"]
        for side in ("inputs", "outputs"):
            assert {k: (v["name"], v["dtype"]) for k, v in built[key][side].items()} == {
                k: (v["name"], v["dtype"]) for k, v in signature[side].items()
            }


def test_tf1_uses_reference_variables_and_runs_its_main_op(tf1_base):
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        v1.saved_model.loader.load(sess, ["serve"], str(tf1_base / "00000123"))
        assert graph.get_operation_by_name("a").type == "VariableV2"  # a reference variable, not a resource
        assert graph.get_tensor_by_name("a:0").dtype._is_ref_dtype  # float_ref outputs
        assert graph.get_operation_by_name("ParseExample/ParseExample").type == "ParseExample"  # TF 1.x's op
        assert graph.get_tensor_by_name("tf_example:0").shape.rank is None  # unknown rank, as TF Serving's
        assert sess.run("filename_tensor:0") == b"foo.txt"  # assigned by the main op at load time


def test_tf1_signatures_answer_in_a_session(tf1_base):
    """Each signature run as TF Serving runs it: feed the input tensor names, fetch the output names."""
    v1 = tf.compat.v1
    examples = [rm.example_bytes(x=x, x2=x) for x in X]
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        meta_graph = v1.saved_model.loader.load(sess, ["serve"], str(tf1_base / "00000123"))
        signatures = meta_graph.signature_def
        assert set(signatures) == set(rm.HALF_PLUS_TWO_TF1_SIGNATURES)

        def run(key: str, value):
            signature = signatures[key]
            (input_info,) = signature.inputs.values()
            (output_info,) = signature.outputs.values()
            return sess.run(output_info.name, {input_info.name: value})

        column = np.array(X, dtype=np.float32).reshape(-1, 1)
        np.testing.assert_allclose(run("serving_default", column).ravel(), HALF_PLUS_TWO_X)
        np.testing.assert_allclose(run("regress_x_to_y", examples).ravel(), HALF_PLUS_TWO_X)
        np.testing.assert_allclose(run("classify_x_to_y", examples).ravel(), HALF_PLUS_TWO_X)
        np.testing.assert_allclose(run("regress_x_to_y2", examples).ravel(), [3.5, 4.0, 5.5])
        np.testing.assert_allclose(run("regress_x2_to_y3", column).ravel(), [3.5, 4.0, 5.5])
        # x2 has a default: an Example with only x parses, y3 = 0.5 * 0 + 3 when fed through tf_example.
        assert sess.run("y3:0", {"tf_example:0": [rm.example_bytes(x=1.0)]}).ravel().tolist() == [3.0]
        with pytest.raises(tf.errors.InvalidArgumentError, match="x"):  # x is required
            sess.run("y:0", {"tf_example:0": [rm.example_bytes(x2=1.0)]})
        with pytest.raises(tf.errors.InvalidArgumentError, match="vector"):  # TF 1.x ParseExample wants a vector
            sess.run("y:0", {"tf_example:0": rm.example_bytes(x=1.0)})


def test_tf1_half_plus_three(half_plus_three):
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        v1.saved_model.loader.load(sess, ["serve"], str(half_plus_three / "00000123"))
        assert sess.run("y:0", {"x:0": [[2.0]]}).tolist() == [[4.0]]  # TF Serving's half_plus_three answer


def test_builder_refuses_an_existing_version(half_plus_three):
    with pytest.raises(OSError):
        rm.write_half_plus_two_tf1(half_plus_three.parent, name="half_plus_three", b=3.0)
    assert sorted(p.name for p in half_plus_three.iterdir()) == ["00000123"]
    assert sorted(p.name for p in half_plus_three.parent.iterdir()) == ["half_plus_three"]  # staging removed


# --------------------------------------------------------------------------- TF2 and Keras


def test_tf2_half_plus_two_signatures(reference_model_paths):
    base = reference_model_paths["half_plus_two_tf2"]
    loaded = tf.saved_model.load(str(base / rm.VERSION_DIR))
    assert set(loaded.signatures) == set(rm.HALF_PLUS_TWO_TF2_SIGNATURES)
    signatures = _signature_defs(base / rm.VERSION_DIR)
    # tf.saved_model.save writes predict method names only; TF Serving serves Classify/Regress on them anyway.
    assert {s.method_name for k, s in signatures.items() if not k.startswith("__")} == {rm.PREDICT_METHOD}
    for key, (input_key, _, output_key) in rm.HALF_PLUS_TWO_TF2_SIGNATURES.items():
        assert list(signatures[key].inputs) == [input_key]
        assert list(signatures[key].outputs) == [output_key]

    sig = loaded.signatures
    assert sig["serving_default"](x=tf.constant([2.0]))["y"].numpy().tolist() == [3.0]
    examples = tf.constant([rm.example_bytes(x=x) for x in X])
    np.testing.assert_allclose(sig["regress_x_to_y"](inputs=examples)["outputs"].numpy().ravel(), HALF_PLUS_TWO_X)
    np.testing.assert_allclose(sig["classify_x_to_y"](inputs=examples)["scores"].numpy().ravel(), HALF_PLUS_TWO_X)
    np.testing.assert_allclose(sig["regress_x_to_y2"](inputs=examples)["outputs"].numpy().ravel(), [3.5, 4.0, 5.5])
    assert sig["regress_x2_to_y3"](inputs=tf.constant([2.0]))["outputs"].numpy().tolist() == [4.0]
    assert sig["classify_x2_to_y3"](inputs=tf.constant([2.0]))["scores"].numpy().tolist() == [4.0]
    assert (base / rm.VERSION_DIR / "assets" / "foo.txt").read_text() == "asset-file-contents"


def test_tf_saved_model_save_takes_any_rank(reference_model_paths):
    base = reference_model_paths["tf_saved_model_save"]
    serving_default = tf.saved_model.load(str(base / rm.VERSION_DIR)).signatures["serving_default"]
    (info,) = _signature_defs(base / rm.VERSION_DIR)["serving_default"].inputs.values()
    assert info.tensor_shape.unknown_rank
    assert serving_default(x=tf.constant(2.0))["y"].numpy() == 12.0  # TF Serving's expected output
    assert serving_default(x=tf.constant([[1.0, 2.0]]))["y"].numpy().tolist() == [[6.0, 12.0]]


def test_keras_sequential(reference_model_paths):
    base = reference_model_paths["keras_sequential"]
    serving_default = tf.saved_model.load(str(base / rm.VERSION_DIR)).signatures["serving_default"]
    signature = _signature_defs(base / rm.VERSION_DIR)["serving_default"]
    assert list(signature.inputs) == ["x"] and list(signature.outputs) == ["y"]
    assert [d.size for d in signature.inputs["x"].tensor_shape.dim] == [-1, 1]
    assert serving_default(x=tf.constant([[2.0], [5.0]]))["y"].numpy().tolist() == [[2.0], [5.0]]


def test_model_config_text_is_a_model_server_config(tmp_path):
    from tfxp.serving.config import load_model_server_config

    path = tmp_path / "models.config"
    path.write_text(rm.model_config_text({"half_plus_two": tmp_path / "a", "keras_sequential": tmp_path / "b"}))
    config = load_model_server_config(path)
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [
        ("half_plus_two", str(tmp_path / "a")),
        ("keras_sequential", str(tmp_path / "b")),
    ]


def test_reference_model_paths_fixture_serves_every_model(reference_model_paths):
    assert sorted(reference_model_paths) == sorted(
        ["half_plus_two", "half_plus_two_tf2", "tf_saved_model_save", "keras_sequential"]
    )
    for name, base in reference_model_paths.items():
        assert base.name == name and (base / rm.VERSION_DIR / "saved_model.pb").is_file()
