"""Custom pipeline components: the data gate, the atomic Pusher and the mobile Pusher.

Both are Python-function components so they run unchanged under LocalDagRunner
and in the pipeline image on Vertex AI.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from tfxp.mobile.errors import ConversionError
from tfxp.pipeline import failpoints
from tfxp.pipeline.config import is_uri
from tfxp.pipeline.publish import (
    LATEST_FILE,
    find_pushed,
    latest_version,
    next_version,
    publish_latest,
    publish_version,
)
from tfxp.project.spec import Monitoring
from tfxp.schema import anomalies as anomalies_lib

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


@component
def DataGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    data_gate: OutputArtifact[standard_artifacts.String],
) -> None:
    """Stops the run before Transform and training on ExampleValidator's anomalies or an empty split.

    Raises tfxp.schema.anomalies.DataAnomaliesError listing every finding.
    """
    found = anomalies_lib.read_anomalies(anomalies.uri)
    found += anomalies_lib.empty_splits(anomalies_lib.split_row_counts(statistics.uri))
    if found:
        raise anomalies_lib.DataAnomaliesError(found)
    data_gate.value = "no anomalies"


def _eval_records(examples_uri: str, limit: int) -> list[bytes]:
    """Up to `limit` serialized tf.Examples of the eval split written by ExampleGen."""
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, "Split-eval", "*"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)]


def _write_warmup(examples_uri: str, model_name: str, destination: str, count: int) -> None:
    """Writes TF Serving warmup requests (PredictionLog TFRecord) from real eval examples."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from tfxp.models import signatures

    records = _eval_records(examples_uri, count)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signatures.SERVING_DEFAULT
    request.inputs[signatures.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(records, dtype=tf.string))
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    with tf.io.TFRecordWriter(destination) as writer:
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        writer.write(log.SerializeToString())


def _eval_predictions(model_dir: str, records: list[bytes], problem: dict) -> list:
    """The model's answers on eval examples, as the monitor reads served answers (tfxp.monitoring.logs):
    the probability (binary), the class name (multiclass) or the value. An example the model refuses (a
    value beyond its range: features.Z_LIMIT) has no answer and is left out."""
    import numpy as np
    import tensorflow as tf

    from tfxp.models import features, signatures

    task = problem["label"]["task"]
    output = features.OUTPUTS[features.Task(task)]
    serve = tf.saved_model.load(model_dir).signatures[signatures.SERVING_DEFAULT]

    def run(batch: list[bytes]) -> list:
        try:
            values = serve(examples=tf.constant(batch))[output].numpy()
        except tf.errors.InvalidArgumentError:
            return [a for record in batch for a in run([record])] if len(batch) > 1 else []
        if task == "multiclass":
            return [problem["label"]["classes"][i] for i in np.argmax(values, axis=1)]
        return [float(v) for v in values.reshape(-1)]

    return [answer for start in range(0, len(records), 500) for answer in run(records[start : start + 500])]


def _write_monitoring(staging: str, examples_uri: str, statistics_uri: str, schema_uri: str, settings, rows: int):
    """The monitoring reference a pushed version carries (tfxp.monitoring.reference): the train split's
    statistics, the schema with the comparators' thresholds (`settings`), and the model's answers on up
    to `rows` eval rows."""

    import tensorflow as tf

    from tfxp.monitoring import reference

    with tf.io.gfile.GFile(os.path.join(statistics_uri, "Split-train", "FeatureStats.pb"), "rb") as f:
        train_statistics = f.read()
    with tf.io.gfile.GFile(os.path.join(schema_uri, "schema.pbtxt")) as f:
        schema_text = f.read()
    with open(os.path.join(staging, reference.PROBLEM_FILE)) as f:
        problem = json.load(f)
    answers = _eval_predictions(staging, _eval_records(examples_uri, rows), problem)
    reference.write(staging, train_statistics, schema_text, problem, settings, answers)


