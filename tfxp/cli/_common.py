"""Helpers shared by the `tfxp` command modules. TF-free: heavy imports happen inside functions."""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from tfxp.cli.exit_codes import ExitCode


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


class RowsError(click.BadParameter):
    """A `--rows` file (or a row in it) the command can't use: exit 2, naming --rows.

    `file`, `line` (1-based) and `column` say where, when known; `--json` prints them.
    """

    def __init__(self, message: str, *, file: Path | None = None, line: int | None = None, column: str | None = None):
        super().__init__(message, param_hint="--rows")
        self.details = {"file": None if file is None else str(file), "line": line, "column": column}


class CommandFailed(click.ClickException):
    """The command could not do its job (a server refused the call, a model folder is unusable): exit 1.

    Shown as `error: <message>` on stderr; `details` (e.g. {"status": "NOT_FOUND"}) go into `--json`'s
    error object.
    """

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, **details: object):
        super().__init__(message)
        self.details = details

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class JsonErrorsCommand(click.Command):
    """A command with `--json` whose errors keep stdout JSON: an error object there, the usual text on stderr.

    The object is `{"error": text, "exit_code": N}` plus what the error knows (RowsError: `file`,
    `line`, `column`; CommandFailed: its details), for errors found while parsing the options
    (a `--rows` file that does not exist) as for those the command raises. The exit code is the
    error's, as without `--json`.
    """

    def make_context(self, info_name, args, parent=None, **extra):
        as_json = "--json" in args  # before parsing, which consumes `args`
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if as_json:
                echo_json_error(exc)
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.params.get("as_json"):
                echo_json_error(exc)
            raise


def echo_json_error(exc: click.ClickException) -> None:
    """Prints `exc` as the JSON error object of JsonErrorsCommand on stdout."""
    error = {"error": exc.format_message(), "exit_code": int(exc.exit_code)}
    error.update(getattr(exc, "details", {}))
    click.echo(json.dumps(json_safe(error), allow_nan=False))


def read_rows_option(rows_path: Path):
    """The `--rows` file as a tfxp.rows.RowsFile (its header and rows, values as read).

    Raises RowsError (exit 2, naming --rows and, where the reader says, file:line) when the file
    can't be read as rows.
    """
    from tfxp.serving.client import read_rows_file

    try:
        return read_rows_file(rows_path)
    except (ValueError, UnicodeDecodeError, csv.Error, OSError) as exc:
        # OSError: a file click saw but can't open (no permission); its text names the path.
        raise RowsError(str(exc), file=rows_path) from None


def check_model_columns(rows_file, inputs, optional, allow_missing_optional: bool) -> list[dict]:
    """The rows of `rows_file` (one dict per row, column -> raw value) once it has a column for each model input.

    Raises RowsError (exit 2, naming --rows and the missing columns) when it lacks one
    (the rule of tfxp.rows.check_columns).
    """
    from tfxp.serving.client import MissingColumnsError, check_columns

    try:
        check_columns(rows_file, inputs, optional, allow_missing_optional)
    except MissingColumnsError as exc:
        hint = "" if exc.required else "; --allow-missing-optional reads them as missing in every row"
        raise RowsError(f"{exc}{hint}", file=rows_file.path) from None
    return rows_file.rows


def bad_row_error(rows_file, inputs: Mapping[str, Any], error: Exception, as_example: bool = False) -> RowsError:
    """The RowsError for a row of `rows_file` that can't be sent: `file:line: column: why`.

    `error`: the tfxp.rows.RowError the client or runtime raised (its text names the row by its
    0-based index, not where it is in the file). The rows are checked again one by one, input by
    input (`inputs`: {name: dtype}), to find the row and column; `as_example` also checks what only
    a tf.Example refuses (a finite float beyond float32). Called on the error path only.
    """
    from tfxp import rows as R

    for index, row in enumerate(rows_file.rows):
        for name, dtype in inputs.items():
            try:
                R.row_value(row, name, dtype, index)
                if as_example:
                    R.encode_example(row, {name: dtype}, index)
            except R.RowError as found:
                line = row_line(rows_file.path, index)
                text = str(found).removeprefix(f"row {index}: ")
                return RowsError(f"{rows_file.path}:{line}: {text}", file=rows_file.path, line=line, column=name)
    return RowsError(str(error), file=rows_file.path)  # not found again: as raised


