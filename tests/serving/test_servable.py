"""serving.servable on SavedModels TF Serving serves, built here: TF1 graphs (tf.compat.v1 and
SavedModelBuilder, with reference variables and ParseExample signatures, as TF Serving's
half_plus_two) and a TF2 `tf.saved_model.save` model.

Expectations are TF Serving's (servables/tensorflow/predict_util.cc and its
tensorflow_model_server_test.py): any request shape is fed to the model as sent, dtypes must
match, a model's own error keeps its status code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfxp.serving.errors import Code, ServingError
from tfxp.serving.servable import Servable, is_complete_version

v1 = tf.compat.v1


# ------------------------------------------------------------------------------ test models


def save_half_plus_two_tf1(export_dir: Path) -> Path:
    """TF Serving's saved_model_half_plus_two.py (TF1 branch), trimmed: y = a*x + b, y2 = a*x + c with
    a=0.5, b=2, c=3 as reference variables (VariableV2); `x` is the Identity of a ParseExample output
    (shape [-1, 1]) fed directly by `serving_default`; a `tf_example` placeholder of unknown rank."""
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        a = v1.Variable(0.5, name="a", use_resource=False)
        b = v1.Variable(2.0, name="b", use_resource=False)
        c = v1.Variable(3.0, name="c", use_resource=False)
        serialized = v1.placeholder(tf.string, name="tf_example")
        parsed = v1.parse_example(serialized, {"x": v1.FixedLenFeature([1], tf.float32)})
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        # A model that cares about shapes: MatMul takes matrices only.
        matrix = v1.placeholder(tf.float32, [None, 1], name="matrix")
        product = tf.matmul(matrix, v1.Variable([[2.0]], name="w", use_resource=False), name="product")
        info = v1.saved_model.utils.build_tensor_info
        signature = v1.saved_model.signature_def_utils.build_signature_def
        builder = v1.saved_model.Builder(str(export_dir))
        session.run(v1.global_variables_initializer())
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={
                "serving_default": signature({"x": info(x)}, {"y": info(y)}, "tensorflow/serving/predict"),
                "regress_x_to_y": signature(
                    {"inputs": info(serialized)}, {"outputs": info(y)}, "tensorflow/serving/regress"
                ),
                "classify_x_to_y": signature(
                    {"inputs": info(serialized)}, {"scores": info(y)}, "tensorflow/serving/classify"
                ),
                "two_outputs": signature(
                    {"x": info(x)}, {"y": info(y), "y2": info(y2), "same_y": info(y)}, "tensorflow/serving/predict"
                ),
                "matmul": signature({"m": info(matrix)}, {"p": info(product)}, "tensorflow/serving/predict"),
                # A reference-typed output (DT_FLOAT_REF): the variable itself.
                "get_a": signature({}, {"a": info(a)}, "tensorflow/serving/predict"),
            },
        )
        builder.save()
    return export_dir


def save_with_unservable_signature_tf1(export_dir: Path) -> Path:
    """y = 2x, and a signature whose output (a DT_RESOURCE handle) no client can receive."""
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        x = v1.placeholder(tf.float32, [None], name="x")
        handle = v1.Variable(1.0, name="r", use_resource=True).handle
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={
                "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": x * 2.0}),
                "resource_handle": v1.saved_model.predict_signature_def({"x": x}, {"h": handle}),
            },
        )
        builder.save()
    return export_dir


def save_doubler_without_variables_tf1(export_dir: Path) -> Path:
    """A TF1 graph without variables: SavedModelBuilder leaves `variables/` empty (no index)."""
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        x = v1.placeholder(tf.float32, [None], name="x")
        y = tf.identity(x * 2.0, name="y")
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={"serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y})},
        )
        builder.save()
    return export_dir


class _HalfPlusTwo(tf.Module):
    """TF Serving's HalfPlusTwoModel (TF2 branch), trimmed: a `serving_default` whose input has a
    default value, and a [None, 1] input."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def predict(self, x=tf.constant([0.0])):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def column(self, x):
        return {"y": self.a * x + self.b}


def save_half_plus_two_tf2(export_dir: Path) -> Path:
    module = _HalfPlusTwo()
    tf.saved_model.save(
        module, str(export_dir), signatures={"serving_default": module.predict, "column": module.column}
    )
    return export_dir