@component
def AtomicPusher(
    model: InputArtifact[standard_artifacts.Model],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    examples: InputArtifact[standard_artifacts.Examples],
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    model_evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
    infra_blessing: InputArtifact[standard_artifacts.InfraBlessing],
    pushed_model: OutputArtifact[standard_artifacts.PushedModel],
    serving_dir: Parameter[str],
    model_name: Parameter[str],
    warmup_records: Parameter[int] = 10,
    monitoring: Parameter[str] = "{}",
    monitoring_rows: Parameter[int] = 2000,
    model_card: Parameter[str] = "{}",
    baseline_model: InputArtifact[standard_artifacts.Model] = None,
) -> None:
    """Pushes a blessed model to `<serving_dir>/<version>/` atomically, with warmup requests, the
    monitoring reference (`assets.extra/tfxp_monitoring/`: tfxp.monitoring.reference; `monitoring`: the
    project's thresholds as JSON, `monitoring_rows`: eval rows whose answers describe the predictions) and
    the model card (`model_card.json` + `.html`: tfxp.pipeline.model_card; `model_card`: its facts known
    before the run, `baseline_model`: the model the Evaluator compared it with, when there was one).

    A model server polling the base path sees either no new version or a complete
    one (see `pipeline.publish`). Re-executed for a model it already pushed (the
    run crashed before TFX recorded this component), it records that version
    again and copies nothing.
    """
    if model_blessing.get_int_custom_property("blessed") != 1 or infra_blessing.get_int_custom_property("blessed") != 1:
        pushed_model.set_int_custom_property("pushed", 0)
        return

    earlier = find_pushed(serving_dir, model.uri)
    # Chosen here, not by publish_version, so the card written into the staging folder names it.
    version = earlier[0] if earlier is not None else next_version(serving_dir)

    artifacts = {"model": model, "examples": examples, "statistics": statistics, "schema": schema}
    artifacts.update(model_evaluation=model_evaluation, baseline_model=baseline_model, infra_blessing=infra_blessing)

    def card(version_dir: str) -> None:
        from tfxp.pipeline.model_card import write_card
        from tfxp.pipeline.model_card_build import build_card

        facts = json.loads(model_card)
        built = build_card(model_name, version, version_dir, facts, artifacts, serving_dir, pushed_model)
        write_card(version_dir, built)

    version, final = publish_version(
        os.path.join(model.uri, "Format-Serving"),
        serving_dir,
        add_files=lambda staging: (
            _write_warmup(examples.uri, model_name, os.path.join(staging, WARMUP_FILE), warmup_records),
            _write_monitoring(
                staging, examples.uri, statistics.uri, schema.uri, Monitoring.from_json(monitoring), monitoring_rows
            ),
            card(staging),
        ),
        version=version,
        source_id=model.uri,
    )
    if earlier is not None and not is_uri(final):
        # The model was pushed before (no new version): the project's monitoring thresholds may have changed,
        # and a version pushed before cards existed gets one.
        from tfxp.monitoring.reference import update_thresholds
        from tfxp.pipeline.model_card import read_card

        update_thresholds(final, Monitoring.from_json(monitoring))
        old = read_card(final)
        if old is None:
            card(final)  # pushed before cards existed
        else:
            _update_considerations(final, old, json.loads(model_card))
    failpoints.hit("pusher:published")
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", final)
    pushed_model.set_string_custom_property("pushed_version", str(version))
    # A model blessed again (e.g. an older model re-trained from cache) keeps its
    # earlier version; a newer version may be the one TF Serving serves.
    pushed_model.set_int_custom_property("pushed_earlier", int(earlier is not None))
    pushed_model.set_string_custom_property("served_version", str(latest_version(serving_dir)))


def _update_considerations(version_dir: str, card: dict, facts: dict) -> None:
    """A version pushed before, blessed again: its card still describes that push (its evaluation, baseline, data
    and time); only the project's considerations (intended use, limitations) are brought up to date."""
    from tfxp.pipeline.model_card import write_card

    considerations = facts.get("considerations") or {}
    if card.get("considerations") != considerations:
        write_card(version_dir, {**card, "considerations": considerations})


