"""`tfxp schema infer`: a starting schema from TFX's SchemaGen, for a person to curate."""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path


def infer_schema(data: Path, out: Path) -> None:
    """Runs CsvExampleGen -> StatisticsGen -> SchemaGen on `data`, writes schema.pbtxt to `out`."""
    from tfx import v1 as tfx

    from pipeline.config import DEFAULT_BEAM_ARGS, PipelineConfig

    with tempfile.TemporaryDirectory(prefix="tfxp-schema-") as tmp:
        config = PipelineConfig(name="schema-infer", data=data, output=Path(tmp))
        example_gen = tfx.components.CsvExampleGen(
            input_base=str(config.data_dir),
            input_config=tfx.proto.Input(
                splits=[tfx.proto.Input.Split(name="single_split", pattern=config.data_pattern)]
            ),
        )
        statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
        schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
        tfx.orchestration.LocalDagRunner().run(
            tfx.dsl.Pipeline(
                pipeline_name=config.name,
                pipeline_root=str(config.pipeline_root),
                components=[example_gen, statistics_gen, schema_gen],
                enable_cache=False,
                metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                    os.path.join(tmp, "metadata.db")
                ),
                beam_pipeline_args=list(DEFAULT_BEAM_ARGS),
            )
        )
        (schema_file,) = glob.glob(os.path.join(str(config.pipeline_root), "SchemaGen", "schema", "*", "schema.pbtxt"))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(schema_file, out)
