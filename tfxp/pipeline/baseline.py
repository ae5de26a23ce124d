"""Baseline resolution: the latest blessed model of the candidate's identity, other than the candidate."""

from __future__ import annotations

import logging

from tfx import types
from tfx.dsl.components.common import resolver

from tfxp.pipeline.identity import ModelIdentity, read_identity

# The SavedModel inside a Trainer's Model artifact (TFX's path_utils.serving_model_path).
SERVING_MODEL_DIR = "Format-Serving"

_log = logging.getLogger(__name__)


def model_identity(model: types.Artifact) -> ModelIdentity | None:
    """The identity saved with a Trainer's model; None when it has none or it can't be read."""
    try:
        return read_identity(f"{model.uri.rstrip('/')}/{SERVING_MODEL_DIR}")
    except ValueError as exc:
        _log.warning("baseline_resolver: %s", exc)
        return None


class LatestBlessedOtherModelStrategy(resolver.ResolverStrategy):
    """Like TFX's LatestBlessedModelStrategy, but never returns the candidate itself.

    With the stock strategy a re-run with unchanged inputs resolves the cached
    candidate as its own baseline, so the Evaluator's inputs change and the
    "cached" run evaluates again (and compares a model to itself). Excluding the
    candidate keeps a re-run fully cached and keeps comparisons meaningful.
    Inputs: `model` and `model_blessing` (all of each type), `candidate` (Trainer's output).
    """

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        candidates = {a.id for a in input_dict.get("candidate", [])}
        blessings = {
            b.get_int_custom_property("current_model_id"): b
            for b in input_dict.get("model_blessing", [])
            if b.get_int_custom_property("blessed") == 1
        }
        wanted = [model_identity(a) for a in input_dict.get("candidate", [])]
        for model in sorted(input_dict.get("model", []), key=lambda a: a.id, reverse=True):
            if model.id not in blessings or model.id in candidates:
                continue
            if wanted and wanted[0] is not None:
                identity = model_identity(model)
                if identity != wanted[0]:
                    why = "; ".join(identity.differences(wanted[0])) if identity else "no problem file"
                    _log.info("baseline_resolver: skipped blessed model %s, another model (%s)", model.uri, why)
                    continue
            return {"model": [model], "model_blessing": [blessings[model.id]], "candidate": []}
        return {"model": [], "model_blessing": [], "candidate": []}


def baseline_resolver(candidate: types.BaseChannel, remote: bool) -> resolver.Resolver:
    """The node that finds the Evaluator's baseline model.

    Vertex AI Pipelines compiles only TFX's stock strategies (its resolver is a
    metadata query, not Python), so a compiled pipeline uses
    LatestBlessedModelStrategy; an unchanged re-run there evaluates again.
    """
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.types import Channel, standard_artifacts

    channels = {
        "model": Channel(type=standard_artifacts.Model),
        "model_blessing": Channel(type=standard_artifacts.ModelBlessing),
    }
    if remote:
        return resolver.Resolver(strategy_class=LatestBlessedModelStrategy, **channels).with_id("baseline_resolver")
    return resolver.Resolver(strategy_class=LatestBlessedOtherModelStrategy, candidate=candidate, **channels).with_id(
        "baseline_resolver"
    )
