"""Serving signatures. Every signature runs the tf.Transform graph before the model.

- `serving_default`: serialized `tf.Example`s (`examples`, tf.string [None]). A value equal to
  `predict_raw`'s missing marker (NaN, "", int64's minimum) is missing there too: dropped from an
  optional feature, refused in a required one (`parsed_markers_as_missing`).
- `predict_raw`: one dense [None] tensor per raw feature, for JSON and mobile
  clients; absent values are written as the markers in `models.features`. It
  refuses (InvalidArgumentError, TF Serving's 400) inputs of unequal lengths,
  rows missing a required feature and infinite floats: see `check_raw_inputs`.
  Every serving signature refuses a number beyond `features.Z_LIMIT` standard
  deviations from its training mean (`check_in_range`).
- `transform_features`: serialized examples -> transformed features (for TFMA).
- `classification` / `regression`: TF Serving's Classify and Regress APIs
  (`inputs`: serialized examples; `classes`+`scores` over the label's classes, or
  `outputs`): classification for binary and multiclass models, regression for
  regression and binary ones (see `build`).
Outputs follow the problem's task (`Problem.output`).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from tfxp.models import features as F

SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
TRANSFORM_FEATURES = "transform_features"
CLASSIFICATION = "classification"
REGRESSION = "regression"
# Where a saved model keeps a copy of its tf.Transform output (analyzer results,
# vocabularies, raw schema), so it can be converted (mobile/) on its own. TF
# Serving ignores assets.extra/ apart from its warmup file.
TRANSFORM_OUTPUT_DIR = "assets.extra/transform_output"
PROBLEM_FILE = "assets.extra/tfxp_problem.json"
EXAMPLES_INPUT = "examples"
# TF Serving's fixed tensor keys for the Classify/Regress APIs.
CLASSIFY_INPUTS = "inputs"
_METHODS = {CLASSIFICATION: "tensorflow/serving/classify", REGRESSION: "tensorflow/serving/regress"}

_TF_DTYPES = {F.DType.INT: tf.int64, F.DType.FLOAT: tf.float32, F.DType.STRING: tf.string}


def raw_serving_spec(tf_transform_output: tft.TFTransformOutput, problem: F.Problem) -> dict:
    """The raw spec minus the label; columns the model ignores get defaults so clients may omit them."""
    spec = dict(tf_transform_output.raw_feature_spec())
    spec.pop(problem.label.column, None)
    used = {f.name for f in problem.features}
    for name, feature_spec in spec.items():
        if name not in used and isinstance(feature_spec, tf.io.FixedLenFeature):
            default = "" if feature_spec.dtype == tf.string else 0
            spec[name] = tf.io.FixedLenFeature(feature_spec.shape, feature_spec.dtype, default_value=default)
    return spec


def _is_present(value: tf.Tensor, dtype: F.DType) -> tf.Tensor:
    if dtype is F.DType.FLOAT:
        return tf.logical_not(tf.math.is_nan(value))
    return tf.not_equal(value, tf.constant(F.missing_value(dtype), value.dtype))


# As TF prints them in an assertion message (it escapes quotes, so no "").
_MARKER_TEXT = {F.DType.INT: str(F.MISSING_INT), F.DType.FLOAT: "NaN", F.DType.STRING: "empty string"}
_ROWS_SHOWN = 5  # a "required input is missing" message names the first and last 5 rows


def _marker_rows(value: tf.Tensor, dtype: F.DType) -> tf.Tensor:
    """Indices (int64 [k]) of the rows of a [batch] raw input that hold its missing marker."""
    return tf.where(tf.logical_not(_is_present(value, dtype)))[:, 0]


def finite_features(schema) -> frozenset[str]:
    """FLOAT features whose schema `float_domain` (inline or named) sets `disallow_inf`.

    `schema`: a tensorflow_metadata Schema (e.g. `TFTransformOutput.raw_metadata.schema`).
    """
    named = {domain.name: domain for domain in schema.float_domain}
    names = set()
    for feature in schema.feature:
        if feature.HasField("float_domain"):
            domain = feature.float_domain
        elif feature.HasField("domain") and feature.domain in named:
            domain = named[feature.domain]
        else:
            continue
        if domain.disallow_inf:
            names.add(feature.name)
    return frozenset(names)


def check_raw_inputs(raw: dict, raw_spec: dict, problem: F.Problem, finite: frozenset[str] = frozenset()) -> list:
    """Assertions that make `predict_raw` refuse what it cannot answer; run them before the transform.

    `raw`: {feature name: [batch] tensor}; `raw_spec`: `raw_serving_spec(...)`;
    `finite`: float features that may not be infinite (`finite_features`).
    The failed assertion is an InvalidArgumentError naming the feature, which TF
    Serving (and `tfxp serve`) return as 400 / INVALID_ARGUMENT: the check lives
    in the SavedModel, so every server answers the same.

    - One value per row in every input: all lengths equal the first feature's.
      (A shorter optional column was silently re-aligned by the sparse
      conversion below; a longer one failed inside the transform.)
    - No required feature (a FixedLenFeature of the raw schema without default)
      holds its missing marker in any row: `serving_default` refuses the same
      rows ("Feature: ... is required but could not be found"), and the model has
      no meaningful answer for them.
    - No `finite` feature is +-inf: the schema calls it an anomaly, and the model's
      answer would be NaN arithmetic (TF and TFLite even disagree on it).
    """
    names = [f.name for f in problem.features if f.name in raw]
    first = names[0]
    rows = tf.shape(raw[first], out_type=tf.int64)[0]
    checks = []
    for name in names[1:]:
        length = tf.shape(raw[name], out_type=tf.int64)[0]
        message = tf.strings.format(
            f"predict_raw: input {name} has {{}} values but input {first} has {{}}: "
            "every input needs one value per row",
            [length, rows],
        )
        checks.append(tf.debugging.Assert(tf.equal(length, rows), [message], name=f"check_{name}_length"))
    for name in names:
        spec = raw_spec.get(name)
        if not isinstance(spec, tf.io.FixedLenFeature) or spec.default_value is not None:
            continue  # optional: the marker reads as absent
        dtype = problem.by_name(name).dtype
        missing = _marker_rows(raw[name], dtype)
        message = tf.strings.format(
            f"predict_raw: required input {name} is missing (the marker {_MARKER_TEXT[dtype]}) in rows {{}}",
            [missing],
            summarize=_ROWS_SHOWN,
        )
        checks.append(tf.debugging.Assert(tf.equal(tf.size(missing), 0), [message], name=f"check_{name}_present"))
    for name in names:
        if name not in finite or problem.by_name(name).dtype is not F.DType.FLOAT:
            continue
        infinite = tf.where(tf.math.is_inf(raw[name]))[:, 0]
        message = tf.strings.format(
            f"predict_raw: input {name} is infinite (the schema disallows it) in rows {{}}",
            [infinite],
            summarize=_ROWS_SHOWN,
        )
        checks.append(tf.debugging.Assert(tf.equal(tf.size(infinite), 0), [message], name=f"check_{name}_finite"))
    return checks


def check_in_range(transformed: dict, problem: F.Problem) -> list:
    """Assertions that no NUMERIC feature's z-score is beyond +-`F.Z_LIMIT` (features.Z_LIMIT says why).

    `transformed`: the tf.Transform layer's output ({transformed name: [batch] or [batch, 1]});
    a missing value's z is 0, so only values present are checked. Run after the transform and
    before the model, in every serving signature; a failed check is INVALID_ARGUMENT (400) naming
    the input and the rows. `mobile.graph` gives those rows NaN: the same contract.
    """
    checks = []
    for feature in problem.features:
        name = F.transformed_name(feature.name)
        if feature.kind is not F.Kind.NUMERIC or name not in transformed:
            continue
        z = tf.reshape(transformed[name], [-1])
        beyond = tf.where(tf.greater(tf.abs(z), F.Z_LIMIT))[:, 0]
        message = tf.strings.format(
            f"input {feature.name} is more than {F.Z_LIMIT:g} standard deviations from its training mean "
            "(nothing the model learned) in rows {}",
            [beyond],
            summarize=_ROWS_SHOWN,
        )
        checks.append(tf.debugging.Assert(tf.equal(tf.size(beyond), 0), [message], name=f"check_{feature.name}_range"))
    return checks


def check_parsed_finite(parsed: dict, finite: frozenset[str]) -> list:
    """Assertions that no `finite` feature of parsed tf.Examples is +-inf.

    `parsed`: `tf.io.parse_example` output ({name: [batch, 1] Tensor or SparseTensor}).
    The same rule as `check_raw_inputs`, for `serving_default` and the Classify and
    Regress signatures built on it; a failed check is INVALID_ARGUMENT naming the feature.
    """
    checks = []
    for name in sorted(finite & parsed.keys()):
        value = parsed[name]
        values = value.values if isinstance(value, tf.SparseTensor) else tf.reshape(value, [-1])
        if values.dtype != tf.float32:
            continue
        count = tf.reduce_sum(tf.cast(tf.math.is_inf(values), tf.int32))
        message = tf.strings.format(f"input {name} is infinite (the schema disallows it) in {{}} examples", [count])
        checks.append(tf.debugging.Assert(tf.equal(count, 0), [message], name=f"check_{name}_finite"))
    return checks


def parsed_markers_as_missing(parsed: dict, problem: F.Problem) -> tuple[dict, list]:
    """(parsed, checks): the tf.Example path reads `predict_raw`'s missing markers as `predict_raw` does.

    A tf.Example can leave a feature out, but it can also hold NaN (a float), "" (a string) or
    int64's minimum: in an optional feature those values are dropped (absent, the same answer as
    `predict_raw` and TFLite give), and in a required feature they are refused ("input x is missing
    (the marker NaN) in examples [...]", INVALID_ARGUMENT), as `predict_raw` refuses them. Without
    this a NaN in a required float got a confident answer (NaN arithmetic, or the bias alone).
    `parsed`: `tf.io.parse_example` output; features of `problem` only.
    """
    out, checks = dict(parsed), []
    for feature in problem.features:
        value = parsed.get(feature.name)
        if value is None:
            continue
        if isinstance(value, tf.SparseTensor):
            out[feature.name] = tf.sparse.retain(value, _is_present(value.values, feature.dtype))
            continue
        missing = _marker_rows(tf.reshape(value, [-1]), feature.dtype)
        message = tf.strings.format(
            f"required input {feature.name} is missing (the marker {_MARKER_TEXT[feature.dtype]}) in examples {{}}",
            [missing],
            summarize=_ROWS_SHOWN,
        )
        checks.append(
            tf.debugging.Assert(tf.equal(tf.size(missing), 0), [message], name=f"check_{feature.name}_present")
        )
    return out, checks


def raw_tensors_to_features(raw: dict, raw_spec: dict, problem: F.Problem) -> dict:
    """Turns dense raw tensors (with missing-value markers) into what parsing a tf.Example gives.

    Optional columns become [batch, 1] SparseTensors with absent entries dropped,
    exactly as `tf.io.parse_example` produces them for examples lacking the feature,
    so `predict_raw` and `serving_default` see identical transform inputs.
    """
    batch = tf.shape(next(iter(raw.values())), out_type=tf.int64)[0]
    features = {}
    for name, spec in raw_spec.items():
        feature = problem.by_name(name) if name in raw else None
        if feature is None:
            # Columns the model ignores (the transform graph still declares them).
            if isinstance(spec, tf.io.FixedLenFeature):
                features[name] = tf.zeros(tf.stack([batch, 1]), spec.dtype)
                continue
            features[name] = tf.SparseTensor(
                tf.zeros([0, 2], tf.int64), tf.zeros([0], spec.dtype), tf.stack([batch, 1])
            )
            continue
        value = tf.cast(raw[name], spec.dtype) if feature.dtype is not F.DType.STRING else raw[name]
        if isinstance(spec, tf.io.FixedLenFeature):
            features[name] = tf.reshape(value, [-1, 1])
            continue
        rows = tf.where(_is_present(raw[name], feature.dtype))[:, 0]
        features[name] = tf.SparseTensor(
            indices=tf.stack([rows, tf.zeros_like(rows)], axis=1),
            values=tf.gather(value, rows),
            dense_shape=tf.stack([batch, 1]),
        )
    return features


def build(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, problem: F.Problem) -> dict:
    """Returns the signatures as concrete functions, keyed by signature name.

    Predict output `problem.output`: binary `probability` float32 [N]; multiclass `probabilities`
    float32 [N, K]; regression `prediction` float32 [N]. `classification` (binary, multiclass):
    `classes` string [N, K] (the label's values; binary: negative, positive) and `scores` float32
    [N, K]. `regression` (regression; binary too, its `outputs` being the probability): float32 [N].
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    serving_spec = raw_serving_spec(tf_transform_output, problem)
    task = problem.label.task
    output = problem.output

    def predict(transformed: dict) -> dict:
        # The model sees no value beyond what it can answer (check_in_range).
        with tf.control_dependencies(check_in_range(transformed, problem)):
            transformed = {name: tf.identity(value) for name, value in transformed.items()}
        prediction = model(transformed)
        if task is F.Task.MULTICLASS:
            return {output: prediction}
        return {output: tf.reshape(prediction, [-1])}

    finite = finite_features(tf_transform_output.raw_metadata.schema)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serving_default(examples):
        parsed, checks = parsed_markers_as_missing(tf.io.parse_example(examples, serving_spec), problem)
        with tf.control_dependencies(checks + check_parsed_finite(parsed, finite)):
            parsed = {
                name: tf.identity(value)
                if isinstance(value, tf.Tensor)
                else tf.SparseTensor(value.indices, tf.identity(value.values), value.dense_shape)
                for name, value in parsed.items()
            }
        return predict(model.tft_layer(parsed))

    raw_inputs = {f.name: tf.TensorSpec([None], _TF_DTYPES[f.dtype], name=f.name) for f in problem.features}

    @tf.function(autograph=False, input_signature=[raw_inputs])
    def predict_raw(raw):
        # Every op of the transform waits for the checks: none sees unchecked inputs.
        with tf.control_dependencies(check_raw_inputs(raw, serving_spec, problem, finite)):
            raw = {name: tf.identity(value) for name, value in raw.items()}
        return predict(model.tft_layer(raw_tensors_to_features(raw, serving_spec, problem)))

    full_spec = tf_transform_output.raw_feature_spec()

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, full_spec))

    functions = {
        SERVING_DEFAULT: serving_default.get_concrete_function(),
        PREDICT_RAW: predict_raw.get_concrete_function(),
        TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    }
    if task is not F.Task.REGRESSION:
        class_names = tf.constant([list(problem.label.classes or ("0", "1"))])

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
        def classification(inputs):
            prediction = serving_default(inputs)[output]
            scores = prediction if task is F.Task.MULTICLASS else tf.stack([1.0 - prediction, prediction], axis=1)
            classes = tf.tile(class_names, tf.stack([tf.shape(scores)[0], 1]))
            return {"classes": classes, "scores": scores}

        functions[CLASSIFICATION] = classification.get_concrete_function()
    if task is not F.Task.MULTICLASS:

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
        def regression(inputs):
            return {"outputs": serving_default(inputs)[output]}

        functions[REGRESSION] = regression.get_concrete_function()
    return functions


