"""Writing a project spec: `dumps` (the YAML text, with comments) and `dump` (to a project.yaml, read back
before it is written)."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from tfxp.project.load import parse
from tfxp.project.spec import Monitoring, Project, ProjectError, check_hook, is_uri


def _yaml_scalar(value: Any) -> str:
    """One YAML scalar, quoted when YAML would read it as something else (yes, 1, null, 'a: b')."""
    import yaml

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _yaml_flow_list(values) -> str:
    """A flow sequence `[a, 'b, c']`: quoting decided by PyYAML in flow context (',' and ']' matter there)."""
    import yaml

    return yaml.safe_dump(list(values), default_flow_style=True, allow_unicode=True, width=1 << 30).strip()


_LINE_WIDTH = 110


def _noted(line: str, note: str | None) -> list[str]:
    """`line` with `note` as an end-of-line comment, or as comment lines above it when that would be long."""
    if not note:
        return [line]
    note = " ".join(note.split())
    if len(line) + len(note) + 4 <= _LINE_WIDTH:
        return [f"{line}  # {note}"]
    indent = " " * (len(line) - len(line.lstrip(" ")))
    return [*textwrap.wrap(note, _LINE_WIDTH, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# "), line]


def _relative(path: str, folder: Path) -> str:
    """`path` relative to `folder` when it sits in the folder or beside it (the project moves with its
    data), else as given."""
    if is_uri(path):
        return path
    relative = os.path.relpath(path, folder)
    return relative if not relative.startswith(os.path.join("..", "..")) else path


def dumps(
    project: Project,
    header: str | None = None,
    notes: Mapping[str, str] | None = None,
    folder: Path | str | None = None,
) -> str:
    """The YAML text of `project`. `header`: comment lines at the top. `notes`: end-of-line comments keyed
    "name", "data", "label", "label.classes", "features.<column>", "slices", "thresholds.<metric>".
    `folder`: where the file will live (paths are written relative to it when close)."""
    notes = dict(notes or {})
    folder = Path(folder).resolve() if folder is not None else project.dir
    lines = [f"# {line}".rstrip() for line in (header or "").splitlines()]
    lines += _noted(f"name: {_yaml_scalar(project.name)}", notes.get("name"))
    if project.data is not None:
        data = _relative(project.data, folder) if folder is not None else project.data
        lines += _noted(f"data: {_yaml_scalar(data)}", notes.get("data"))
    label = project.label
    lines += _noted("label:", notes.get("label"))
    lines.append(f"  column: {_yaml_scalar(label.column)}")
    if label.dtype is not None:
        lines.append(f"  dtype: {label.dtype}")
    lines.append(f"  task: {label.task}")
    if label.task == "binary":
        lines.append(f"  positive: {_yaml_scalar(label.positive)}")
    if label.task != "regression":
        lines += _noted(f"  classes: {_yaml_flow_list(label.classes)}", notes.get("label.classes"))
    if label.hook is not None:
        hook = label.hook
        target, function = check_hook(hook)
        if target.endswith(".py") and folder is not None:
            hook = f"{_relative(target, folder)}:{function}"
        lines.append(f"  hook: {_yaml_scalar(hook)}")
    lines.append("features:")
    for c in project.features:
        lines += _noted(f"  - name: {_yaml_scalar(c.name)}", notes.get(f"features.{c.name}"))
        lines.append(f"    dtype: {c.dtype}")
        lines.append(f"    kind: {c.kind}")
        if c.kind == "bucketized":
            lines.append(f"    buckets: {c.buckets}")
        if c.kind == "categorical_int":
            lines.append(f"    size: {c.size}")
        lines.append(f"    required: {_yaml_scalar(c.required)}")
        if c.missing_values:
            lines.append(f"    missing_values: {_yaml_flow_list(c.missing_values)}")
    lines += _noted(f"slices: {_yaml_flow_list(project.slices)}", notes.get("slices"))
    lines.append("thresholds:")
    for g in project.thresholds:
        lines += _noted(f"  - metric: {g.metric}", notes.get(f"thresholds.{g.metric}"))
        lines.append(f"    higher_is_better: {_yaml_scalar(g.higher_is_better)}")
        lines.append(f"    bound: {_yaml_scalar(g.bound)}")
        lines.append(f"    max_change: {_yaml_scalar(g.max_change)}")
    if project.monitoring != Monitoring():
        lines += _monitoring_lines(project.monitoring)
    for key in ("intended_use", "limitations"):  # the model card's considerations, when the project says them
        if getattr(project, key) is not None:
            lines.append(f"{key}: {json.dumps(getattr(project, key))}")  # a JSON string is a YAML string
    if project.search_space:
        lines += ["tuning:", "  search_space:"]
        lines += [f"    {name}: {_yaml_flow_list(values)}" for name, values in project.search_space]
    return "\n".join(lines) + "\n"


def _monitoring_lines(m: Monitoring) -> list[str]:
    """The `monitoring:` section (written only when it differs from the defaults), as Monitoring.spec_dict."""
    lines = ["monitoring:"]
    for key, value in m.spec_dict().items():
        if not isinstance(value, dict):
            lines.append(f"  {key}: {_yaml_scalar(value)}")
            continue
        lines.append(f"  {key}:")
        for name, inner in value.items():
            if isinstance(inner, dict):
                lines.append(
                    f"    {_yaml_scalar(name)}: {{{', '.join(f'{k}: {_yaml_scalar(v)}' for k, v in inner.items())}}}"
                )
            else:
                lines.append(f"    {name}: {_yaml_scalar(inner)}")
    return lines


def dump(project: Project, path: Path | str, header: str | None = None, notes: Mapping[str, str] | None = None) -> None:
    """Writes `project` as YAML to `path` (a project.yaml), paths relative to its folder when close.

    See `dumps` for `header` and `notes`. The text is re-read before writing, so a value the YAML would
    not give back unchanged raises ProjectError instead of writing a spec that means something else.
    """
    import yaml

    path = Path(path)
    text = dumps(project, header, notes, folder=path.parent)
    back = parse(yaml.safe_load(text), str(path), path.parent.resolve())
    if back != replace(project, dir=path.parent.resolve()):
        raise ProjectError(path, "", "the YAML written would not read back as the same project")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
