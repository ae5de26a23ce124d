"""A model's identity: what a client of `<name>` relies on, so a change of it is a new model, not a new version.

TF Serving serves the highest version under a model's base path and hot-swaps to a new one, so a
version that predicts another label (P(married) where clients asked for P(union)), another task or
class order, or reads other inputs replaces the served model silently. `tfxp run` therefore compares
the problem it trains (tfxp.models.features.Problem, as `Problem.to_dict`) with the problem saved in
the latest pushed version (`assets.extra/tfxp_problem.json`, tfxp.models.signatures.PROBLEM_FILE) and
refuses a different one before any component runs (runner._preflight); the baseline resolver skips
blessed models of another identity (pipeline.baseline), so the Evaluator never gates against one.

The identity is, by explicit fields (so a field added to the problem later does not change it): the
label column, task, classes (order included: it is the output order), the label hook (a file hook by
its file name and function, so moving the project folder keeps the identity), and the set of input
features by (name, dtype, kind). Not part of it: a vocabulary's or bucketization's size, slices,
thresholds — a retrained version may change those.

TF-free: reading a local version directory needs only `json` (TensorFlow's gfile for gs:// URIs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# tfxp.models.signatures.PROBLEM_FILE, spelled here too: importing signatures loads TensorFlow, and the
# identity check runs before anything heavy (tests/pipeline/test_identity.py checks they agree).
PROBLEM_FILE = "assets.extra/tfxp_problem.json"


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two versions the same model for its clients.

    `inputs`: frozenset of (name, dtype, kind), e.g. ("age", "float32", "numeric"); `classes`: the label's
    class values in output order (() for regression); `hook`: the normalized label hook or None.
    """

    label: str
    task: str
    classes: tuple[str, ...]
    hook: str | None
    inputs: frozenset[tuple[str, str, str]]

    @classmethod
    def of(cls, problem: Mapping[str, Any]) -> ModelIdentity:
        """The identity of a problem dict (`Problem.to_dict()`, `Project.to_problem_dict()`, or the JSON of
        PROBLEM_FILE). Raises KeyError naming a missing field."""
        label = problem["label"]
        return cls(
            label=str(label["column"]),
            task=str(label["task"]),
            classes=tuple(str(c) for c in label.get("classes") or ()),
            hook=_normalized_hook(label.get("hook")),
            inputs=frozenset((str(f["name"]), str(f["dtype"]), str(f["kind"])) for f in problem["features"]),
        )

    def differences(self, new: ModelIdentity) -> list[str]:
        """Each way `new` differs from this identity, old -> new, e.g. ["label: union -> married",
        "inputs: + age, - exper"]; [] when they are the same model."""
        found = []
        if self.label != new.label:
            found.append(f"label: {self.label} -> {new.label}")
        if self.task != new.task:
            found.append(f"task: {self.task} -> {new.task}")
        if self.classes != new.classes:
            found.append(f"classes: {_list(self.classes)} -> {_list(new.classes)}")
        if self.hook != new.hook:
            found.append(f"label hook: {self.hook or 'none'} -> {new.hook or 'none'}")
        inputs = _input_changes(self.inputs, new.inputs)
        if inputs:
            found.append(f"inputs: {inputs}")
        return found


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(values) + "]"


def _normalized_hook(hook: str | None) -> str | None:
    """A file hook ("/abs/path/label.py:fn", absolute once loaded) as "label.py:fn"; a module hook as is."""
    if not hook:
        return None
    target, _, function = str(hook).rpartition(":")
    if target.endswith(".py"):
        return f"{os.path.basename(target)}:{function}"
    return str(hook)


def _input_changes(old: frozenset[tuple[str, str, str]], new: frozenset[tuple[str, str, str]]) -> str:
    """ "+ age, - exper, school: int64 categorical_int -> string vocabulary" ("" when the sets are equal)."""
    old_by_name = {name: (dtype, kind) for name, dtype, kind in old}
    new_by_name = {name: (dtype, kind) for name, dtype, kind in new}
    parts = [f"+ {name}" for name in sorted(new_by_name.keys() - old_by_name.keys())]
    parts += [f"- {name}" for name in sorted(old_by_name.keys() - new_by_name.keys())]
    for name in sorted(old_by_name.keys() & new_by_name.keys()):
        if old_by_name[name] != new_by_name[name]:
            parts.append(f"{name}: {' '.join(old_by_name[name])} -> {' '.join(new_by_name[name])}")
    return ", ".join(parts)


def read_identity(saved_model_dir: str) -> ModelIdentity | None:
    """The identity saved with a SavedModel (its PROBLEM_FILE); None when it has none (a model saved by a
    tfxp release before the problem file, or not by tfxp at all). Raises ValueError for an unreadable file."""
    path = f"{str(saved_model_dir).rstrip('/')}/{PROBLEM_FILE}"
    try:
        if "://" in path:
            import tensorflow as tf

            if not tf.io.gfile.exists(path):
                return None
            with tf.io.gfile.GFile(path) as f:
                text = f.read()
        else:
            with open(path) as f:
                text = f.read()
        return ModelIdentity.of(json.loads(text))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable model problem: {exc}") from exc


@dataclass(frozen=True)
class IdentityChange:
    """A project whose model is not the one pushed under its name: `pushed` is that version's directory."""

    name: str
    pushed: str
    differences: list[str]

    def message(self, serving_dir: str, mobile_dir: str) -> str:
        """The refusal: what differs, and the two ways on (another name, or moving the old model away)."""
        lines = [
            f"model {self.name}: this project is a different model from the one pushed under that name "
            f"({self.pushed}):",
            *(f"  {d}" for d in self.differences),
            "A change of label, task, classes or inputs makes a new model, not a new version: TF Serving would "
            f"hot-swap it in for clients of {self.name}. Nothing was run.",
            "  - a new model: give it its own name (tfxp run --name NEW, or `name:` in project.yaml);",
            f"  - to replace {self.name} on purpose: move {serving_dir} (and {mobile_dir}) away, then run again.",
        ]
        return "\n".join(lines)


def pushed_identity_change(name: str, serving_dir: str, problem: Mapping[str, Any]) -> IdentityChange | None:
    """An IdentityChange when the latest version under `serving_dir` was trained on a problem of another
    identity than `problem` (a `Problem.to_dict()`); None when it is the same model, nothing is pushed yet,
    or the version carries no problem file (a model pushed before tfxp saved one: nothing to compare).
    Raises ValueError for an unreadable problem file."""
    from tfxp.pipeline.publish import latest_version

    version = latest_version(serving_dir)
    if version is None:
        return None
    pushed = f"{serving_dir.rstrip('/')}/{version}"
    old = read_identity(pushed)
    if old is None:
        return None
    differences = old.differences(ModelIdentity.of(problem))
    return IdentityChange(name, pushed, differences) if differences else None
