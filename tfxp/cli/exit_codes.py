"""The exit codes of every `tfxp` command: one table, read by the `sys.exit` calls and by each command's help.

`ExitCode` gives each number one meaning across commands; `EXIT_CODES` says, per command, which codes it
returns and what each means there. A command's `--help` epilog is `epilog(command)`, built from its row, so
the help cannot drift from the code. `tfxp run` takes its code from `tfxp.pipeline.runner.ExitCode`, whose
values are these (tests/pipeline/test_cli.py checks both agree).

TF-free and click-free: `--help` imports it.
"""

from __future__ import annotations

import enum
import textwrap
from collections.abc import Mapping
from types import MappingProxyType


class ExitCode(enum.IntEnum):
    """A process exit status of `tfxp`; the same number means the same kind of outcome in every command."""

    OK = 0  # the command did its job
    FAILURE = 1  # it could not (a server error, a failed conversion, a crash): the reason is printed
    USAGE = 2  # a bad option or input file, found before any work; click's own code for UsageError
    CHECK_FAILED = 3  # the input failed a check (bad data; a TFLite variant failing parity): nothing pushed
    NOT_BLESSED = 4  # the Evaluator did not bless the model: nothing pushed
    MOBILE_FAILED = 5  # pushed for serving, but the mobile (TFLite) push failed: the reason is printed


