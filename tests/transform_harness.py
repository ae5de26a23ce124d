"""tf.Transform on in-memory rows, as TFX's Transform runs it: one helper for every test fixture that
needs a real TFTransformOutput (tests/conftest.py's taxi one, tests/mobile/conftest.py's generated ones)."""

from __future__ import annotations

import functools
import json
import os


def run_transform(instances: list[dict], schema, problem, out_dir: str) -> tuple:
    """Runs the project's preprocessing_fn (`problem` in custom_config) through tf.Transform (Beam,
    in memory) on `instances` (raw feature dicts) with the raw `schema` (a tensorflow_metadata Schema).

    Writes the transform graph and the raw metadata (the serving signatures read it, as TFX's Transform
    writes it) under `out_dir`. Returns (TFTransformOutput, transformed rows as dicts of lists).
    """
    import apache_beam as beam
    import numpy as np
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from tfxp.models.preprocessing import preprocessing_fn

    metadata = dataset_metadata.DatasetMetadata(schema)
    fn = functools.partial(preprocessing_fn, custom_config={"problem": problem.to_dict()})
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--direct_running_mode=in_memory"])) as p:
        with tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp"), force_tf_compat_v1=True):
            data = p | "Create" >> beam.Create(instances, reshuffle=False)
            (transformed, _), transform_fn = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(
                fn, output_record_batches=False
            )
            transform_fn | tft_beam.WriteTransformFn(out_dir)
            _ = (
                transformed
                | beam.Map(lambda d: json.dumps({k: np.asarray(v).tolist() for k, v in d.items()}))
                | beam.io.WriteToText(os.path.join(out_dir, "transformed.jsonl"), shard_name_template="")
            )
    metadata_io.write_metadata(metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    with open(os.path.join(out_dir, "transformed.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return tft.TFTransformOutput(out_dir), rows
