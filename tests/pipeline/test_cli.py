"""The `tfxp` command line: fast help, usage errors, exit codes documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from taxi_data import TAXI, TIPS, taxi_columns, taxi_inputs

from tfxp.cli import COMMANDS as REGISTERED, load_command, main
from tfxp.cli.exit_codes import EXIT_CODES, ExitCode, epilog

ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group = main) -> dict[str, click.Command]:
    """The group's commands by name, loaded as `tfxp --help` loads them (main registers them lazily)."""
    ctx = click.Context(group)
    return {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}


def test_help_lists_commands_and_exit_codes():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for text in (
        "--data",
        "--output",
        "--name",
        "--train-steps",
        "--beam-workers",
        "--beam-arg",
        "--eval-rows",
        "--json",
        "Exit codes",
        "3  bad data",
        "another tfxp run holds --output",
    ):
        assert text in result.output
    compile_help = CliRunner().invoke(main, ["compile", "--help"])
    assert compile_help.exit_code == 0
    for text in ("--target", "--pipeline-root", "--image", "--vertex-training", "--dataflow", "Exit codes"):
        assert text in compile_help.output


def _heavy_modules_imported(*argvs: list[str]) -> list[str]:
    """TF/TFX/Beam/TFMA modules a fresh process has loaded after running `tfxp <argv>` for each argv."""
    code = (
        "import sys; from tfxp.cli import main\n"
        f"for argv in {list(argvs)!r}:\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'apache_beam', 'tensorflow_transform', 'tensorflow_model_analysis'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_help_does_not_import_tensorflow_or_tfx():
    # --help must answer in well under a second: it may not load TF (~12 s, 1 GB).
    assert (
        _heavy_modules_imported(
            ["run", "--help"],
            ["compile", "--help"],
            ["schema", "infer", "--help"],
            ["serve", "--help"],
            ["predict", "--help"],
            ["convert", "--help"],
            ["mobile-predict", "--help"],
        )
        == []
    )


def test_usage_errors_exit_2():
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--train-steps", "0"]).exit_code == 2
    assert runner.invoke(main, ["run", "--beam-workers", "0"]).exit_code == 2
    assert runner.invoke(main, ["run", "--eval-rows", "0"]).exit_code == 2
    assert runner.invoke(main, ["run", "--eval-rows", "some"]).exit_code == 2
    assert runner.invoke(main, ["run", "--data", "/does/not/exist.csv"]).exit_code == 2
    result = runner.invoke(main, ["run", "--name", "../escape"])
    assert result.exit_code == 2 and "--name" in result.output
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "tfxp")
    result = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "run" in result.stdout and "schema" in result.stdout


# Every command of the group; a new command must get a purpose line too (the test below).
COMMANDS = {"init", "run", "compile", "schema", "serve", "predict", "convert", "mobile-predict"}


def _purpose(command) -> str:
    """A command's one-line purpose: the first line of its docstring."""
    return command.help.strip().splitlines()[0]


def test_top_level_help_names_every_command_with_its_whole_purpose():
    assert COMMANDS <= set(_commands())
    # Width 78 is Click's help width on an 80-column terminal (80 - 2).
    out = CliRunner().invoke(main, ["--help"], terminal_width=78).output
    assert "--version" in out
    commands = out.split("Commands:")[1]
    assert "..." not in commands
    lines = commands.splitlines()
    for name, command in _commands().items():
        # Each purpose fits on its command's line: nothing cut, nothing wrapped.
        assert any(line.split() == [name, *_purpose(command).split()] for line in lines), (name, out)
    schema_help = CliRunner().invoke(main, ["schema", "--help"], terminal_width=78).output
    assert _purpose(_commands(_commands()["schema"])["infer"]) in schema_help


def test_narrow_terminals_wrap_purposes_instead_of_cutting_them():
    commands = CliRunner().invoke(main, ["--help"], terminal_width=50).output.split("Commands:")[1]
    assert "..." not in commands
    words = " ".join(commands.split())
    for command in _commands().values():
        assert " ".join(_purpose(command).split()) in words


