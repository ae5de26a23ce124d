"""The `tfxp` command line: fast help, usage errors, exit codes documented."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from pipeline.cli import main


def test_help_lists_commands_and_exit_codes():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for text in ("--data", "--output", "--name", "--train-steps", "--beam-workers", "--beam-arg", "--json",
                 "Exit codes", "3  data anomalies"):
        assert text in result.output
    compile_help = CliRunner().invoke(main, ["compile", "--help"])
    assert compile_help.exit_code == 0
    for text in ("--target", "--pipeline-root", "--image", "--vertex-training", "--dataflow", "Exit codes"):
        assert text in compile_help.output


def test_help_does_not_import_tensorflow_or_tfx():
    # --help must answer in well under a second: it may not load TF (~12 s, 1 GB).
    code = (
        "import sys; from pipeline.cli import main\n"
        "for argv in (['run', '--help'], ['compile', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_usage_errors_exit_2():
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--train-steps", "0"]).exit_code == 2
    assert runner.invoke(main, ["run", "--beam-workers", "0"]).exit_code == 2
    assert runner.invoke(main, ["run", "--data", "/does/not/exist.csv"]).exit_code == 2
    result = runner.invoke(main, ["run", "--name", "../escape"])
    assert result.exit_code == 2 and "--name" in result.output
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "tfxp")
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "run" in result.stdout and "schema" in result.stdout
