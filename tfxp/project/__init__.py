"""A project: `project.yaml` + `schema.pbtxt` in one folder — the contract between `tfxp init`,
`tfxp run --project`, the model code and the clients (issue 11; format: docs/bring-your-own-data.md).

TF-free (PyYAML, and `tensorflow_metadata` protos to read the schema), so the CLI, the clients and the
converter can read a project without loading TensorFlow.

    project = load("penguins/")          # -> Project, checked against penguins/schema.pbtxt
    config = project.to_dict()           # JSON-safe: TFX custom_config["project"], tfxp_project.json
    same = from_dict(config)             # the model code's view (no schema check: the pipeline did it)
    dump(project, "copy/project.yaml")   # YAML with a header comment

The package's modules: `spec` (the model: Project, Label, Column, Gate, the spec's vocabulary,
ProjectError), `load` (reading and checking a spec; the checks against the schema are
`tfxp.schema.check`), `dump` (writing one). Import the names from here.

Every problem is a `ProjectError` naming the file and the field (`penguins/project.yaml: features[2].kind:
...`), so a person editing the YAML knows what to change.

project.yaml (`tfxp init` writes one, with comments saying what it saw in the data):

    name: penguins                 # [a-z0-9][a-z0-9_-]*: names the pipeline and the served model
    data: data/penguins.csv        # optional: CSV file or folder, relative to the folder, absolute or gs://
    label:
      column: species
      task: multiclass             # binary | multiclass | regression
      classes: [Adelie, Chinstrap, Gentoo]  # multiclass: output order; binary: [negative, positive]
      # positive: "1"              # binary: the raw value that is class 1 (default: classes[1]; "1" with a hook)
      # hook: label.py:make        # optional: "file.py:function" (relative) or "package.module:function"
      # dtype: string              # optional: checked against, or filled from, the schema
    features:                      # every CSV column except the label, in CSV order
      - {name: island, dtype: string, kind: vocabulary, required: true}
      - {name: bill_length_mm, dtype: float, kind: bucketized, buckets: 10, required: false}
      - {name: year, dtype: int, kind: categorical_int, size: 10}     # required defaults to true
      - {name: horsepower, dtype: int, kind: numeric, required: false, missing_values: ["?"]}
    slices: [island]               # categorical columns TFMA reports separately
    thresholds:                    # blessing gates, all must pass; metrics per task: GATE_METRICS
      - {metric: SparseCategoricalAccuracy, bound: 0.44, max_change: 0.02}  # higher_is_better: the metric's
    monitoring:                    # optional: tfxp monitor's thresholds (docs/monitoring.md; these are the defaults)
      min_rows: 500                # fewest rows a window needs for a verdict
      skew: {categorical: 0.15, numeric: 0.05}   # L-infinity / Jensen-Shannon divergence, served vs training
      drift: {categorical: 0.15, numeric: 0.05}  # a window vs the previous one
      features: {island: {skew: 0.25}}           # per model input
"""

from tfxp.project.dump import dump, dumps
from tfxp.project.load import from_dict, load, project_dir
from tfxp.project.spec import (
    DEFAULT_BUCKETS,
    DTYPES,
    GATE_METRICS,
    HOOK_BINARY_CLASSES,
    KIND_DTYPES,
    KINDS,
    PROJECT_FILE,
    SCHEMA_FILE,
    SCHEMA_TYPES,
    SLICE_KINDS,
    TASKS,
    TF_NAME,
    Column,
    Gate,
    Label,
    Monitoring,
    Project,
    ProjectError,
    check_hook,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "DTYPES",
    "GATE_METRICS",
    "HOOK_BINARY_CLASSES",
    "KINDS",
    "KIND_DTYPES",
    "PROJECT_FILE",
    "SCHEMA_FILE",
    "SCHEMA_TYPES",
    "SLICE_KINDS",
    "TASKS",
    "TF_NAME",
    "Column",
    "Gate",
    "Label",
    "Monitoring",
    "Project",
    "ProjectError",
    "check_hook",
    "dump",
    "dumps",
    "from_dict",
    "load",
    "project_dir",
]