# Command (as typed after `tfxp`) -> the codes it returns -> their meaning for that command.
# A new command adds its row here (e.g. "init", issue 11) and passes epilog=epilog("init").
EXIT_CODES: Mapping[str, Mapping[ExitCode, str]] = MappingProxyType(
    {
        "run": {
            ExitCode.OK: "a blessed model is pushed (or was, by an earlier identical run); with --node: the "
            "nodes ran (and, with --node Pusher, pushed)",
            ExitCode.FAILURE: "unexpected failure (see the log file named in the output)",
            ExitCode.USAGE: "usage error (also: another tfxp run holds --output; a --data folder without *.csv "
            "or a span pattern matching nothing; --rolling without {SPAN}; an --accept-drift name that is no "
            "input; a schema whose FLOAT features allow NaN; a new label, task, classes or inputs under the name "
            "of a pushed model: name the new model)",
            ExitCode.CHECK_FAILED: "bad data, nothing pushed: an unreadable CSV file (file:line named), no rows, "
            "anomalies against the schema, drift from the served model's training data over a threshold "
            "(--accept-drift FEATURE), a gap in the --rolling window of spans, or spans older than the served "
            "model's",
            ExitCode.NOT_BLESSED: "model not blessed by the Evaluator; nothing pushed (with --node: only a run of "
            "the Pusher says so)",
            ExitCode.MOBILE_FAILED: "the model was pushed for serving; the mobile (TFLite) push failed (a "
            "conversion error, or every variant failed its checks): what was pushed and why not is printed",
        },
        "compile": {
            ExitCode.OK: "the pipeline file written (Vertex AI JSON, KFP YAML or Airflow DAG)",
            ExitCode.FAILURE: "compiling failed (the reason is printed)",
            ExitCode.USAGE: "usage error",
        },
        "init": {
            ExitCode.OK: "project.yaml and schema.pbtxt written",
            ExitCode.USAGE: "usage error (a label that is not a column or can't be learned, DIR already holds a "
            "project, no CSV files)",
            ExitCode.CHECK_FAILED: "a CSV file can't be read as the dataset (file:line printed)",
        },
        "schema infer": {
            ExitCode.OK: "schema written",
            ExitCode.FAILURE: "inference failed (traceback printed; library log: --output with a .log suffix)",
            ExitCode.USAGE: "usage error",
        },
        "serve": {
            ExitCode.OK: "stopped by SIGINT/SIGTERM",
            ExitCode.FAILURE: "could not start (bad model config, port in use, ...)",
            ExitCode.USAGE: "usage error",
        },
        "predict": {
            ExitCode.OK: "predictions printed",
            ExitCode.FAILURE: "the server refused or failed the call (its error message is printed)",
            ExitCode.USAGE: "usage error (bad option, unreadable rows file, a model input without a column in it, "
            "bad value in a row)",
        },
        "convert": {
            ExitCode.OK: "every variant converted, checked and written",
            ExitCode.FAILURE: "conversion failed (nothing written; the reason is printed)",
            ExitCode.USAGE: "usage error",
            ExitCode.CHECK_FAILED: "a variant failed its checks (non-builtin op or parity) and was not written",
        },
        "monitor": {
            ExitCode.OK: "nothing over a threshold (windows with too few rows get no verdict and say so)",
            ExitCode.FAILURE: "unexpected failure (the reason is printed)",
            ExitCode.USAGE: "usage error (bad option, an unreadable --model-config-file)",
            ExitCode.CHECK_FAILED: "skew or drift over a threshold: the table names version, window, feature, "
            "kind, statistic, value and threshold",
        },
        "report": {
            ExitCode.OK: "the report is written (a run that stopped early gets one too: what ran, why it stopped)",
            ExitCode.FAILURE: "the report could not be written (the reason is printed)",
            ExitCode.USAGE: "usage error (no metadata at --output, several pipelines and no --name, a --version no "
            "run pushed: the pipelines or versions that exist are named)",
        },
        "history": {
            ExitCode.OK: "the versions and runs are printed",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (no metadata at --output, several pipelines and no --name, nothing pushed "
            "or run under the name)",
        },
        "lineage": {
            ExitCode.OK: "the version's upstream graph is printed",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (no metadata for the pipeline, a VERSION no run pushed: the versions "
            "pushed are named)",
        },
        "release status": {
            ExitCode.OK: "versions and labels printed",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (bad option)",
            ExitCode.CHECK_FAILED: "refused, config untouched (unparseable config, unknown model)",
        },
        "release pin": {
            ExitCode.OK: "pinned (or already pinned: no write)",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (bad option)",
            ExitCode.CHECK_FAILED: "refused, config untouched (unparseable config, unknown model, nothing served)",
        },
        "release canary": {
            ExitCode.OK: "written; step 1 without --server says to run it again",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (bad option)",
            ExitCode.CHECK_FAILED: "refused, config untouched (unparseable config, unknown model, "
            "version not on disk, already stable, server timeout)",
        },
        "release promote": {
            ExitCode.OK: "written; step 1 without --server says to run it again",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (bad option)",
            ExitCode.CHECK_FAILED: "refused, config untouched (unparseable config, unknown model, "
            "no canary, server timeout)",
        },
        "release rollback": {
            ExitCode.OK: "written; step 1 without --server says to run it again",
            ExitCode.FAILURE: "unexpected failure (traceback printed)",
            ExitCode.USAGE: "usage error (bad option)",
            ExitCode.CHECK_FAILED: "refused, config untouched (unparseable config, unknown model, "
            "no earlier version, not on disk, server timeout)",
        },
        "mobile-predict": {
            ExitCode.OK: "predictions printed",
            ExitCode.FAILURE: "the model folder cannot be used (model_spec.json, .tflite, no TFLite interpreter)",
            ExitCode.USAGE: "usage error (bad option, unreadable rows file, a model input without a column in it, "
            "bad value in a row)",
        },
    }
)

# Click's help width on an 80-column terminal is 78 and it indents an epilog by 2: lines of 76 fit.
_WIDTH = 76


def epilog(command: str) -> str:
    """The "Exit codes:" help section of `command` (a key of EXIT_CODES, e.g. "run" or "schema infer").

    Returns a click epilog: a `\\b` paragraph (click keeps its line breaks), one `  N  meaning` entry per
    code in ascending order, long meanings wrapped under their text at 76 columns.
    Raises KeyError naming the command when EXIT_CODES has no row for it.
    """
    try:
        codes = EXIT_CODES[command]
    except KeyError:
        raise KeyError(f"no exit codes for command {command!r} in tfxp.cli.exit_codes.EXIT_CODES") from None
    lines = ["\b", "Exit codes:"]
    for code in sorted(codes):
        lines += textwrap.wrap(
            codes[code],
            width=_WIDTH,
            initial_indent=f"  {int(code)}  ",
            subsequent_indent=" " * 5,
            break_on_hyphens=False,
        )
    return "\n".join(lines)
