"""The pipeline DAG. `create_pipeline` reads top to bottom in execution order."""

from __future__ import annotations

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
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import metadata, pipeline as tfx_pipeline
from tfx.proto import trainer_pb2, transform_pb2

from tfxp.pipeline import evaluation
from tfxp.pipeline.baseline import baseline_resolver
from tfxp.pipeline.components import AtomicPusher, DataGate, MobilePusher
from tfxp.pipeline.config import PROJECT_ROOT, PipelineConfig, model_code_fingerprint, with_project_dependency
from tfxp.pipeline.drift import data_drift_gate
from tfxp.pipeline.example_gen import csv_example_gen
from tfxp.pipeline.infra_validator import InfraValidator
from tfxp.pipeline.model_card import card_facts, environment
from tfxp.schema.rules import float_features, load_schema


def _trainer(config: PipelineConfig, custom_config: dict, **args) -> Trainer:
    """TFX's Trainer or, with Vertex AI Training, its Google Cloud twin running the same run_fn as a custom job."""
    vertex = config.remote.vertex_training if config.remote is not None else None
    if vertex is None:
        return Trainer(custom_config=custom_config, **args)
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

    from tfxp.pipeline.vertex import training_custom_config

    return VertexTrainer(custom_config={**custom_config, **training_custom_config(vertex)}, **args)


def _card_facts(config: PipelineConfig, model_code: str) -> str:
    """The model card's facts known before the run (tfxp.pipeline.model_card.card_facts)."""
    from dataclasses import asdict

    from tfxp.models.model import HYPERPARAMETERS

    hyperparameters = {"train_steps": config.train_steps, "eval_steps": config.eval_steps, **HYPERPARAMETERS}
    # The lock of this checkout: on Vertex AI, the image built from it (`tfxp compile` runs here).
    code = {"model_code": model_code, **environment(str(PROJECT_ROOT))}
    gates = [asdict(gate) for gate in config.thresholds.gates]
    return card_facts(gates, hyperparameters, code, config.intended_use, config.limitations)


def _tuning(config: PipelineConfig, code: dict, example_gen, transform, schema_gen):
    """TFX's Tuner (tfxp.models.tuning, with its own executor) when `config.tune`; else a resolver of the latest
    HyperParameters this pipeline's Tuner made, which finds none before the first tuning.
    Returns (the node, the channel of HyperParameters the Trainer reads)."""
    from tfx.dsl.components.common import resolver
    from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
    from tfx.types import Channel, standard_artifacts

    if not config.tune:
        from tfxp.pipeline.tuner import LatestHyperParametersStrategy

        # Vertex AI compiles only TFX's stock strategies (see baseline_resolver).
        strategy = LatestArtifactStrategy if config.remote is not None else LatestHyperParametersStrategy
        latest = resolver.Resolver(
            strategy_class=strategy,
            hyperparameters=Channel(type=standard_artifacts.HyperParameters),
        ).with_id("latest_hyperparameters")
        return latest, latest.outputs["hyperparameters"]
    from tfxp.pipeline.tuner import OwnTuner

    tuner = OwnTuner(
        tuner_fn="tfxp.models.tuning.tuner_fn",
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(num_steps=config.tune_steps or config.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        custom_config={
            **code,
            "tuning": {"tuner": config.tuner, "trials": config.tune, "space": dict(config.search_space)},
        },
    ).with_id("Tuner")
    return tuner, tuner.outputs["best_hyperparameters"]


def create_pipeline(config: PipelineConfig) -> tfx_pipeline.Pipeline:
    """The TFX pipeline of `config`: every component in DAG order, wired by its artifacts.

    Long because it reads top to bottom as the DAG, one component after another, as TFX's
    templates' create_pipeline does; each component's own logic lives in its module.
    """
    example_gen = csv_example_gen(
        str(config.data_dir),
        config.data_pattern,
        float_columns=float_features(load_schema(config.schema)),
        eval_rows=config.eval_rows,
        missing_values=dict(config.missing_values),
        input_files=config.input_files,
        rolling_spans=config.rolling,
    )

    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])

    schema_gen = ImportSchemaGen(schema_file=config.schema_file)

    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )

    data_gate = DataGate(
        anomalies=example_validator.outputs["anomalies"], statistics=statistics_gen.outputs["statistics"]
    )

    # This run's training data against the served model's (tfxp.pipeline.drift), after the schema's checks.
    drift_gate = data_drift_gate(
        example_gen.outputs["examples"],
        statistics_gen.outputs["statistics"],
        serving_dir=config.serving_dir,
        thresholds=config.monitoring,
        inputs=[f.name for f in config.problem.features],
        accepted=config.accept_drift,
    )
    drift_gate.add_upstream_node(data_gate)

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
    transform.add_upstream_node(drift_gate)

    # Hyperparameters: a search now (`tfxp run --tune N`), or the latest one an earlier run made (none: defaults).
    tuning, hyperparameters = _tuning(config, code, example_gen, transform, schema_gen)

    trainer = _trainer(
        config,
        run_fn="tfxp.models.model.run_fn",
        hyperparameters=hyperparameters,
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
        eval_config=evaluation.eval_config(config.thresholds, config.problem),
        # TFX imports custom_extractors from here (in Beam workers too: tfxp is staged for them).
        module_path=evaluation.__name__,
    )
    # TFX's executor with numpy's reprs summarized: TFMA's calls format a batch into an error TF discards.
    evaluator.executor_spec = executor_spec.BeamExecutorSpec(evaluation.EvaluatorExecutor)

    # The candidate served by a real server and its answers compared (tfxp.pipeline.infra_validator).
    infra_validator = InfraValidator(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        model_name=config.name,
        warmup_records=config.warmup_records,
    ).with_id("InfraValidator")

    pusher = AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        model_evaluation=evaluator.outputs["evaluation"],
        infra_blessing=infra_validator.outputs["blessing"],
        baseline_model=baseline.outputs["model"],
        serving_dir=config.serving_dir,
        model_name=config.name,
        warmup_records=config.warmup_records,
        monitoring=config.monitoring.to_json(),
        model_card=_card_facts(config, code["model_code"]),
    ).with_id("Pusher")

    mobile_pusher = MobilePusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        transform_graph=transform.outputs["transform_graph"],
        examples=example_gen.outputs["examples"],
        pushed_model=pusher.outputs["pushed_model"],
        infra_blessing=infra_validator.outputs["blessing"],
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
            drift_gate,
            transform,
            tuning,
            trainer,
            baseline,
            evaluator,
            infra_validator,
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


def node_graph(config: PipelineConfig) -> dict[str, tuple[str, ...]]:
    """create_pipeline's DAG: node id -> the ids of the nodes it takes inputs from, in TFX's topological order
    (the order LocalDagRunner runs them). What `tfxp run --node` accepts and `tfxp compile --target airflow`
    makes tasks of."""
    return {
        node.id: tuple(sorted(upstream.id for upstream in node.upstream_nodes))
        for node in create_pipeline(config).components
    }
