"""TFX's Tuner component with tfxp.models.tuning's executor (every trial kept, Hyperband working), and the
resolver of the latest tuned hyperparameters for runs without --tune."""

from __future__ import annotations

from tfx import types
from tfx.components.tuner.component import Tuner
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common import resolver

from tfxp.models.tuning import TunerExecutor


class OwnTuner(Tuner):
    """TFX's Tuner (same spec, inputs and outputs) running tfxp.models.tuning.TunerExecutor."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TunerExecutor)


class LatestHyperParametersStrategy(resolver.ResolverStrategy):
    """The newest HyperParameters artifact, or none. TFX's LatestArtifactStrategy does the same but records
    its execution as FAILED in ML Metadata when there is none yet (every run before the first tuning)."""

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        found = input_dict.get("hyperparameters", [])
        newest = max(found, key=lambda a: (a.mlmd_artifact.create_time_since_epoch, a.id), default=None)
        return {"hyperparameters": [newest] if newest is not None else []}