def test_version_is_the_installed_distribution_version():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"tfxp {version('tfxp')}\n"


def test_version_and_top_level_help_do_not_import_tensorflow():
    assert _heavy_modules_imported(["--version"], ["--help"], [], ["schema", "--help"]) == []


def test_readme_rows_file_has_every_model_input():
    # docs/serving.md's `tfxp predict ... --rows tfxp/projects/taxi/data/rows.jsonl` example must work as shipped.
    from tfxp.serving import client

    assert "--rows tfxp/projects/taxi/data/rows.jsonl" in (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    rows = client.read_rows(ROOT / "tfxp" / "projects" / "taxi" / "data" / "rows.jsonl")
    assert len(rows) >= 3
    for row in rows:
        assert {f.name for f in TAXI.features} <= set(row), set(row) ^ {f.name for f in TAXI.features}
        assert TIPS not in row  # serving needs no label
    # Both signatures' encodings accept every value (a bad one raises RowError).
    assert len(client.encode_examples(rows, taxi_columns())) == len(rows)
    assert all(len(column) == len(rows) for column in client.raw_columns(rows, taxi_inputs()).values())


# -- the package layout: tfxp/cli/, one module per command group ---------------------------------------


@pytest.mark.parametrize("module", ["tfxp.cli", "tfxp.pipeline.cli"])
def test_python_dash_m_runs_the_cli(module):
    # tests and README run `python -m tfxp.pipeline.cli`; the package itself runs as `python -m tfxp.cli`.
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Commands:" in proc.stdout and "mobile-predict" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", module, "no-such-command"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitCode.USAGE and "No such command" in proc.stderr


def test_old_module_is_the_same_group():
    from tfxp.pipeline import cli as old

    assert old.main is main


def test_console_script_points_at_the_package():
    assert '"tfxp=tfxp.cli:main"' in (ROOT / "setup.py").read_text(encoding="utf-8")


def test_commands_are_registered_lazily():
    # `tfxp run --help` loads the pipeline commands' module only; the others are imported when listed or run.
    code = (
        "import sys; from tfxp.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('tfxp.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == str(["tfxp.cli._common", "tfxp.cli.exit_codes", "tfxp.cli.pipeline"])


def test_every_registered_command_loads_under_its_name():
    for name, spec in REGISTERED.items():
        assert load_command(name, spec).name == name


def test_a_bad_registration_is_named():
    with pytest.raises(TypeError, match="'epilog'.*not a click.Command"):
        load_command("epilog", "tfxp.cli.exit_codes:epilog")
    with pytest.raises(ValueError, match="'serve2'.*named 'serve'"):
        load_command("serve2", "tfxp.cli.serving:serve")


# -- exit codes: one table for sys.exit and --help ------------------------------------------------------


def _leaf_commands(group: click.Group = main, prefix: str = "") -> dict[str, click.Command]:
    """Every runnable command by the words typed after `tfxp` ("run", "schema infer")."""
    leaves = {}
    for name, command in _commands(group).items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            leaves.update(_leaf_commands(command, prefix=f"{path} "))
        else:
            leaves[path] = command
    return leaves


def test_every_command_has_exit_codes_and_its_help_shows_the_table():
    leaves = _leaf_commands()
    assert set(leaves) == set(EXIT_CODES)
    for path, codes in EXIT_CODES.items():
        assert {ExitCode.OK, ExitCode.USAGE} <= set(codes), path
        out = CliRunner().invoke(main, [*path.split(), "--help"], terminal_width=78).output
        section = " ".join(out.split("Exit codes:")[1].split())
        # Every code with its whole meaning, in ascending order, and nothing else.
        assert section == " ".join(f"{int(code)} {' '.join(codes[code].split())}" for code in sorted(codes)), path


def test_exit_code_help_fits_80_columns():
    for path in EXIT_CODES:
        text = epilog(path)
        assert text.startswith("\b\nExit codes:\n"), path  # \b: click keeps the lines as written
        assert max(len(line) for line in text.splitlines()) <= 76, path
    with pytest.raises(KeyError, match="'no-such-command'"):
        epilog("no-such-command")


def test_run_exits_with_the_runners_codes():
    # `tfxp run` exits with runner.ExitCode: the table must give each of its values the same meaning.
    from tfxp.pipeline.runner import ExitCode as RunnerExitCode

    assert {code.name: int(code) for code in RunnerExitCode} == {
        "PUSHED": ExitCode.OK,
        "FAILURE": ExitCode.FAILURE,
        "USAGE": ExitCode.USAGE,
        "ANOMALIES": ExitCode.CHECK_FAILED,
        "NOT_BLESSED": ExitCode.NOT_BLESSED,
        "MOBILE_FAILED": ExitCode.MOBILE_FAILED,
    }
    assert {int(code) for code in RunnerExitCode} == {int(code) for code in EXIT_CODES["run"]}


def test_usage_errors_are_clicks_exit_code():
    # Click exits with UsageError.exit_code for bad options and BadParameter: the table's USAGE.
    assert click.UsageError.exit_code == click.BadParameter.exit_code == ExitCode.USAGE


def test_no_exit_code_is_a_bare_number():
    # Every sys.exit in the CLI names an ExitCode, so the code and the help read the same table.
    import ast

    calls = 0
    for path in [*sorted((ROOT / "tfxp" / "cli").glob("*.py")), ROOT / "tfxp" / "pipeline" / "cli.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit", "SystemExit"):
                calls += 1
                numbers = [
                    n
                    for arg in node.args
                    for n in ast.walk(arg)
                    if isinstance(n, ast.Constant) and isinstance(n.value, int)
                ]
                assert node.args and not numbers, f"{path.name}:{node.lineno}: {ast.unparse(node)}"
    assert calls >= 6


@pytest.mark.parametrize(
    ("argv", "eval_rows"), [([], 100_000), (["--eval-rows", "5000"], 5000), (["--eval-rows", "all"], None)]
)
def test_eval_rows_reaches_the_pipeline_config(monkeypatch, argv, eval_rows):
    # The flag's whole job in the CLI is to land in PipelineConfig.eval_rows (the runner splits by it);
    # the runner is stopped before any component runs.
    from tfxp.pipeline import console, runner

    class Stop(Exception):
        pass

    seen = []

    def stop(config, on_event):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(runner, "run", stop)
    monkeypatch.setattr(console, "quiet_libraries", lambda: None)
    result = CliRunner().invoke(main, ["run", *argv])
    assert isinstance(result.exception, Stop), result.output
    assert [config.eval_rows for config in seen] == [eval_rows]


# -- paths in help texts exist ---------------------------------------------------------------------------


def test_schema_infer_help_names_the_schema_file_that_exists():
    """It said "copy the result to schema/schema.pbtxt", a path in no checkout or wheel."""
    import tfxp
    from tfxp.pipeline.config import DEFAULT_SCHEMA

    out = " ".join(CliRunner().invoke(main, ["schema", "infer", "--help"], terminal_width=78).output.split())
    package_root = Path(tfxp.__file__).resolve().parent.parent  # the checkout, or site-packages of a wheel
    paths = [token.rstrip(").,;") for token in out.split() if "/" in token and ".pbtxt" in token]
    assert paths == ["tfxp/projects/taxi/schema.pbtxt"], out
    assert (package_root / paths[0]).resolve() == DEFAULT_SCHEMA.resolve() and DEFAULT_SCHEMA.is_file()


def test_package_paths_in_every_help_text_exist():
    """A `tfxp/...` path in any command's help is a file of the package (not `$XDG_STATE_HOME/tfxp/serve.log`)."""
    import re

    import tfxp

    package_root = Path(tfxp.__file__).resolve().parent.parent
    for path in _leaf_commands():
        out = CliRunner().invoke(main, [*path.split(), "--help"], terminal_width=200).output
        for name in re.findall(r"(?<![\w/.~$-])tfxp/[\w./-]*\w", out):
            assert (package_root / name).exists(), (path, name)
