"""Custom pipeline components: the data gate and the atomic Pusher.

Both are Python-function components so they run unchanged under LocalDagRunner
and in the pipeline image on Vertex AI.
"""

import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline import anomalies as anomalies_lib
from pipeline.publish import publish_version

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


@component
def DataGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    data_gate: OutputArtifact[standard_artifacts.String],
) -> None:
    """Stops the run when ExampleValidator found anomalies, before Transform and training."""
    found = anomalies_lib.read_anomalies(anomalies.uri)
    if found:
        raise anomalies_lib.DataAnomaliesError(found)
    data_gate.value = "no anomalies"


def _write_warmup(examples_uri: str, model_name: str, destination: str, count: int) -> None:
    """Writes TF Serving warmup requests (PredictionLog TFRecord) from real eval examples."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from models import signatures

    files = tf.io.gfile.glob(os.path.join(examples_uri, "Split-eval", "*"))
    records = [
        r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    ]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signatures.SERVING_DEFAULT
    request.inputs[signatures.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(records, dtype=tf.string))
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    with tf.io.TFRecordWriter(destination) as writer:
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        writer.write(log.SerializeToString())


@component
def AtomicPusher(
    model: InputArtifact[standard_artifacts.Model],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    examples: InputArtifact[standard_artifacts.Examples],
    pushed_model: OutputArtifact[standard_artifacts.PushedModel],
    serving_dir: Parameter[str],
    model_name: Parameter[str],
    warmup_records: Parameter[int] = 10,
) -> None:
    """Pushes a blessed model to `<serving_dir>/<version>/` atomically, with warmup requests.

    A model server polling the base path sees either no new version or a complete
    one (see `pipeline.publish`).
    """
    if model_blessing.get_int_custom_property("blessed") != 1:
        pushed_model.set_int_custom_property("pushed", 0)
        return

    version, final = publish_version(
        os.path.join(model.uri, "Format-Serving"),
        serving_dir,
        add_files=lambda staging: _write_warmup(
            examples.uri, model_name, os.path.join(staging, WARMUP_FILE), warmup_records
        ),
    )
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", final)
    pushed_model.set_string_custom_property("pushed_version", str(version))
