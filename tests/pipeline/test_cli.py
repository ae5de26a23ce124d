"""The `tfxp` command line: fast help, usage errors, exit codes documented."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from tfxp.pipeline.cli import main


def test_help_lists_commands_and_exit_codes():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for text in ("--data", "--output", "--name", "--train-steps", "--beam-workers", "--beam-arg", "--json",
                 "Exit codes", "3  bad data", "another tfxp run holds --output"):
        assert text in result.output
    compile_help = CliRunner().invoke(main, ["compile", "--help"])
    assert compile_help.exit_code == 0
    for text in ("--target", "--pipeline-root", "--image", "--vertex-training", "--dataflow", "Exit codes"):
        assert text in compile_help.output


def _heavy_modules_imported(*argvs: list[str]) -> list[str]:
    """TF/TFX/Beam/TFMA modules a fresh process has loaded after running `tfxp <argv>` for each argv."""
    code = (
        "import sys; from tfxp.pipeline.cli import main\n"
        f"for argv in {list(argvs)!r}:\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform', 'tensorflow_model_analysis'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_help_does_not_import_tensorflow_or_tfx():
    # --help must answer in well under a second: it may not load TF (~12 s, 1 GB).
    assert _heavy_modules_imported(["run", "--help"], ["compile", "--help"]) == []


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


# Every command of the group; a new command must get a purpose line too (the test below).
COMMANDS = {"run", "compile", "schema", "serve", "predict", "convert", "mobile-predict"}


def _purpose(command) -> str:
    """A command's one-line purpose: the first line of its docstring."""
    return command.help.strip().splitlines()[0]


def test_top_level_help_names_every_command_with_its_whole_purpose():
    assert COMMANDS <= set(main.commands)
    # Width 78 is Click's help width on an 80-column terminal (80 - 2).
    out = CliRunner().invoke(main, ["--help"], terminal_width=78).output
    assert "--version" in out
    commands = out.split("Commands:")[1]
    assert "..." not in commands
    lines = commands.splitlines()
    for name, command in main.commands.items():
        # Each purpose fits on its command's line: nothing cut, nothing wrapped.
        assert any(line.split() == [name, *_purpose(command).split()] for line in lines), (name, out)
    schema_help = CliRunner().invoke(main, ["schema", "--help"], terminal_width=78).output
    assert _purpose(main.commands["schema"].commands["infer"]) in schema_help


def test_narrow_terminals_wrap_purposes_instead_of_cutting_them():
    commands = CliRunner().invoke(main, ["--help"], terminal_width=50).output.split("Commands:")[1]
    assert "..." not in commands
    words = " ".join(commands.split())
    for command in main.commands.values():
        assert " ".join(_purpose(command).split()) in words


def test_version_is_the_installed_distribution_version():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"tfxp {version('tfxp')}\n"


def test_version_and_top_level_help_do_not_import_tensorflow():
    assert _heavy_modules_imported(["--version"], ["--help"], [], ["schema", "--help"]) == []


def test_readme_rows_file_has_every_model_input():
    # README's `tfxp predict ... --rows tfxp/projects/taxi/data/rows.jsonl` example must work as shipped.
    from pathlib import Path

    from tfxp.models import features as F
    from tfxp.serving import client

    root = Path(__file__).resolve().parents[2]
    assert "--rows tfxp/projects/taxi/data/rows.jsonl" in (root / "README.md").read_text(encoding="utf-8")
    rows = client.read_rows(root / "tfxp" / "projects" / "taxi" / "data" / "rows.jsonl")
    assert len(rows) >= 3
    for row in rows:
        assert {f.name for f in F.FEATURES} <= set(row), set(row) ^ {f.name for f in F.FEATURES}
        assert F.TIPS not in row  # serving needs no label
    # Both signatures' encodings accept every value (a bad one raises RowError).
    assert len(client.encode_examples(rows)) == len(rows)
    assert all(len(column) == len(rows) for column in client.raw_columns(rows).values())
