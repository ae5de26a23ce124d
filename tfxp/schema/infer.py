"""`tfxp schema infer`: a starting schema from TFX's SchemaGen, for a person to curate."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path


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
    from tfxp.schema.rules import disallow_non_finite, load_schema

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
