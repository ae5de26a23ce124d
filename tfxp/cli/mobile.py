"""`tfxp convert` and `tfxp mobile-predict`: TFLite models for apps.

Heavy imports (TensorFlow, the TFLite runtime) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tfxp.cli._common import (
    CommandFailed,
    JsonErrorsCommand,
    bad_row_error,
    check_model_columns,
    class_cells,
    classes_fit,
    json_safe,
    log_beside,
    predicted_classes,
    read_rows_option,
    rows_option,
    table_cells,
)
from tfxp.cli.exit_codes import ExitCode, epilog


@click.command(cls=JsonErrorsCommand, epilog=epilog("convert"))
@click.option(
    "--saved-model",
    "saved_model",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A SavedModel saved by the Trainer (e.g. a pushed output/serving/<name>/<version>).",
)
@click.option(
    "--transform-output",
    "transform_output",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The Transform component's transform_graph folder for that model. Default: the copy the "
    "SavedModel carries in assets.extra/transform_output/ (models saved by this project's Trainer).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for model.tflite, model_quant.tflite, model_web.tflite and model_spec.json.",
)
@click.option(
    "--rows",
    "rows_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Raw eval rows (.csv or .jsonl) with the model's inputs and the label column, for the parity "
    "gate. Without it no parity is checked.",
)
@click.option(
    "--version",
    "model_version",
    type=click.IntRange(min=0),
    default=None,
    help="Model version for model_spec.json. Default: the SavedModel folder's name if it is a number.",
)
@click.option(
    "--name",
    "model_name",
    default=None,
    help="Model name for model_spec.json. Default: the parent folder's name when the version is inferred.",
)
@click.option(
    "--no-bytes-signature",
    "no_bytes_signature",
    is_flag=True,
    help="Leave out serving_bytes (strings as bytes, for TensorFlowLiteSwift); saves ~40 KB per file.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout; on an error, an error object (the text also goes to stderr).",
)
def convert(
    saved_model: Path,
    transform_output: Path | None,
    output: Path,
    rows_path: Path | None,
    model_version: int | None,
    model_name: str | None,
    no_bytes_signature: bool,
    as_json: bool,
) -> None:
    """Convert a SavedModel to TFLite models for mobile apps.

    Builtin ops only; the models take the raw features.
    """
    resolved = saved_model.resolve()
    if model_version is None and resolved.name.isascii() and resolved.name.isdigit():
        model_version = int(resolved.name)
        model_name = model_name or resolved.parent.name
    rows_file = read_rows_option(rows_path) if rows_path is not None else None
    from tfxp.pipeline.console import library_output_to

    log_file = log_beside(output)
    try:
        # Everything that loads TensorFlow runs inside: its C++ start-up lines (CUDA probing, oneDNN)
        # and the converter's MLIR lines go to the log file, not the console.
        with library_output_to(log_file):
            result = _convert(
                saved_model, transform_output, output, rows_file, model_version, model_name, no_bytes_signature
            )
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - converter, transform and SavedModel loading errors, named
        raise CommandFailed(f"conversion failed: {type(exc).__name__}: {exc} (log: {log_file})") from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_conversion(result, checked=rows_file is not None)
    sys.exit(ExitCode.OK if result.ok else ExitCode.CHECK_FAILED)


def _convert(
    saved_model: Path,
    transform_output: Path | None,
    output: Path,
    rows_file,
    model_version: int | None,
    model_name: str | None,
    no_bytes_signature: bool,
):
    """tfxp.mobile.convert.convert for the command's options: its ConversionResult.

    Raises RowsError for a rows file without a column the gate needs or a value it can't read,
    click.BadParameter when no transform output is found, and the converter's own errors.
    """
    from tfxp.mobile import convert as convert_lib
    from tfxp.models.signatures import load_problem
    from tfxp.rows import RowError

    rows, columns = None, {}
    if rows_file is not None:
        # The parity gate needs every model input and the label's column: a file lacking one
        # would be read as "missing in every row" and gate on the wrong question.
        problem = load_problem(str(saved_model))
        columns = {f.name: f.dtype for f in problem.features}
        columns[problem.label.column] = problem.label.dtype
        rows = check_model_columns(rows_file, list(columns), optional=(), allow_missing_optional=False)
    if transform_output is None:
        try:
            transform_output = Path(convert_lib.find_transform_output(saved_model))
        except convert_lib.ConversionError as exc:
            raise click.BadParameter(str(exc), param_hint="--transform-output") from None
    try:
        return convert_lib.convert(
            saved_model,
            output,
            transform_output_dir=transform_output,
            eval_rows=rows,
            model_version=model_version,
            model_name=model_name,
            bytes_signature=not no_bytes_signature,
        )
    except RowError as exc:
        # Named by where it is in the file (file:line), not by its index among the rows.
        raise bad_row_error(rows_file, columns, exc) from None


def _print_conversion(result, checked: bool) -> None:
    from tfxp.mobile.parity import METRIC_TEXT

    for name, variant in result.variants.items():
        if variant.written:
            line = f"{name:6} {variant.file} {variant.size_bytes / 1024:.1f} KiB"
            if variant.parity is not None:
                p = variant.parity
                metric = METRIC_TEXT.get(p.metric, p.metric or "metric")
                line += (
                    f"  parity on {p.rows} rows: max|d{p.output}| {p.max_abs_diff:.3g}, "
                    f"{metric} {_fmt(p.metric_value)} (SavedModel {_fmt(p.reference_metric_value)})"
                )
            click.echo(line)
        else:
            click.echo(f"{name:6} NOT WRITTEN: {'; '.join(variant.reasons)}")
    if not checked:
        click.echo("parity not checked (give --rows to gate each variant against the SavedModel)")
    click.echo(f"wrote {result.spec_path}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@click.command("mobile-predict", cls=JsonErrorsCommand, epilog=epilog("mobile-predict"))
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A converted model folder (model_spec.json and .tflite files).",
)
@rows_option
@click.option(
    "--variant",
    type=click.Choice(["float", "quant"]),
    default=None,
    help="Which .tflite to run. Default: model_spec.json's default_variant.",
)
@click.option(
    "--allow-missing-optional",
    is_flag=True,
    help="Let the rows file lack columns of optional inputs (required: false in model_spec.json): "
    "read as missing in every row. Required inputs always need a column.",
)
@click.option(
    "--runtime",
    type=click.Choice(["ai-edge-litert", "tflite-runtime", "tensorflow"]),
    default=None,
    help="The TFLite interpreter to run on. Default: $TFXP_TFLITE_RUNTIME, else LiteRT (ai-edge-litert) "
    "if installed, else tflite-runtime.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON object instead of a table; on an error, an error object (the text also goes to stderr).",
)
def mobile_predict(
    model_dir: Path,
    rows_path: Path,
    variant: str | None,
    allow_missing_optional: bool,
    runtime: str | None,
    as_json: bool,
) -> None:
    """Predictions for raw rows from a TFLite model.

    Runs a converted model on the TFLite runtime, without TensorFlow. Every
    model input needs a column in the rows file; a row missing a required value
    gets no answer (null in --json, nan in the table). One value per row
    (binary probability, regression prediction) or K (multiclass probabilities);
    a classification model's rows also get the predicted class, and each
    probability is named by its class (model_spec.json's output.classes).
    """
    from tfxp.mobile.runtime import MobileModel, ModelSpecError
    from tfxp.rows import RowError

    rows_file = read_rows_option(rows_path)
    try:
        model = MobileModel(model_dir, variant, runtime=runtime)
    except ModelSpecError as exc:  # its text names the file
        raise CommandFailed(str(exc)) from None
    except (ImportError, OSError, ValueError) as exc:  # no interpreter; the interpreter refusing a .tflite
        raise CommandFailed(f"{model_dir}: {' '.join(str(exc).split())}") from None
    rows = check_model_columns(
        rows_file,
        [i["name"] for i in model.inputs],
        [i["name"] for i in model.inputs if not i.get("required", True)],
        allow_missing_optional,
    )
    try:
        predictions = model.predict(rows)
    except RowError as exc:
        # Named by where it is in the file (file:line), not by its index among the rows.
        raise bad_row_error(rows_file, {i["name"]: i["dtype"] for i in model.inputs}, exc) from None
    except ValueError as exc:  # model_spec.json names an input dtype rows don't hold
        raise CommandFailed(f"{model.model_dir / 'model_spec.json'}: {exc}") from None
    spec_output = model.spec.get("output") or {}
    output = spec_output.get("name", "prediction")
    # model_spec.json's output.classes name the values (multiclass: one per value; binary: negative,
    # positive, the output being P(positive)); regression has none.
    classes = spec_output.get("classes")
    if classes is not None and not classes_fit(predictions, classes):
        raise CommandFailed(
            f"{model.model_dir / 'model_spec.json'}: output.classes ({', '.join(map(str, classes))}) do not name "
            f"the model's {output} values"
        )
    chosen = predicted_classes(predictions, classes) if classes else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": model.spec.get("model_name"),
                    "version": model.version,
                    "variant": model.variant,
                    "runtime": model.model.runtime,
                    "output": output,
                    "predictions": json_safe(predictions),
                    "classes": classes,
                    "predicted_classes": chosen,
                },
                allow_nan=False,
            )
        )
        return
    from tabulate import tabulate

    def cells(index: int) -> list[tuple[str, object]]:
        if chosen is None:
            return table_cells(output, predictions[index])
        return class_cells(output, predictions[index], chosen[index], classes)

    table = [[i] + [value for _, value in cells(i)] for i in range(len(predictions))]
    headers = ["row"] + ([name for name, _ in cells(0)] if predictions else [output])
    # Class names are text: "007" or "1e3" must not be shown as numbers.
    click.echo(tabulate(table, headers=headers, floatfmt=".6g", disable_numparse=[1] if chosen else False))
