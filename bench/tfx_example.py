"""Runs TFX's own Chicago taxi example (from the installed tfx package) once.

Used by bench/pipeline.py as the reference: the example's own `_create_pipeline`,
its own module file and data, its own Beam args (multi-processing DirectRunner),
only the output paths redirected. Prints one JSON line with the wall time and
the evaluation metrics.

Usage: python bench/tfx_example.py OUTPUT_DIR [--data DIR] [--beam-arg ARG ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--data", default=None)
    parser.add_argument("--beam-arg", action="append", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    import absl.logging
    from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as example
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    absl.logging.set_verbosity(absl.logging.WARNING)
    example_dir = os.path.dirname(example.__file__)
    name = example._pipeline_name
    out = os.path.abspath(args.output)
    pipeline = example._create_pipeline(
        pipeline_name=name,
        pipeline_root=os.path.join(out, "pipelines", name),
        data_root=args.data or os.path.join(example_dir, "data", "simple"),
        module_file=os.path.join(example_dir, "taxi_utils_native_keras.py"),
        serving_model_dir=os.path.join(out, "serving", name),
        metadata_path=os.path.join(out, "metadata", name, "metadata.db"),
        beam_pipeline_args=args.beam_arg or example._beam_pipeline_args,
    )
    BeamDagRunner().run(pipeline)
    wall = time.perf_counter() - started

    metrics = _latest_metrics(os.path.join(out, "pipelines", name, "Evaluator"))
    print(json.dumps({"wall_seconds": wall, "metrics": metrics}))
    return 0


def _latest_metrics(evaluator_root: str) -> dict:
    """Overall-slice metrics of the newest Evaluator output, {} if none."""
    import tensorflow_model_analysis as tfma

    eval_root = os.path.join(evaluator_root, "evaluation")
    if not os.path.isdir(eval_root):
        return {}
    newest = max(os.listdir(eval_root), key=int)
    result = tfma.load_metrics(os.path.join(eval_root, newest))
    for slice_metrics in result:
        if not slice_metrics.slice_key.single_slice_keys:
            out = {}
            for key in slice_metrics.metric_keys_and_values:
                value = key.value
                if value.HasField("double_value"):
                    out[key.key.name] = value.double_value.value
            return out
    return {}


if __name__ == "__main__":
    sys.exit(main())
