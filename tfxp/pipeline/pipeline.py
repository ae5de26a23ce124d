"""The pipeline DAG. `create_pipeline` reads top to bottom in execution order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.extractors import unbatch_extractor
from tensorflow_model_analysis.metrics import calibration_histogram, metric_types, metric_util

# Specific modules, not `tfx.v1`: v1 also imports every extension (Google Cloud
# clients among them), ~6 s more per run, cached runs included.
from tfx.components import (
    Evaluator,
    ExampleValidator,
    StatisticsGen,
    Trainer,
    Transform,
)
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.orchestration import metadata, pipeline as tfx_pipeline
from tfx.proto import trainer_pb2, transform_pb2

from tfxp.models import features as F
from tfxp.pipeline.baseline import baseline_resolver
from tfxp.pipeline.components import AtomicPusher, DataGate, MobilePusher
from tfxp.pipeline.config import EvalThresholds, PipelineConfig, model_code_fingerprint, with_project_dependency
from tfxp.pipeline.example_gen import csv_example_gen
from tfxp.pipeline.schema_rules import float_features, load_schema
from tfxp.project import Gate


def _gated(gate: Gate) -> tfma.MetricConfig:
    """A gated metric: bound and change against the baseline, on the overall slice only.

    Small slices (one 'Dispute' trip) are reported, not gated. TFMA ignores the
    change threshold on the first run, when no baseline is resolved.
    """
    if gate.higher_is_better:
        value = tfma.GenericValueThreshold(lower_bound={"value": gate.bound})
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -gate.max_change}
        )
    else:
        value = tfma.GenericValueThreshold(upper_bound={"value": gate.bound})
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.LOWER_IS_BETTER, absolute={"value": gate.max_change}
        )
    threshold = tfma.MetricThreshold(value_threshold=value, change_threshold=change)
    return tfma.MetricConfig(
        class_name=gate.metric,
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)],
    )


def _histogram_calibration(
    name: str = "calibration",
    eval_config: tfma.EvalConfig | None = None,
    model_name: str = "",
    output_name: str = "",
    sub_key: metric_types.SubKey | None = None,
    aggregation_type: metric_types.AggregationType | None = None,
    class_weights: dict[int, float] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """TFMA's per-key computations of HistogramCalibration: the histogram, then the derived ratio."""
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, sub_key=sub_key, example_weighted=example_weighted
    )
    # The arguments binary_confusion_matrices gives it for AUC: equal computations are computed once.
    computations = calibration_histogram.calibration_histogram(
        eval_config=eval_config,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        class_weights=class_weights,
        example_weighted=example_weighted,
    )
    histogram_key = computations[-1].keys[-1]

    def result(metrics: dict) -> dict:
        buckets = metrics[histogram_key]
        labels = sum(bucket.weighted_labels for bucket in buckets)
        predictions = sum(bucket.weighted_predictions for bucket in buckets)
        # As TFMA's Calibration: undefined (NaN) without positive labels.
        return {key: float("nan") if np.isclose(labels, 0.0) else predictions / labels}

    computations.append(metric_types.DerivedMetricComputation(keys=[key], result=result))
    return computations


class HistogramCalibration(metric_types.Metric):
    """TFMA's Calibration, sum(weighted predictions) / sum(weighted labels), read off the calibration histogram.

    TFMA's AUC already builds that histogram (10,000 buckets of weighted labels, predictions and examples),
    while its Calibration runs a combiner of its own over every example of every slice: this one
    reuses the histogram, one per-example combiner fewer (~10% of TFMA's CPU on the taxi eval split).
    Same value up to float summation order; same name ("calibration") and NaN rule as TFMA's.
    """

    def __init__(self, name: str = "calibration"):
        super().__init__(metric_util.merge_per_key_computations(_histogram_calibration), name=name)