def example(**floats: float) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={k: tf.train.Feature(float_list=tf.train.FloatList(value=[v])) for k, v in floats.items()}
        )
    ).SerializeToString()


@pytest.fixture(scope="module")
def tf1(tmp_path_factory) -> Servable:
    return Servable("half_plus_two", 123, str(save_half_plus_two_tf1(tmp_path_factory.mktemp("tf1") / "00000123")))


@pytest.fixture(scope="module")
def tf2(tmp_path_factory) -> Servable:
    return Servable("half_plus_two", 1, str(save_half_plus_two_tf2(tmp_path_factory.mktemp("tf2") / "1")))


def f32(value) -> np.ndarray:
    return np.array(value, dtype=np.float32)


# ------------------------------------------------------------------------------ TF1 graphs


def test_tf1_signatures_with_reference_variables_load(tf1):
    assert set(tf1.signatures) == {
        "serving_default",
        "regress_x_to_y",
        "classify_x_to_y",
        "two_outputs",
        "matmul",
        "get_a",
    }
    assert tf1.signature_defs["get_a"].outputs["a"].dtype == tf.float32.as_datatype_enum + 100  # DT_FLOAT_REF
    assert tf1.signatures["get_a"].outputs["a"].numpy_dtype == np.float32
    assert tf1.run("get_a", {}) == {"a": pytest.approx(0.5)}


@pytest.mark.parametrize(
    "x, expected",
    [
        ([2.0, 3.0, 4.0], [3.0, 3.5, 4.0]),  # TF Serving's testPredictREST: [3] for an input declared [-1, 1]
        ([[2.0], [3.0]], [[3.0], [3.5]]),  # the declared shape
        (2.0, 3.0),  # a scalar
        ([[[1.0, 2.0]]], [[[2.5, 3.0]]]),  # rank 3
    ],
)
def test_request_shape_is_the_models_business(tf1, tf2, x, expected):
    np.testing.assert_allclose(tf1.run("serving_default", {"x": f32(x)})["y"], expected)
    np.testing.assert_allclose(tf2.run("column", {"x": f32(x)})["y"], expected)
    assert tf1.run("serving_default", {"x": f32(x)})["y"].shape == np.shape(expected)


def test_a_signature_that_cannot_be_served_leaves_the_others(tmp_path):
    servable = Servable("m", 1, str(save_with_unservable_signature_tf1(tmp_path / "1")))
    np.testing.assert_allclose(servable.run("serving_default", {"x": f32([1.5])})["y"], [3.0])
    assert "resource_handle" in servable.signature_defs and "resource_handle" not in servable.signatures
    with pytest.raises(ServingError) as error:
        servable.signature("resource_handle")
    assert error.value.code == Code.INVALID_ARGUMENT
    assert error.value.message.startswith('Serving signature name: "resource_handle" can\'t be served: ')


def test_a_shape_the_model_cannot_take_is_the_models_error(tf1):
    np.testing.assert_allclose(tf1.run("matmul", {"m": f32([[1.5]])})["p"], [[3.0]])
    # MatMul refuses a vector; the model says so, with its status code (not our shape check).
    with pytest.raises(ServingError) as error:
        tf1.run("matmul", {"m": f32([1.5, 2.0])})
    assert error.value.code == Code.INVALID_ARGUMENT and error.value.message == "In[0] ndims must be >= 2"


def test_tf1_parse_example_signatures(tf1):
    outputs = tf1.run("regress_x_to_y", {"inputs": np.array([example(x=2.0), example(x=4.0)], dtype=object)})
    np.testing.assert_allclose(outputs["outputs"], [[3.0], [4.0]])
    outputs = tf1.run("classify_x_to_y", {"inputs": np.array([example(x=0.0)], dtype=object)})
    np.testing.assert_allclose(outputs["scores"], [[2.0]])
    with pytest.raises(ServingError) as error:
        tf1.run("regress_x_to_y", {"inputs": np.array([example(y=1.0)], dtype=object)})
    assert error.value.code == Code.INVALID_ARGUMENT
    assert error.value.message == "Name: <unknown>, Feature: x (data type: float) is required but could not be found."


