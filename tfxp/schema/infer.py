"""A starting schema inferred from statistics, for a person to curate: `infer_schema` (`tfxp schema infer`:
TFX's StatisticsGen and SchemaGen over a CSV) and `build_schema` (`tfxp init`: TFDV's `infer_schema` over the
statistics init computed, tightened for the project it decided). Both apply `tfxp.schema.rules`.

TFX, TFDV and TensorFlow are imported when a function runs, not with the module.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tfxp.project.spec import Column, Label
from tfxp.schema.rules import disallow_non_finite, load_schema


def infer_schema(data: Path, out: Path) -> None:
    """Runs CsvExampleGen -> StatisticsGen -> SchemaGen on `data`, writes schema.pbtxt to `out`.

    Every FLOAT feature gets `disallow_nan` / `disallow_inf` (see tfxp.schema.rules).
    """
    from google.protobuf import text_format
    from tfx.components import SchemaGen, StatisticsGen
    from tfx.orchestration import metadata, pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from tfxp.pipeline.config import DEFAULT_BEAM_ARGS, PipelineConfig
    from tfxp.pipeline.example_gen import csv_example_gen

    with tempfile.TemporaryDirectory(prefix="tfxp-schema-") as tmp:
        config = PipelineConfig(name="schema-infer", data=data, output=Path(tmp))
        example_gen = csv_example_gen(str(config.data_dir), config.data_pattern)
        statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
        schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
        LocalDagRunner().run(
            tfx_pipeline.Pipeline(
                pipeline_name=config.name,
                pipeline_root=str(config.pipeline_root),
                components=[example_gen, statistics_gen, schema_gen],
                enable_cache=False,
                metadata_connection_config=metadata.sqlite_metadata_connection_config(os.path.join(tmp, "metadata.db")),
                beam_pipeline_args=list(DEFAULT_BEAM_ARGS),
            )
        )
        (schema_file,) = glob.glob(os.path.join(str(config.pipeline_root), "SchemaGen", "schema", "*", "schema.pbtxt"))
        schema = load_schema(schema_file)
        disallow_non_finite(schema)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text_format.MessageToString(schema))


def build_schema(stats, label: Label, columns: Sequence[Column]):
    """The TFDV-inferred schema, tightened as the pipeline requires (tfxp.schema.rules) and for the project:
    disallow_nan/disallow_inf on FLOAT features; the label kept out of SERVING (default environments
    TRAINING and SERVING); a classification label's values as its domain (a new class is an anomaly, not a
    wrong class index); categorical_int columns within 0..size-1 (outside, one-hot encoding gives zeros).

    `stats`: TFDV's DatasetFeatureStatisticsList of the data (tfxp init's `DataProfile.statistics`), with a
    feature for the label and every categorical_int column (else KeyError). `label.dtype` must be set for a
    class label. Returns a `tensorflow_metadata` Schema proto, shapes inferred (a required column has one).
    """
    import tensorflow_data_validation as tfdv

    schema = tfdv.infer_schema(stats, infer_feature_shape=True)
    disallow_non_finite(schema)
    features = {f.name: f for f in schema.feature}
    target = features[label.column]
    target.not_in_environment.append("SERVING")
    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    if label.task != "regression":
        if label.dtype == "string":
            if target.HasField("domain"):  # TFDV's shared string_domain of the same values: replaced inline
                kept = [d for d in schema.string_domain if d.name != target.domain]
                del schema.string_domain[:]
                schema.string_domain.extend(kept)
            target.string_domain.value[:] = list(label.classes)
        elif label.dtype == "int":
            values = [int(c) for c in label.classes]
            target.int_domain.min, target.int_domain.max = min(values), max(values)
    for column in columns:
        if column.kind == "categorical_int":
            domain = features[column.name].int_domain
            domain.min, domain.max = 0, column.size - 1
    return schema