# Reported per task (gated ones once). Binary: the confusion counts at TFMA's default 0.5
# threshold tell the summary why a metric is undefined on a slice (e.g. AUC with one class only).
REPORTED_METRICS = {
    F.Task.BINARY: (
        "ExampleCount",
        "AUC",
        "BinaryAccuracy",
        "Precision",
        "Recall",
        "Calibration",
        "TruePositives",
        "FalsePositives",
        "TrueNegatives",
        "FalseNegatives",
    ),
    F.Task.MULTICLASS: ("ExampleCount", "SparseCategoricalAccuracy", "MultiClassConfusionMatrixPlot"),
    F.Task.REGRESSION: ("ExampleCount", "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError"),
}
# Multiclass: precision and recall of each class (one-vs-rest), reported with a class_id sub key.
_PER_CLASS_METRICS = ("Precision", "Recall")


def _reported(class_name: str) -> tfma.MetricConfig:
    """A reported metric; Calibration as HistogramCalibration (same value, no combiner of its own)."""
    if class_name == "Calibration":
        return tfma.MetricConfig(class_name=HistogramCalibration.__name__, module=__name__)
    return tfma.MetricConfig(class_name=class_name)


def eval_config(thresholds: EvalThresholds, problem: F.Problem) -> tfma.EvalConfig:
    """TFMA metrics for the problem's task, its slices and the blessing thresholds."""
    task = problem.label.task
    gated = [_gated(gate) for gate in thresholds.gates]
    gated_names = {gate.metric for gate in thresholds.gates}
    reported = [_reported(name) for name in REPORTED_METRICS[task] if name not in gated_names]
    metrics_specs = [tfma.MetricsSpec(metrics=gated + reported)]
    if task is F.Task.MULTICLASS:
        metrics_specs.append(
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name=name) for name in _PER_CLASS_METRICS],
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(problem.label.num_classes))}),
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=F.LABEL_KEY,
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[c]) for c in problem.slices],
        metrics_specs=metrics_specs,
    )


def slicing_columns(config: tfma.EvalConfig) -> frozenset[str]:
    """The feature names the config's slicing specs (plain and cross) slice by."""
    specs = list(config.slicing_specs)
    for cross in config.cross_slicing_specs:
        specs += [cross.baseline_spec, *cross.slicing_specs]
    return frozenset(name for spec in specs for name in (*spec.feature_keys, *spec.feature_values))


def used_extracts(extracts: Mapping[str, Any], columns: frozenset[str]) -> dict[str, Any]:
    """A batched TFMA extract without what nothing after inference reads.

    TFMA unbatches every array of a batch into per-example dicts and carries them through slicing
    (each example once per slice key) into every metric combiner: 38 arrays per taxi batch (all 18
    raw columns, 16 transformed features, the serialized tf.Examples, labels, predictions), of which
    the metrics read labels, predictions (and example weights) and slicing reads its `columns`.

    Args:
        extracts: one batched extract: {"features": {column: [batch] array}, "transformed_features":
            {name: [batch] array}, "input": [batch] serialized tf.Examples, "labels", "predictions",
            "example_weights", "arrow_record_batch", ...}, after TFMA's labels, example weights and
            predictions extractors.
        columns: the slicing columns (slicing_columns()).

    Returns:
        The same extract without "input", and with "features" and "transformed_features" holding only
        `columns` (absent columns stay absent); every other key is passed through unchanged.
    """
    kept = {}
    for key, value in extracts.items():
        if key == tfma_constants.INPUT_KEY:
            continue
        if key in (tfma_constants.FEATURES_KEY, tfma_constants.TRANSFORMED_FEATURES_KEY) and isinstance(value, Mapping):
            value = {name: array for name, array in value.items() if name in columns}
        kept[key] = value
    return kept


DROP_UNUSED_EXTRACTS_STAGE = "DropUnusedExtracts"