def _card_with_mobile(serving_version_dir: str, mobile: dict) -> dict | None:
    """The serving version's card with its `mobile` section set (written back there); None without a card."""
    from tfxp.pipeline.model_card import read_remote_card, write_card

    card = read_remote_card(serving_version_dir)
    if card is None:
        return None
    card["mobile"] = mobile
    write_card(serving_version_dir, card)
    return card


def _record_conversion_error(exc: Exception, report_file: str, output, serving_version: str, version: int) -> None:
    """A ConversionError kept on the MobilePusher's output, its report.json and the serving version's card.

    The serving version stays pushed: the run reports this (runner.ExitCode.MOBILE_FAILED)."""
    import tensorflow as tf

    from tfxp.pipeline.model_card_build import mobile_section

    error = f"{type(exc).__name__}: {exc}"
    with tf.io.gfile.GFile(report_file, "w") as f:
        f.write(json.dumps({"error": error}, indent=2))
    output.set_string_custom_property("error", error)
    _card_with_mobile(serving_version, {**mobile_section(version, {}, {}), "error": error})


def _eval_rows(examples_uri: str, limit: int) -> list[dict[str, str]]:
    """Eval-split tf.Examples back as raw CSV-like rows (strings; "" for an empty cell), by tfxp.rows."""
    from tfxp.rows import example_row

    return [example_row(record) for record in _eval_records(examples_uri, limit)]


_METRIC_ALLOWED = r"\|{text} - SavedModel's\| <= ([0-9.eE+-]+)"


def worded_reasons(variant) -> list[str]:
    """Why a TFLite variant (a tfxp.mobile.convert.VariantResult) was not written, the parity gate's metric
    failure in words: "AUC 0.912 vs the SavedModel's 0.921 on 330 eval rows: they differ by 0.009, more
    than the 0.005 allowed". Other reasons (converter, operators, per-row differences) are kept as worded by
    the converter; a reason this can't read is kept as it is."""
    import re

    from tfxp.mobile.parity import METRIC_TEXT

    report = variant.parity
    if report is None or report.metric is None or report.metric_delta is None or report.metric_value is None:
        return list(variant.reasons)
    text = METRIC_TEXT[report.metric]
    allowed = re.search(_METRIC_ALLOWED.format(text=re.escape(text)), report.gate)
    out = []
    for reason in variant.reasons:
        if allowed and reason.startswith(f"{text} ") and "|delta|" in reason:
            bound = float(allowed.group(1))
            if report.metric == "rmse":  # the gate is relative: a share of the SavedModel's RMSE
                differ = f"{report.metric_delta:.1%} of the SavedModel's RMSE, more than the {bound:.1%} allowed"
            else:
                differ = f"{report.metric_delta:.2g}, more than the {bound:.2g} allowed"
            reason = (
                f"{text} {report.metric_value:.4g} vs the SavedModel's {report.reference_metric_value:.4g} on "
                f"{report.labeled_rows} eval rows: they differ by {differ}"
            )
        out.append(reason)
    return out


def _point_latest(mobile_dir: str, version_dir: str, version: int, model_name: str) -> bool:
    """Points `<mobile_dir>/latest.json` at a published mobile version: its model_spec.json and the variant
    files that spec lists, the web file too (as published: a re-executed push may have found an earlier
    copy), with their sha256s. False when the pointer already names a newer version (left as it is)."""

    import tensorflow as tf

    from tfxp.mobile.runtime import SPEC_FILE

    with tf.io.gfile.GFile(f"{version_dir.rstrip('/')}/{SPEC_FILE}") as f:
        spec = json.loads(f.read())
    files = [SPEC_FILE] + [v["file"] for v in spec.get("variants", {}).values()]
    web_file = (spec.get("web") or {}).get("file")  # model_web.tflite, when the web variant was written
    if web_file:
        files.append(web_file)
    extra = {
        "model_name": model_name,
        "spec": f"{version}/{SPEC_FILE}",
        "spec_format": spec.get("format"),
        "default_variant": spec.get("default_variant"),
    }
    return publish_latest(mobile_dir, version, files, extra=extra) is not None