def test_output_filter_and_aliases_of_one_tensor(tf1):
    x = {"x": f32([[1.0]])}
    assert set(tf1.run("two_outputs", x)) == {"y", "y2", "same_y"}
    outputs = tf1.run("two_outputs", x, ("y2", "same_y"))
    assert list(outputs) == ["y2", "same_y"]
    np.testing.assert_allclose(outputs["y2"], [[3.5]])
    np.testing.assert_allclose(outputs["same_y"], [[2.5]])
    with pytest.raises(ServingError, match="unknown outputs"):
        tf1.run("two_outputs", x, ("nope",))


def test_tf1_without_variables_is_complete_and_serves(tmp_path):
    path = save_doubler_without_variables_tf1(tmp_path / "1")
    assert os.listdir(path / "variables") == []
    assert is_complete_version(str(path))
    np.testing.assert_allclose(Servable("d", 1, str(path)).run("serving_default", {"x": f32([1.5])})["y"], [3.0])


def test_versions_still_being_written_are_incomplete(tmp_path, tf1):
    path = tmp_path / "5"
    path.mkdir()
    assert not is_complete_version(str(path))
    (path / "saved_model.pb").write_bytes((Path(tf1.path) / "saved_model.pb").read_bytes())
    assert not is_complete_version(str(path))  # its variables are not there yet
    (path / "saved_model.pb").write_bytes(b"not a SavedModel")
    assert is_complete_version(str(path))  # unreadable: loading it will say so (state END), not hide it


# ------------------------------------------------------------------------------ TF2


def test_tf2_input_left_out_takes_the_signatures_default(tf2):
    # SignatureDef.defaults (TF Serving's GetInputValues): x = [0.0] -> y = 2.
    assert "x" in tf2.signature_defs["serving_default"].defaults
    np.testing.assert_allclose(tf2.run("serving_default", {})["y"], [2.0])
    np.testing.assert_allclose(tf2.run("serving_default", {"x": f32([2.0, 4.0])})["y"], [3.0, 4.0])
    with pytest.raises(ServingError, match=r"missing \['x'\]"):
        tf2.run("column", {})


# ------------------------------------------------------------------------------ dtypes and names


@pytest.mark.parametrize(
    "value, provided",
    [
        (np.array([1.0]), "float64"),
        (np.array([1]), "int64"),
        (np.array([b"1"], dtype=object), "string"),
    ],
)
def test_dtypes_are_checked_as_tf_serving_does(tf1, value, provided):
    with pytest.raises(ServingError) as error:
        tf1.run("serving_default", {"x": value})
    assert error.value.code == Code.INVALID_ARGUMENT
    assert error.value.message == f"input 'x' expects float32 but {provided} is provided"


def test_string_inputs_take_bytes_or_text_only(tf1):
    with pytest.raises(ServingError) as error:
        tf1.run("regress_x_to_y", {"inputs": np.array([example(x=1.0), 3], dtype=object)})
    assert error.value.code == Code.INVALID_ARGUMENT and "expects string but object (int)" in error.value.message
    with pytest.raises(ServingError, match="expects string but float32"):
        tf1.run("regress_x_to_y", {"inputs": f32([1.0])})


def test_names_are_checked(tf1):
    with pytest.raises(ServingError, match="not found in signature def"):
        tf1.signature("nope")
    with pytest.raises(ServingError, match=r"missing \['x'\], unexpected \['z'\]"):
        tf1.run("serving_default", {"z": f32([1.0])})


def test_output_filter_orders_share_one_prepared_call(tf1):
    before = set(tf1._calls)
    for _ in range(3):
        tf1.run("two_outputs", {"x": f32([[1.0]])}, ("y", "y2"))
        assert list(tf1.run("two_outputs", {"x": f32([[1.0]])}, ("y2", "y"))) == ["y2", "y"]
    assert set(tf1._calls) - before <= {("two_outputs", ("y", "y2"))}
    assert ("two_outputs", ("y", "y2")) in tf1._calls


def test_close_frees_the_session(tmp_path):
    servable = Servable("d", 1, str(save_doubler_without_variables_tf1(tmp_path / "1")))
    servable.run("serving_default", {"x": f32([1.0])})
    servable.close()
    with pytest.raises(ServingError):
        servable.run("serving_default", {"x": f32([1.0])})