def custom_extractors(eval_shared_model, eval_config: tfma.EvalConfig, tensor_adapter_config) -> list:
    """TFX Evaluator's `custom_extractors` UDF (Evaluator(module_path=this module)).

    TFMA's default extractors, plus one stage before unbatching that keeps only what slicing and the
    metrics read (used_extracts). Same extracts for slicing and metrics, so the same numbers; on
    the 150k taxi eval split (49,983 rows) TFMA alone took ~10% less CPU.
    """
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model, eval_config=eval_config, tensor_adapter_config=tensor_adapter_config
    )
    stages = [extractor.stage_name for extractor in extractors]
    drop = tfma.extractors.Extractor(
        stage_name=DROP_UNUSED_EXTRACTS_STAGE,
        ptransform=beam.Map(used_extracts, columns=slicing_columns(eval_config)),
    )
    at = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    return [*extractors[:at], drop, *extractors[at:]]


def _trainer(config: PipelineConfig, custom_config: dict, **args) -> Trainer:
    """TFX's Trainer or, with Vertex AI Training, its Google Cloud twin running the same run_fn as a custom job."""
    vertex = config.remote.vertex_training if config.remote is not None else None
    if vertex is None:
        return Trainer(custom_config=custom_config, **args)
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

    from tfxp.pipeline.vertex import training_custom_config

    return VertexTrainer(custom_config={**custom_config, **training_custom_config(vertex)}, **args)


def create_pipeline(config: PipelineConfig) -> tfx_pipeline.Pipeline:
    example_gen = csv_example_gen(
        str(config.data_dir),
        config.data_pattern,
        float_columns=float_features(load_schema(config.schema)),
        eval_rows=config.eval_rows,
    )

    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])

    schema_gen = ImportSchemaGen(schema_file=config.schema_file)

    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )

    data_gate = DataGate(
        anomalies=example_validator.outputs["anomalies"], statistics=statistics_gen.outputs["statistics"]
    )

    # The problem travels to the model code in custom_config (no module globals), and its
    # change re-runs Transform and Trainer like an edit of the model code does.
    code = {"model_code": model_code_fingerprint(), "problem": config.problem.to_dict()}
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="tfxp.models.preprocessing.preprocessing_fn",
        custom_config=code,
        # The model never reads post-transform statistics; skipping them saves a full pass.
        disable_statistics=True,
        # Analyse the train split only; the Trainer applies the transform graph to the raw
        # examples it reads (models.model.transformed_dataset) instead of reading a
        # transformed copy of every split, which Transform no longer writes.
        materialize=False,
        splits_config=transform_pb2.SplitsConfig(analyze=["train"]),
        # Nothing feeds an analyzer cache back (no `analyzer_cache` input): writing one only cost time.
        disable_analyzer_cache=True,
        # Graph-mode tracing: Transform took 17 s instead of 24 s on the taxi data.
        force_tf_compat_v1=True,
    ).with_id("Transform")
    transform.add_upstream_node(data_gate)

    trainer = _trainer(
        config,
        run_fn="tfxp.models.model.run_fn",
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(num_steps=config.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        custom_config=code,
    ).with_id("Trainer")

    baseline = baseline_resolver(candidate=trainer.outputs["model"], remote=config.remote is not None)

    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=eval_config(config.thresholds, config.problem),
        # TFX imports custom_extractors from here (in Beam workers too: tfxp is staged for them).
        module_path=__name__,
    )

    pusher = AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        serving_dir=config.serving_dir,
        model_name=config.name,
        warmup_records=config.warmup_records,
    ).with_id("Pusher")

    mobile_pusher = MobilePusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        transform_graph=transform.outputs["transform_graph"],
        examples=example_gen.outputs["examples"],
        pushed_model=pusher.outputs["pushed_model"],
        mobile_dir=config.mobile_dir,
        model_name=config.name,
    ).with_id("MobilePusher")

    return tfx_pipeline.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            data_gate,
            transform,
            trainer,
            baseline,
            evaluator,
            pusher,
            mobile_pusher,
        ],
        enable_cache=config.enable_cache,
        # None on Vertex AI, which provides the metadata store.
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(str(config.metadata_path)) if config.metadata_path else None
        ),
        beam_pipeline_args=list(with_project_dependency(config.beam_args, config.project_root)),
    )
