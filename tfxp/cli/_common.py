"""Helpers shared by the `tfxp` command modules. TF-free: heavy imports happen inside functions."""

from __future__ import annotations

import csv
from pathlib import Path

import click


class CommandGroup(click.Group):
    """A group whose command list wraps each command's purpose instead of cutting it.

    Click's Group.format_commands cuts a purpose at (help width - 6 - longest
    command name) characters and adds "...": 58 on an 80-column terminal, fewer on
    a narrower one. Each command's first docstring line is its purpose, kept within
    58 characters so it fits one line at 80 columns (tests/pipeline/test_cli.py).
    """

    group_class = type  # subgroups made with .group() list their commands the same way

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                # A limit no first line reaches: the first sentence, whole.
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def read_rows_option(rows_path: Path):
    """The `--rows` file as a tfxp.serving.client.RowsFile (its header and rows, values as read).

    Raises click.BadParameter (exit 2, naming --rows) when the file can't be read as rows.
    """
    from tfxp.serving.client import read_rows_file

    try:
        return read_rows_file(rows_path)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from None


def check_model_columns(rows_file, inputs, optional, allow_missing_optional: bool) -> list[dict]:
    """The rows of `rows_file` (one dict per row, column -> raw value) once it has a column for each model input.

    Raises click.BadParameter (exit 2, naming --rows and the missing columns) when it lacks one
    (the rule of tfxp.serving.client.check_columns).
    """
    from tfxp.serving.client import MissingColumnsError, check_columns

    try:
        check_columns(rows_file, inputs, optional, allow_missing_optional)
    except MissingColumnsError as exc:
        hint = "" if exc.required else "; --allow-missing-optional reads them as missing in every row"
        raise click.BadParameter(f"{exc}{hint}", param_hint="--rows") from None
    return rows_file.rows


def table_cells(name: str, value) -> list[tuple[str, object]]:
    """A per-row output value as table cells: `name` for a scalar, `name[k]` for each of K values."""
    if not isinstance(value, list):
        return [(name, value)]
    return [cell for k, item in enumerate(value) for cell in table_cells(f"{name}[{k}]", item)]


def json_safe(value):
    """Results as strict JSON: NaN and infinities (no answer for the row) as null, bytes as {"b64": ...}."""
    import base64
    import math

    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


# `--rows` of `tfxp predict` and `tfxp mobile-predict`: the same file format, read by `read_rows_option`.
rows_option = click.option(
    "--rows",
    "rows_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Raw feature rows: a .csv with a header, or a .jsonl of objects.",
)


def log_beside(path: Path) -> Path:
    """`<path>.log` next to an output file or folder: the library logs of one command."""
    path = path.resolve()
    return path.with_name(path.name + ".log")