def save(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, path: str, problem: F.Problem) -> None:
    """Saves a Keras SavedModel whose signatures are the serving interface, with copies of the
    Transform output (`TRANSFORM_OUTPUT_DIR`) and the problem (`PROBLEM_FILE`) so converters and
    tools need only the SavedModel.

    save_traces=False: the per-layer call traces (8 s of the save) only serve
    reloading custom layers as Keras objects; this model's layers are all
    built-ins, rebuilt from their config.
    """
    import json

    from tfxp.files import copy_tree

    model.save(path, save_format="tf", signatures=build(model, tf_transform_output, problem), save_traces=False)
    _set_method_names(path)
    copy_tree(
        tf_transform_output.transform_savedmodel_dir.rstrip("/").rsplit("/", 1)[0],
        f"{path.rstrip('/')}/{TRANSFORM_OUTPUT_DIR}",
    )
    with tf.io.gfile.GFile(f"{path.rstrip('/')}/{PROBLEM_FILE}", "w") as f:
        f.write(json.dumps(problem.to_dict(), indent=2))


def load_problem(saved_model_dir: str) -> F.Problem:
    """The Problem a SavedModel of this project was trained on (`PROBLEM_FILE`). Raises
    FileNotFoundError for a SavedModel without it."""
    import json

    path = f"{str(saved_model_dir).rstrip('/')}/{PROBLEM_FILE}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path}: no such file; the SavedModel was not saved by this project's "
            "Trainer (tfxp.models.signatures.save), so its problem is unknown"
        )
    with tf.io.gfile.GFile(path) as f:
        return F.Problem.from_dict(json.load(f))


def _set_method_names(path: str) -> None:
    """Marks the classification/regression signatures with TF Serving's method names.

    TF2's SavedModel writer labels every signature "predict"; TF Serving's
    Classify/Regress refuse such signatures. The fingerprint file checksums the
    old saved_model.pb, so it is dropped (it is optional; loaders don't need it).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    # tf.io.gfile: on Vertex AI the model directory is a gs:// URI.
    gfile = tf.io.gfile
    pb_path = f"{path.rstrip('/')}/saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    with gfile.GFile(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        for name, method in _METHODS.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
    with gfile.GFile(pb_path, "wb") as f:
        f.write(saved_model.SerializeToString())
    fingerprint = f"{path.rstrip('/')}/fingerprint.pb"
    if gfile.exists(fingerprint):
        gfile.remove(fingerprint)
