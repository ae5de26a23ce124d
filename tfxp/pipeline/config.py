"""Pipeline configuration: one immutable value passed to `create_pipeline`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tfxp.models.features import Problem
from tfxp.project import Gate, Project
from tfxp.project.spec import Monitoring
from tfxp.projects import TAXI, taxi_gates, taxi_problem

# The installed `tfxp` package: <checkout>/tfxp in an editable install, <site-packages>/tfxp from a
# wheel. Everything a run reads from this project (the taxi project's data, schema and spec, the model
# code) is package data under it (setup.py's package_data), so both installs find it from any directory.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The folder holding the package: the checkout (setup.py, Dockerfile, README) in an editable install,
# site-packages in a wheel install, where nothing but installed packages lives (see is_source_checkout).
PROJECT_ROOT = PACKAGE_ROOT.parent
DEFAULT_DATA = TAXI / "data" / "taxi.csv"
DEFAULT_SCHEMA = TAXI / "schema.pbtxt"
MODEL_CODE_DIR = PACKAGE_ROOT / "models"
# Where the Dockerfile puts the checkout inside the pipeline image. It installs it editable, so the
# package is IMAGE_PROJECT_ROOT/tfxp and Beam's --setup_file is IMAGE_PROJECT_ROOT/setup.py.
IMAGE_PROJECT_ROOT = "/pipeline"


def is_source_checkout(root: Path = PROJECT_ROOT) -> bool:
    """True when `root` is this project's source tree (an editable install), False for site-packages.

    Both files are checked: a stray top-level setup.py in site-packages (some old
    sdists install one) must not be mistaken for this project's.
    """
    return (root / "setup.py").is_file() and (root / "pyproject.toml").is_file()


def installed_wheel(distribution: str = "tfxp") -> Path | None:
    """The local wheel file `distribution` was pip-installed from, if it is still there; else None.

    pip records where it installed a distribution from in the dist-info's
    `direct_url.json` (PEP 610): `{"url": "file:///…/tfxp-0.1.0-py3-none-any.whl",
    "archive_info": {…}}`. None for an editable install (`dir_info`), an install
    from an index (no direct_url.json), or a wheel deleted since.
    """
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    try:
        record = metadata.distribution(distribution).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not record:
        return None
    url = urlparse(json.loads(record).get("url", ""))
    wheel = Path(unquote(url.path))
    if url.scheme != "file" or wheel.suffix != ".whl" or not wheel.is_file():
        return None
    return wheel


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


# Beam options that tell TFX how workers get our code (the ones TFX's
# dependency_utils.make_beam_dependency_flags checks); without one, TFX builds an
# sdist of TFX alone before every Beam component (~1.4 s each, 4 per run here).
_DEPENDENCY_FLAGS = (
    "--setup_file",
    "--extra_package",
    "--extra_packages",
    "--requirements_file",
    "--sdk_container_image",
    "--worker_harness_container_image",
)
# Runners whose workers are this Python process or its subprocesses, so they import
# the installed tfxp and need nothing staged (Beam: dependency management "is only
# applicable to runners that do remote execution").
_LOCAL_RUNNERS = ("direct", "switchingdirect", "bundlebaseddirect", "fnapi")


def _flag_value(beam_args: tuple[str, ...], flag: str) -> str | None:
    """The value of `flag` in Beam args written `--flag=value` or `--flag value`; the last one wins."""
    value = None
    for i, arg in enumerate(beam_args):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(beam_args):
            value = beam_args[i + 1]
    return value


def _runs_locally(beam_args: tuple[str, ...]) -> bool:
    """True unless `--runner` names a runner with remote workers (Dataflow, Flink, Spark, Portable).

    A portable runner with `--environment_type=LOOPBACK` runs its workers in this process.
    """
    if (_flag_value(beam_args, "--environment_type") or "").upper() == "LOOPBACK":
        return True
    runner = (_flag_value(beam_args, "--runner") or "DirectRunner").rsplit(".", 1)[-1].lower()
    return runner.removesuffix("runner") in _LOCAL_RUNNERS


def with_project_dependency(beam_args: tuple[str, ...], project_root: str | Path = PROJECT_ROOT) -> tuple[str, ...]:
    """Adds the Beam option that gives workers the tfxp package, unless the user chose one.

    Beam documents two options for code that is not on PyPI ("Managing Python
    Pipeline Dependencies"): `--setup_file` for a source tree with setup.py (Beam
    builds an sdist from it and workers pip-install it, bringing TFX along), and
    `--extra_package` for a built package file, sdist or wheel. Which one depends
    on where the runner finds this project:

    - `project_root` other than PROJECT_ROOT: a checkout there, i.e. the pipeline
      image's IMAGE_PROJECT_ROOT for compiled jobs -> `--setup_file=<root>/setup.py`;
    - PROJECT_ROOT (the default), a source checkout -> its setup.py, as above;
    - PROJECT_ROOT in a wheel install (site-packages: no setup.py) -> the wheel pip
      installed from, `--extra_package=<wheel>` (installed_wheel());
    - a wheel install whose wheel is gone: nothing for a local runner (its workers
      import the installed package; TFX then stages its own sdist, ~1.4 s per Beam
      component), and ValueError for a remote runner, whose workers would fail to
      import tfxp.

    The in-process DirectRunner ignores all of these; naming one still matters,
    since it stops TFX building an sdist of itself before every Beam component.

    Args:
        beam_args: Beam pipeline options, `--flag=value` or `--flag value`.
        project_root: where the runner finds this project, see above.

    Returns:
        `beam_args`, plus one dependency option when they name none.

    Raises:
        ValueError: a wheel install without its wheel file, and a remote `--runner`.
    """
    if any(arg.split("=", 1)[0] in _DEPENDENCY_FLAGS for arg in beam_args):
        return beam_args
    if Path(project_root) != PROJECT_ROOT or is_source_checkout(PROJECT_ROOT):
        return (*beam_args, f"--setup_file={_join(str(project_root), 'setup.py')}")
    wheel = installed_wheel()
    if wheel is not None:
        return (*beam_args, f"--extra_package={wheel}")
    if _runs_locally(beam_args):
        return beam_args
    raise ValueError(
        f"tfxp is installed at {PACKAGE_ROOT} without a source checkout or the wheel it came from, so "
        f"{_flag_value(beam_args, '--runner')}'s remote workers can't get it: pass "
        "--beam-arg=--extra_package=/path/to/tfxp-<version>-py3-none-any.whl, or "
        "--beam-arg=--sdk_container_image=<the pipeline image>"
    )


def _join(root: str, *parts: str) -> str:
    """Joins path or URI parts with '/'."""
    return "/".join([root.rstrip("/"), *parts])


def is_data_pattern(data: str | Path) -> bool:
    """True when `data` is a pattern (a `{SPAN}` spec, or a glob character in a path that doesn't exist: a
    folder named `data[1]` stays a folder) rather than a file or folder."""
    from tfxp.pipeline.spans import has_span, is_pattern

    if has_span(data):
        return True
    return is_pattern(data) and (is_uri(data) or not Path(data).exists())


def is_uri(path: str | Path) -> bool:
    """True for remote file system URIs (gs://, s3://, ...), read through tf.io.gfile."""
    return "://" in str(path)


def image_path(path: str | Path, project_root: str = IMAGE_PROJECT_ROOT) -> str:
    """Where a local file of the tfxp package is inside the pipeline image, e.g.
    `<checkout>/tfxp/projects/taxi/schema.pbtxt` -> `/pipeline/tfxp/projects/taxi/schema.pbtxt`.

    Only package data is in the image at the same place whatever the local install:
    PACKAGE_ROOT (<checkout>/tfxp or <site-packages>/tfxp) is <project_root>/tfxp there (the
    Dockerfile copies tfxp/ and installs it editable). Other local files, even inside a checkout,
    are not in the image.

    Raises:
        ValueError: `path` is outside the tfxp package.
    """
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(PACKAGE_ROOT):
        raise ValueError(
            f"{path} is not inside the tfxp package ({PACKAGE_ROOT}), so it is not in the "
            "pipeline image; use a gs:// URI or package data under tfxp/projects/"
        )
    return _join(project_root, PACKAGE_ROOT.name, *resolved.relative_to(PACKAGE_ROOT).parts)


# The eval split's default cap. TFMA computes every metric for every slice in Python, example by
# example (~0.4 ms of CPU per row with the taxi project's 3 slicings), so a third of 1.5M rows took
# ~200 s, and at 200,000 rows the Evaluator was still 42% of a 1.5M run (76 of 181 s, 2026-12-01).
# 100,000 rows measure the taxi model's AUC and accuracy to ~0.0007 and ~0.0009 (standard errors), and
# the blessing compares candidate and baseline on the same rows. Data up to 300,000 rows keeps TFX's
# 2:1 split unchanged.
DEFAULT_EVAL_ROWS = 100_000


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
    `project_root` inside the pipeline image, not from this checkout; `schema_uri`, when set, is where
    the job reads a schema that is not in the image (`tfxp compile` stages it under the pipeline root).
    """

    pipeline_root: str  # e.g. gs://bucket/root
    project_root: str = IMAGE_PROJECT_ROOT
    vertex_training: VertexTraining | None = None
    schema_uri: str | None = None


@dataclass(frozen=True)
class EvalThresholds:
    """Blessing rules for the Evaluator: every gate must pass (TFMA ANDs all thresholds).

    A `Gate` (tfxp.project) is a TFMA metric class name with a bound and a change threshold against
    the blessed baseline, in the metric's good direction; the default is the taxi project's, read from
    its project.yaml (the one place a gate is written).
    """

    gates: tuple[Gate, ...] = field(default_factory=taxi_gates)


@dataclass(frozen=True)
class PipelineConfig:
    name: str = "taxi"
    # A CSV file, a folder of CSVs, or a pattern (`DIR/span-{SPAN}/*.csv`: tfxp.pipeline.spans); gs:// when remote.
    data: Path | str = DEFAULT_DATA
    output: Path = Path("output")
    train_steps: int = 300
    eval_steps: int = 20
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    schema: Path = DEFAULT_SCHEMA
    thresholds: EvalThresholds = field(default_factory=EvalThresholds)
    # Features, label and task the model code learns (a project's, or the embedded taxi one).
    problem: Problem = field(default_factory=taxi_problem)
    enable_cache: bool = True
    warmup_records: int = 10
    # At most about this many rows in the eval split (`tfxp run --eval-rows`); None = TFX's 1/3.
    # Cap on the eval split's rows (ExampleGen's executor applies it); None: TFX's 2:1 split.
    eval_rows: int | None = DEFAULT_EVAL_ROWS
    # Set by `tfxp compile`; None = the local layout under `output`.
    remote: RemoteLayout | None = None
    # Column -> cell texts CsvExampleGen reads as missing (a project's `missing_values`).
    missing_values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # `tfxp monitor`'s thresholds, carried by every pushed version (tfxp.monitoring.reference).
    monitoring: Monitoring = field(default_factory=Monitoring)
    # Set by the local preflight, which reads every input file: (name relative to data_dir, sha256, bytes, rows,
    # span or None) per file. ExampleGen's cache then follows content, not TFX's size-and-mtime fingerprint.
    input_files: tuple[tuple[str, str, int, int, int | None], ...] = ()
    # With a `{SPAN}` pattern in `data`: train on the latest `rolling` spans (`tfxp run --rolling`); None = 1,
    # TFX's default (the latest span).
    rolling: int | None = None
    # The model card's considerations (project.yaml `intended_use:` and `limitations:`).
    intended_use: str | None = None
    limitations: str | None = None
    # Features whose drift from the served model's training data is accepted (`tfxp run --accept-drift`).
    accept_drift: tuple[str, ...] = ()
    # "replace": a pushed version is served at once (TF Serving's latest policy); "canary": the run pins the
    # served versions in `model_config_file` and puts the new one beside them (tfxp.pipeline.canary_push).
    push_mode: str = "replace"
    # `tfxp run --tune N [--tuner KIND] [--tune-steps S]`: TFX's Tuner before the Trainer with N trials of S steps
    # (default train_steps: early stopping ends a trial sooner on a small table); 0 = no search (the latest
    # tuned hyperparameters, else the defaults).
    tune: int = 0
    tuner: str = "random"
    tune_steps: int | None = None
    # The project's `tuning.search_space` choices, replacing the defaults of the names given (tfxp.models.tuning).
    search_space: tuple[tuple[str, tuple[float, ...]], ...] = ()
    model_config_file: str | None = None
    # Run only these nodes (TFX's partial run, from_nodes = to_nodes = these): their inputs from other nodes come
    # from the previous pipeline run under `output` (`tfxp run --node`, one Airflow task per node). () = the DAG.
    run_nodes: tuple[str, ...] = ()

    def _project_file(self, path: Path | str) -> str:
        """A file of this project as the runner sees it: rebased into the image when remote (image_path).

        Raises:
            ValueError: `path` is a local file outside the tfxp package while compiling.
        """
        if is_uri(path):
            return str(path)
        if self.remote is None:
            return str(Path(path).resolve())
        return image_path(path, self.remote.project_root)

    @classmethod
    def for_project(cls, project: Project, **overrides) -> PipelineConfig:
        """The run configuration of a project: its name, data, schema, gates and problem; `overrides`
        (e.g. data, output, train_steps) win."""
        settings = {
            "name": project.name,
            "thresholds": EvalThresholds(gates=tuple(project.thresholds)),
            "problem": project.problem(),
            "missing_values": tuple((n, tuple(t)) for n, t in project.missing_values.items()),
            "monitoring": project.monitoring,
            "intended_use": project.intended_use,
            "limitations": project.limitations,
            "search_space": project.search_space,
        }
        if project.data is not None:
            settings["data"] = project.data
        if project.schema_path is not None:
            settings["schema"] = project.schema_path
        return cls(**{**settings, **overrides})

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
        """The schema ImportSchemaGen reads: local, staged (`remote.schema_uri`) or in the image."""
        if self.remote is not None and self.remote.schema_uri is not None:
            return self.remote.schema_uri
        return self._project_file(self.schema)

    @property
    def project_root(self) -> str:
        """Where the runner finds this project: the image's checkout when remote, else this install's
        PROJECT_ROOT (a checkout, or site-packages for a wheel; with_project_dependency tells them apart)."""
        return self.remote.project_root if self.remote is not None else str(PROJECT_ROOT)

    @property
    def data_uri(self) -> str:
        """`data` as the runner reads it (rebased into the image when remote)."""
        return self._project_file(self.data)

    def _data_is_file(self) -> bool:
        if is_data_pattern(self.data):
            return False
        if self.remote is not None or is_uri(self.data):
            return str(self.data).endswith(".csv")
        return Path(self.data).is_file()

    @property
    def data_dir(self) -> str:
        """The folder CsvExampleGen reads (ExampleGen takes folders, not files): of a pattern, its leading
        folders without a spec or glob character (spans.split_pattern)."""
        uri = self.data_uri.rstrip("/")
        if is_data_pattern(self.data):
            from tfxp.pipeline.spans import split_pattern

            return split_pattern(uri)[0]
        return uri.rsplit("/", 1)[0] if self._data_is_file() else uri

    @property
    def data_pattern(self) -> str:
        """ExampleGen's split pattern, relative to `data_dir`: a file's name, `*.csv` for a folder, the rest of a
        pattern (`span-{SPAN}/*.csv`)."""
        if is_data_pattern(self.data):
            from tfxp.pipeline.spans import split_pattern

            return split_pattern(self.data_uri.rstrip("/"))[1]
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
