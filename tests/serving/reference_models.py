"""The SavedModels TF Serving's own tests serve, built by the test (no downloads), and their answers.

Every builder writes `<folder>/<name>/<version dir>/` (a TF Serving model base path with one version) and
returns the base path. The version dir is written elsewhere in `folder` first and renamed into place, so a
polling server never sees half a model; an existing version dir is never replaced (OSError). Models:

- `write_half_plus_two_tf1`: TF Serving 2.16.1's `servables/tensorflow/testdata/saved_model_half_plus_two.py`
  (the graph behind `saved_model_half_plus_two_cpu/00000123/`, its quickstart model), rebuilt with
  `tf.compat.v1`: reference variables (`VariableV2`, outputs of type `float_ref`), a `tf_example` string
  placeholder of unknown rank fed to `ParseExample`, an asset file and a main op — as the checked-in binary
  (written by TF 1.14) has them. y = 0.5 * x + 2, y2 = 0.5 * x + 3, y3 = 0.5 * x2 + 3.
- `write_half_plus_two_tf2`: the same script's `HalfPlusTwoModel` (`saved_model_half_plus_two_tf2_cpu`),
  a `tf.Module` saved with `tf.saved_model.save`; `serving_default` takes float32 `x` of shape [1].
- `write_tf_saved_model_save`: `tensorflow_model_server_test.py`'s `test_tf_saved_model_save`:
  y = 3 * 2 * x on an input of unknown rank.
- `write_keras_sequential`: `test_sequential_keras_saved_model_save`, in tf_keras (TF_USE_LEGACY_KERAS=1,
  as the project's Trainer): Input `x` [None, 1] -> Dense(ones, zeros) -> Lambda identity `y`; y = x.

Expected answers (TF Serving's own test expectations, same file) are the `*_REST_*` constants and
`half_plus_two_tf1_metadata()`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import tfxp.models  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

VERSION = 123
VERSION_DIR = "00000123"  # zero-padded exactly as TF Serving's testdata: version 123, loaded from 00000123/

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

# Signatures of the TF1 half_plus_two (TF Serving's signature_def_map; no classify_x2_to_y3 in TF1):
# name -> (method name, {input key: tensor name}, {output key: tensor name})
HALF_PLUS_TWO_TF1_SIGNATURES: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "serving_default": (PREDICT_METHOD, {"x": "x:0"}, {"y": "y:0"}),
    "regress_x_to_y": (REGRESS_METHOD, {"inputs": "tf_example:0"}, {"outputs": "y:0"}),
    "regress_x_to_y2": (REGRESS_METHOD, {"inputs": "tf_example:0"}, {"outputs": "y2:0"}),
    "regress_x2_to_y3": (REGRESS_METHOD, {"inputs": "x2:0"}, {"outputs": "y3:0"}),
    "classify_x_to_y": (CLASSIFY_METHOD, {"inputs": "tf_example:0"}, {"scores": "y:0"}),
}
# Signatures of the TF2 half_plus_two: name -> (input key, input dtype/shape, output key). tf.saved_model.save
# writes every method name as predict; TF Serving serves Classify/Regress on them anyway (no method check).
HALF_PLUS_TWO_TF2_SIGNATURES: dict[str, tuple[str, str, str]] = {
    "serving_default": ("x", "float32 [1]", "y"),
    "regress_x_to_y": ("inputs", "string [None] (tf.Example)", "outputs"),
    "regress_x_to_y2": ("inputs", "string [None] (tf.Example)", "outputs"),
    "regress_x2_to_y3": ("inputs", "float32 [1]", "outputs"),
    "classify_x_to_y": ("inputs", "string [None] (tf.Example)", "scores"),
    "classify_x2_to_y3": ("inputs", "float32 [1]", "scores"),
}

# tensorflow_model_server_test.py (2.16.1), TF1 half_plus_two served as "default":
# testPredictREST / testPredictColumnarREST / testClassifyREST / testRegressREST.
PREDICT_REST_REQUEST = {"instances": [2.0, 3.0, 4.0]}
PREDICT_REST_RESPONSE = {"predictions": [3.0, 3.5, 4.0]}
PREDICT_COLUMNAR_REST_REQUEST = {"inputs": [2.0, 3.0, 4.0]}
PREDICT_COLUMNAR_REST_RESPONSE = {"outputs": [3.0, 3.5, 4.0]}
CLASSIFY_REST_REQUEST = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
CLASSIFY_REST_RESPONSE = {"results": [[["", 3.0]]]}  # no classes output: label ""
REGRESS_REST_REQUEST = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
REGRESS_REST_RESPONSE = {"results": [3.0]}
STATUS_REST_RESPONSE = {
    "model_version_status": [
        {"version": str(VERSION), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}
# The gRPC tests (VerifyPredictRequest, _TestClassify, _TestRegress) send x = 2.0 and expect 3.0.


def half_plus_two(x: float) -> float:
    """y = a * x + b with a = 0.5, b = 2 (y2 and y3 use c = 3 instead of b)."""
    return 0.5 * x + 2.0


def half_plus_two_tf1_metadata(model_name: str = "default", version: int = VERSION) -> dict:
    """The REST metadata body TF Serving answers for the TF1 half_plus_two.

    As TF Serving 2.16.1's `servables/tensorflow/testdata/half_plus_two_model_metadata.json`, which
    `testGetModelMetadataREST` compares (after sorting) with `GET /v1/models/default/metadata`.
    """

    def info(name: str, dtype: str, known: bool) -> dict:
        if not known:  # the tf_example placeholder has no shape
            return {"dtype": dtype, "tensor_shape": {"dim": [], "unknown_rank": True}, "name": name}
        dims = [{"size": "-1", "name": ""}, {"size": "1", "name": ""}]
        return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": name}

    signature_defs = {}
    for key, (method, inputs, outputs) in HALF_PLUS_TWO_TF1_SIGNATURES.items():
        signature_defs[key] = {
            "inputs": {
                k: info(t, "DT_STRING" if t == "tf_example:0" else "DT_FLOAT", t != "tf_example:0")
                for k, t in inputs.items()
            },
            "outputs": {k: info(t, "DT_FLOAT", True) for k, t in outputs.items()},
            "method_name": method,
            "defaults": {},
        }
    return {
        "model_spec": {"name": model_name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": signature_defs}},
    }


def example_bytes(x: float | None = None, x2: float | None = None) -> bytes:
    """A serialized tf.Example with float features `x` and/or `x2` (the half_plus_two parsers' input)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for key, value in (("x", x), ("x2", x2)):
        if value is not None:
            example.features.feature[key].float_list.value.append(value)
    return example.SerializeToString()


# --------------------------------------------------------------------------- builders


def write_half_plus_two_tf1(
    folder: str | os.PathLike, name: str = "half_plus_two", version_dir: str = VERSION_DIR, b: float = 2.0
) -> Path:
    """TF Serving's TF1 half_plus_two, as `saved_model_half_plus_two.py` builds it, in `<folder>/<name>/<version_dir>`.

    Graph (tf.compat.v1, no resource variables): `tf_example` (string placeholder, unknown rank) ->
    TF 1.x ParseExample op {x: float [1], x2: float [1] default 0} -> x, x2 of shape [-1, 1];
    y = a*x + b, y2 = a*x + c, y3 = a2*x2 + c2 with a = a2 = 0.5, c = c2 = 3 and `b` (2; TF Serving's
    half_plus_three is the same graph with b = 3). Signatures: `HALF_PLUS_TWO_TF1_SIGNATURES`.
    An asset `foo.txt` ("asset-file-contents") is tracked in the ASSET_FILEPATHS collection, and the main op
    assigns its name to the string variable `filename_tensor`, as TF Serving's script does.
    Returns the base path `<folder>/<name>`.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    signature_def_utils = v1.saved_model.signature_def_utils
    build_info = v1.saved_model.utils.build_tensor_info

    def signature(inputs: dict, outputs: dict, method: str):
        return signature_def_utils.build_signature_def(
            {k: build_info(t) for k, t in inputs.items()}, {k: build_info(t) for k, t in outputs.items()}, method
        )

    def write(export_dir: str) -> None:
        with tempfile.TemporaryDirectory() as original_assets, tf.Graph().as_default() as graph:
            # TF Serving writes the asset to /tmp/original/export/assets; the builder copies it into assets/.
            asset_path = os.path.join(original_assets, "foo.txt")
            with open(asset_path, "w") as f:
                f.write("asset-file-contents")
            with v1.Session(graph=graph) as sess:
                # Reference variables (VariableV2), as the TF 1.x original: this is the TF1 loading path.
                a = v1.Variable(0.5, name="a", use_resource=False)
                b_var = v1.Variable(b, name="b", use_resource=False)
                c = v1.Variable(3.0, name="c", use_resource=False)
                serialized = v1.placeholder(tf.string, name="tf_example")  # unknown rank, as the checked-in model
                parsed = parse_example_v1(tf, serialized)
                x = tf.identity(parsed["x"], name="x")
                y = tf.identity(tf.add(tf.multiply(a, x), b_var), name="y")
                y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
                x2 = tf.identity(parsed["x2"], name="x2")
                # Separate variables for the x2 path (TF Serving: keeps optimizers from fusing the paths).
                a2 = v1.Variable(0.5, name="a2", use_resource=False)
                c2 = v1.Variable(3.0, name="c2", use_resource=False)
                y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")

                v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(asset_path))
                filename = v1.Variable(
                    "foo.txt", name="filename_tensor", trainable=False, collections=[], use_resource=False
                )
                assign_filename = filename.assign("foo.txt")

                tensors = {"tf_example:0": serialized, "x:0": x, "x2:0": x2, "y:0": y, "y2:0": y2, "y3:0": y3}
                signature_defs = {
                    key: signature(
                        {k: tensors[t] for k, t in inputs.items()}, {k: tensors[t] for k, t in outputs.items()}, method
                    )
                    for key, (method, inputs, outputs) in HALF_PLUS_TWO_TF1_SIGNATURES.items()
                }
                sess.run(v1.global_variables_initializer())
                builder = v1.saved_model.Builder(export_dir)
                builder.add_meta_graph_and_variables(
                    sess,
                    [v1.saved_model.tag_constants.SERVING],
                    signature_def_map=signature_defs,
                    assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
                    main_op=tf.group(assign_filename),
                )
                builder.save()

    return _publish(folder, name, version_dir, write)


def parse_example_v1(tf, serialized) -> dict:
    """{x: float [-1, 1] (required), x2: float [-1, 1] (default 0)} parsed by TF 1.x's `ParseExample` op.

    The checked-in model (TF 1.14's `tf.parse_example`) uses this op, not TF 2's `ParseExampleV2`: it wants
    a vector of serialized Examples, and its shape function gives [-1, 1] even for an input of unknown rank
    (the SignatureDefs record those shapes). `tf.compat.v1.parse_example` would write ParseExampleV2.
    """
    with tf.name_scope("ParseExample"):
        dense_defaults = [tf.constant([], dtype=tf.float32), tf.constant([0.0], dtype=tf.float32, name="key_x2")]
        dense_keys = [tf.constant("x"), tf.constant("x2")]
        result = tf.raw_ops.ParseExample(
            serialized=serialized,
            names=tf.constant([], dtype=tf.string),
            sparse_keys=[],
            dense_keys=dense_keys,
            dense_defaults=dense_defaults,
            sparse_types=[],
            dense_shapes=[[1], [1]],
            name="ParseExample",
        )
    return dict(zip(("x", "x2"), result.dense_values, strict=True))


_parse_example_v1 = parse_example_v1  # the name test_rest_conformance.py used first


def write_half_plus_two_tf2(
    folder: str | os.PathLike, name: str = "half_plus_two_tf2", version_dir: str = VERSION_DIR
) -> Path:
    """TF Serving's native TF2 half_plus_two (`HalfPlusTwoModel`), saved with `tf.saved_model.save`.

    `serving_default`: x float32 [1] -> y = 0.5 * x + 2. Regress/classify signatures parse tf.Examples
    (string [None]) or take x2 float32 [1]; see `HALF_PLUS_TWO_TF2_SIGNATURES`. Carries the asset foo.txt.
    Returns the base path `<folder>/<name>`.
    """
    import tensorflow as tf

    def write(export_dir: str) -> None:
        with tempfile.TemporaryDirectory() as original_assets:
            asset_path = os.path.join(original_assets, "foo.txt")
            with open(asset_path, "w") as f:
                f.write("asset-file-contents")
            module = _half_plus_two_module(tf, asset_path)
            tf.saved_model.save(module, export_dir, signatures=module.serving_signatures())

    return _publish(folder, name, version_dir, write)


def _half_plus_two_module(tf, asset_path: str):
    """`HalfPlusTwoModel` of TF Serving's script (TF2 API; `tf.io.parse_example` for `tf.parse_example`)."""
    feature_spec = {
        "x": tf.io.FixedLenFeature([1], dtype=tf.float32),
        "x2": tf.io.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0]),
    }
    examples = tf.TensorSpec([None], dtype=tf.string, name="inputs")
    one_float = tf.TensorSpec([1], dtype=tf.float32, name="inputs")

    class HalfPlusTwoModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(2.0, name="b")
            self.c = tf.Variable(3.0, name="c")
            self.asset = tf.saved_model.Asset(asset_path)

        def compute(self, x, inc):
            return tf.add(tf.multiply(self.a, x), inc)

        @tf.function(input_signature=[tf.TensorSpec(shape=[1], dtype=tf.float32)])
        def predict(self, x):
            return {"y": self.compute(x, self.b)}

        @tf.function(input_signature=[examples])
        def regress_xy(self, serialized):
            return {"outputs": self.compute(tf.io.parse_example(serialized, feature_spec)["x"], self.b)}

        @tf.function(input_signature=[examples])
        def regress_xy2(self, serialized):
            return {"outputs": self.compute(tf.io.parse_example(serialized, feature_spec)["x"], self.c)}

        @tf.function(input_signature=[one_float])
        def regress_x2y3(self, x2):
            return {"outputs": self.compute(x2, self.c)}

        @tf.function(input_signature=[examples])
        def classify_xy(self, serialized):
            return {"scores": self.compute(tf.io.parse_example(serialized, feature_spec)["x"], self.b)}

        @tf.function(input_signature=[one_float])
        def classify_x2y3(self, x2):
            return {"scores": self.compute(x2, self.c)}

        def serving_signatures(self) -> dict:
            return {
                "regress_x_to_y": self.regress_xy,
                "regress_x_to_y2": self.regress_xy2,
                "regress_x2_to_y3": self.regress_x2y3,
                "classify_x_to_y": self.classify_xy,
                "classify_x2_to_y3": self.classify_x2y3,
                "serving_default": self.predict,
            }

    return HalfPlusTwoModel()