def row_line(path: Path, index: int) -> int | None:
    """The 1-based line where row `index` (0-based, as tfxp.rows.read_rows_file counts rows) starts in `path`.

    Blank lines are no rows (both readers skip them) and a quoted CSV cell may span lines, so the
    file is read again as the reader reads it. None when the file has fewer rows.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        if Path(path).suffix.lower() == ".jsonl":
            lines = (number for number, line in enumerate(f, start=1) if line.strip())
            return next(itertools.islice(lines, index, None), None)
        reader = csv.reader(f)
        next(reader, None)  # the header
        row = -1
        while True:
            start = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                return None
            if cells:
                row += 1
                if row == index:
                    return start


def table_cells(name: str, value) -> list[tuple[str, object]]:
    """A per-row output value as table cells: `name` for a scalar, `name[k]` for each of K values."""
    if not isinstance(value, list):
        return [(name, value)]
    return [cell for k, item in enumerate(value) for cell in table_cells(f"{name}[{k}]", item)]


def classes_fit(predictions: list, classes: Sequence[str] | None) -> bool:
    """Whether `classes` name the values of `predictions` (one output's results, one per row): K
    probabilities per row for K classes (multiclass), or one probability, of the second of two
    classes, per row (binary)."""
    if not classes:
        return False
    if all(isinstance(p, list) for p in predictions):
        return all(len(p) == len(classes) for p in predictions)
    return len(classes) == 2 and all(isinstance(p, float) for p in predictions)


def predicted_classes(predictions: list, classes: Sequence[str]) -> list[str | None]:
    """Per row, the class with the highest probability; None for a row without an answer (NaN).

    Multiclass (K probabilities per row, in the order of `classes`): the first of the highest.
    Binary (P(classes[1]) per row): classes[1] when p > 0.5, else classes[0] (at 0.5 the first of
    two equal scores, as Keras' BinaryAccuracy, the gated metric, counts it).
    """
    import math

    chosen: list[str | None] = []
    for p in predictions:
        scores = p if isinstance(p, list) else [1.0 - p, p]
        if any(not isinstance(v, float) or math.isnan(v) for v in scores):
            chosen.append(None)
        else:
            chosen.append(classes[scores.index(max(scores))])
    return chosen


def class_cells(
    output: str, prediction, predicted: str | None, classes: Sequence[str] | None
) -> list[tuple[str, object]]:
    """A classification row as table cells: `predicted_class`, then each probability named by its
    class (`probabilities[setosa]`; binary: `probability[<positive class>]`). Raises ValueError
    without `classes` (a regression model's rows have no class cells)."""
    if not classes:
        raise ValueError("class_cells needs the model's output.classes")
    if isinstance(prediction, list):
        named = [(f"{output}[{name}]", value) for name, value in zip(classes, prediction, strict=True)]
    else:
        named = [(f"{output}[{classes[1]}]", prediction)]
    return [("predicted_class", predicted), *named]


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


def model_source_options(base_path_help: str) -> Callable:
    """`--model-base-path DIR` (+ `--model-name`) or `--model-config-file FILE`: one model's base path, or a text
    ModelServerConfig naming several, as TF Serving takes them. Check the values with `model_source_name`."""

    def decorate(function: Callable) -> Callable:
        function = click.option(
            "--model-config-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="A text ModelServerConfig naming several models (instead of --model-base-path).",
        )(function)
        function = click.option(
            "--model-name", default=None, help="Name of that model. Default: the base path's folder name."
        )(function)
        return click.option(
            "--model-base-path", type=click.Path(file_okay=False, path_type=Path), default=None, help=base_path_help
        )(function)

    return decorate


def model_source_name(
    model_base_path: Path | None, model_name: str | None, model_config_file: Path | None
) -> str | None:
    """The model name of `--model-base-path` (its folder's name unless `--model-name`), None with a config file.

    Raises click.UsageError unless exactly one source is given, or for `--model-name` with a config file;
    click.BadParameter for a name the server can't serve (its rule: serving/server.py).
    """
    if (model_base_path is None) == (model_config_file is None):
        raise click.UsageError("give exactly one of --model-base-path and --model-config-file")
    if model_config_file is not None and model_name is not None:
        raise click.UsageError("--model-name goes with --model-base-path; the config file names its models")
    if model_base_path is None:
        return None
    name = model_name or model_base_path.resolve().name
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) is None:
        raise click.BadParameter(
            f"{name!r}: use letters, digits, '.', '-' and '_', starting with a letter or digit",
            param_hint="--model-name",
        )
    return name
