"""Pipeline configuration: one immutable value passed to `create_pipeline`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # tfxp/
PROJECT_ROOT = PACKAGE_ROOT.parent  # the checkout: setup.py, README
TAXI_PROJECT = PACKAGE_ROOT / "projects" / "taxi"
DEFAULT_DATA = TAXI_PROJECT / "data" / "taxi.csv"
DEFAULT_SCHEMA = TAXI_PROJECT / "schema.pbtxt"
MODEL_CODE_DIR = PACKAGE_ROOT / "models"
# Where the Dockerfile puts this project inside the pipeline image.
IMAGE_PROJECT_ROOT = "/pipeline"

# Beam's in-memory DirectRunner (1 worker): on small data it beats
# multi-processing (TFX's taxi example: 98 s in_memory vs 166 s multi_processing;
# this pipeline: bench/results/scale.json).
DEFAULT_BEAM_WORKERS = 1


def direct_runner_args(workers: int) -> tuple[str, ...]:
    """Beam args for the local DirectRunner: 1 = in one process, N > 1 = N worker processes."""
    if workers < 1:
        raise ValueError(f"beam workers must be >= 1, got {workers}")
    if workers == 1:
        return ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    return ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


DEFAULT_BEAM_ARGS = direct_runner_args(DEFAULT_BEAM_WORKERS)


# Beam options that tell TFX how workers get our code; without one, TFX builds an
# sdist of itself before every Beam component (~1.4 s each, 4 per run here).
_DEPENDENCY_FLAGS = ("--setup_file", "--extra_package", "--requirements_file", "--sdk_container_image")


def with_project_dependency(beam_args: tuple[str, ...], project_root: str | Path = PROJECT_ROOT) -> tuple[str, ...]:
    """Adds `--setup_file=<project_root>/setup.py` unless the user chose how workers get code.

    Remote workers (Dataflow) need this project's package, which brings TFX along;
    the in-process DirectRunner ignores the option.
    """
    if any(arg.split("=", 1)[0] in _DEPENDENCY_FLAGS for arg in beam_args):
        return beam_args
    return (*beam_args, f"--setup_file={_join(str(project_root), 'setup.py')}")


def _join(root: str, *parts: str) -> str:
    """Joins path or URI parts with '/'."""
    return "/".join([root.rstrip("/"), *parts])


def is_uri(path: str | Path) -> bool:
    """True for remote file system URIs (gs://, s3://, ...), read through tf.io.gfile."""
    return "://" in str(path)


@dataclass(frozen=True)
class VertexTraining:
    """Run the Trainer as a Vertex AI Training custom job (TFX's Google Cloud extension)."""

    project: str
    region: str
    image: str
    machine_type: str = "n1-standard-4"


@dataclass(frozen=True)
class RemoteLayout:
    """Where a compiled (Vertex AI) run reads and writes, instead of the local `output` tree.

    The project's own files (schema, setup.py, the embedded data) are read from
    `project_root` inside the pipeline image, not from this checkout.
    """

    pipeline_root: str  # e.g. gs://bucket/root
    project_root: str = IMAGE_PROJECT_ROOT
    vertex_training: VertexTraining | None = None

@dataclass(frozen=True)
class MetricGate:
    """One blessing rule, on the overall slice: a floor, and a change threshold against the baseline.

    `metric` is a TFMA metric class name (e.g. "AUC", "BinaryAccuracy"). The
    candidate is blessed only if its value is >= `min_value` and, when a blessed
    baseline exists, at most `max_drop` below the baseline's value (TFMA's
    GenericChangeThreshold, absolute, HIGHER_IS_BETTER). Every gate has both, so
    a candidate materially worse than the last pushed model on any gated metric
    is never pushed.
    """

    metric: str
    min_value: float
    max_drop: float


@dataclass(frozen=True)
class EvalThresholds:
    """Blessing rules for the Evaluator: every gate must pass (TFMA ANDs all thresholds)."""

    gates: tuple[MetricGate, ...] = (
        MetricGate("AUC", min_value=0.75, max_drop=0.01),
        # Accuracy moves more than AUC between equally good models: two models trained
        # 120 and 130 steps on the same 3,000 rows differed by 0.0145 on a 1,031-row eval split.
        MetricGate("BinaryAccuracy", min_value=0.70, max_drop=0.02),
    )


@dataclass(frozen=True)
class PipelineConfig:
    name: str = "taxi"
    data: Path | str = DEFAULT_DATA  # a CSV file or a folder of CSVs; a gs:// URI when remote
    output: Path = Path("output")
    train_steps: int = 300
    eval_steps: int = 20
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    schema: Path = DEFAULT_SCHEMA
    thresholds: EvalThresholds = field(default_factory=EvalThresholds)
    enable_cache: bool = True
    warmup_records: int = 10
    # Set by `tfxp compile`; None = the local layout under `output`.
    remote: RemoteLayout | None = None

    def _project_file(self, path: Path | str) -> str:
        """A file of this project as the runner sees it: rebased into the image when remote."""
        if is_uri(path):
            return str(path)
        if self.remote is None:
            return str(Path(path).resolve())
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(PROJECT_ROOT):
            raise ValueError(f"{path} is not inside the project, so it is not in the pipeline image; "
                             "use a gs:// URI or a file under the project")
        return _join(self.remote.project_root, *resolved.relative_to(PROJECT_ROOT).parts)

    @property
    def pipeline_root(self) -> str:
        if self.remote is not None:
            return self.remote.pipeline_root.rstrip("/")
        return str(self.output.resolve() / "pipelines" / self.name)

    @property
    def metadata_path(self) -> Path | None:
        """Local SQLite MLMD; None when remote (Vertex AI keeps its own metadata)."""
        if self.remote is not None:
            return None
        return self.output.resolve() / "metadata" / self.name / "metadata.db"

    @property
    def serving_dir(self) -> str:
        if self.remote is not None:
            return _join(self.pipeline_root, "serving", self.name)
        return str(self.output.resolve() / "serving" / self.name)

    @property
    def mobile_dir(self) -> str:
        if self.remote is not None:
            return _join(self.pipeline_root, "mobile", self.name)
        return str(self.output.resolve() / "mobile" / self.name)

    @property
    def schema_file(self) -> str:
        return self._project_file(self.schema)

    @property
    def project_root(self) -> str:
        return self.remote.project_root if self.remote is not None else str(PROJECT_ROOT)

    @property
    def data_uri(self) -> str:
        """`data` as the runner reads it (rebased into the image when remote)."""
        return self._project_file(self.data)

    def _data_is_file(self) -> bool:
        if self.remote is not None or is_uri(self.data):
            return str(self.data).endswith(".csv")
        return Path(self.data).is_file()

    @property
    def data_dir(self) -> str:
        """The folder CsvExampleGen reads (ExampleGen takes folders, not files)."""
        uri = self.data_uri.rstrip("/")
        return uri.rsplit("/", 1)[0] if self._data_is_file() else uri

    @property
    def data_pattern(self) -> str:
        return self.data_uri.rstrip("/").rsplit("/", 1)[-1] if self._data_is_file() else "*.csv"


def model_code_fingerprint(code_dir: Path = MODEL_CODE_DIR) -> str:
    """Hash of the model code; Transform and Trainer re-run when it changes.

    Components reference user code by dotted name (so the same pipeline compiles
    for Vertex AI without uploading a module file), and TFX's cache would not
    otherwise notice an edit to that code.
    """
    digest = hashlib.sha256()
    for path in sorted(code_dir.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