def write_tf_saved_model_save(
    folder: str | os.PathLike, name: str = "tf_saved_model_save", version_dir: str = VERSION_DIR
) -> Path:
    """`test_tf_saved_model_save`: a tf.train.Checkpoint with v1 = 3, v2 = 2 and f(x) = {"y": v1 * v2 * x}.

    `serving_default`: x float32 of unknown rank -> y = 6 * x, same shape (TF Serving expects 12 for 2).
    Returns the base path `<folder>/<name>`.
    """
    import tensorflow as tf

    def write(export_dir: str) -> None:
        root = tf.train.Checkpoint()
        root.v1 = tf.Variable(3.0)
        root.v2 = tf.Variable(2.0)
        root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
        tf.saved_model.save(root, export_dir, root.f.get_concrete_function(tf.TensorSpec(None, tf.float32)))

    return _publish(folder, name, version_dir, write)


def write_keras_sequential(
    folder: str | os.PathLike, name: str = "keras_sequential", version_dir: str = VERSION_DIR
) -> Path:
    """`test_(distrat_)sequential_keras_saved_model_save` in tf_keras, saved with `tf.saved_model.save`.

    Input `x` float32 [None, 1] -> Dense(1, kernel ones, bias zeros) -> Lambda identity named `y`;
    `serving_default` maps x [n, 1] to y [n, 1] = x (TF Serving sends [[2.0]] and expects 2.0).
    Returns the base path `<folder>/<name>`.
    """
    import tensorflow as tf
    import tf_keras as keras

    def write(export_dir: str) -> None:
        model = keras.models.Sequential(
            [
                keras.layers.Input(dtype="float32", shape=(1,), name="x"),
                keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros"),
                keras.layers.Lambda(lambda t: t, name="y"),
            ]
        )
        tf.saved_model.save(model, export_dir)

    return _publish(folder, name, version_dir, write)


def write_all(folder: str | os.PathLike) -> dict[str, Path]:
    """Every reference model under `folder`: {model name: base path}."""
    builders = (write_half_plus_two_tf1, write_half_plus_two_tf2, write_tf_saved_model_save, write_keras_sequential)
    paths = [build(folder) for build in builders]
    return {path.name: path for path in paths}


def model_config_text(base_paths: dict[str, Path]) -> str:
    """A text ModelServerConfig (`--model_config_file`) serving each {name: base path}."""
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{path}"\n    model_platform: "tensorflow"\n  }}\n'
        for name, path in base_paths.items()
    )
    return f"model_config_list {{\n{entries}}}\n"


def _publish(folder: str | os.PathLike, name: str, version_dir: str, write) -> Path:
    """Runs `write(staging_dir)` beside the model, then renames the result to `<folder>/<name>/<version_dir>`."""
    base_path = Path(folder) / name
    base_path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))
    try:
        export_dir = staging / version_dir
        write(str(export_dir))
        os.rename(export_dir, base_path / version_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return base_path