@component
def MobilePusher(
    model: InputArtifact[standard_artifacts.Model],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    examples: InputArtifact[standard_artifacts.Examples],
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    infra_blessing: InputArtifact[standard_artifacts.InfraBlessing],
    mobile_pushed_model: OutputArtifact[standard_artifacts.PushedModel],
    mobile_dir: Parameter[str],
    model_name: Parameter[str],
    parity_rows: Parameter[int] = 2000,
) -> None:
    """Converts the pushed model to builtin-ops TFLite, parity-gates each variant, pushes the passing ones.

    Same version number as the serving push, published atomically to
    `<mobile_dir>/<version>/`. A variant that fails its gate is left out and the
    reasons are kept on the output artifact (and in its report.json), the parity
    gate's metric failure in words (`worded_reasons`); a ConversionError (the
    preprocessing can't be rebuilt with builtin ops) is kept as its `error`. The
    serving push is never affected, so this component records failures instead of
    raising; the run reports a serving push without a mobile one as such.
    A re-execution for a model whose mobile version exists (a crash before TFX
    recorded this component) converts again but publishes nothing.
    After the version is complete, `<mobile_dir>/latest.json` (publish.LATEST_FILE) points at it
    (`_point_latest`), unless it already points at a newer version.
    """
    import tempfile

    import tensorflow as tf

    from tfxp.mobile.convert import convert
    from tfxp.pipeline.model_card import write_card
    from tfxp.pipeline.model_card_build import mobile_section

    mobile_pushed_model.set_int_custom_property("pushed", 0)
    checks = ((model_blessing, "blessed"), (infra_blessing, "blessed"), (pushed_model, "pushed"))
    if any(artifact.get_int_custom_property(name) != 1 for artifact, name in checks):
        return
    version = int(pushed_model.get_string_custom_property("pushed_version"))
    serving_version = pushed_model.get_string_custom_property("pushed_destination")
    rows = _eval_rows(examples.uri, parity_rows)
    # tf.io.gfile: artifact URIs are gs:// on Vertex AI.
    tf.io.gfile.makedirs(mobile_pushed_model.uri)
    report_file = os.path.join(mobile_pushed_model.uri, "report.json")
    failpoints.raise_at("mobile_pusher:error", RuntimeError(f"failpoint {failpoints.ENV}=mobile_pusher:error"))
    with tempfile.TemporaryDirectory(prefix="tfxp-mobile-") as tmp:
        try:
            failpoints.raise_at(
                "mobile_pusher:conversion", ConversionError(f"failpoint {failpoints.ENV}=mobile_pusher:conversion")
            )
            result = convert(
                os.path.join(model.uri, "Format-Serving"),
                tmp,
                transform_output_dir=transform_graph.uri,
                eval_rows=rows,
                model_version=version,
                model_name=model_name,
            )
        except ConversionError as exc:
            _record_conversion_error(exc, report_file, mobile_pushed_model, serving_version, version)
            return
        with tf.io.gfile.GFile(report_file, "w") as f:
            f.write(json.dumps(result.to_dict(), indent=2))
        rejected = {name: worded_reasons(v) for name, v in result.variants.items() if not v.written}
        mobile_pushed_model.set_string_custom_property("rejected", json.dumps(rejected))
        mobile_pushed_model.set_string_custom_property("variants", json.dumps(result.written))
        card = _card_with_mobile(serving_version, mobile_section(version, result.to_dict(), rejected))
        if not result.written:
            return
        if card is not None:  # every copy of the version carries its card: the app's too
            write_card(tmp, card)
        os.chmod(tmp, 0o755)  # TemporaryDirectory is 0700; the published version must be readable
        _, final = publish_version(tmp, mobile_dir, version=version, source_id=model.uri)
    failpoints.hit("mobile_pusher:published")
    if _point_latest(mobile_dir, final, version, model_name):
        mobile_pushed_model.set_string_custom_property("latest", f"{mobile_dir.rstrip('/')}/{LATEST_FILE}")
    mobile_pushed_model.set_int_custom_property("pushed", 1)
    mobile_pushed_model.set_string_custom_property("pushed_destination", final)
    mobile_pushed_model.set_string_custom_property("pushed_version", str(version))
