"""`tfxp`: the command line, one module per command group.

`main` is the click group behind the `tfxp` console script and `python -m tfxp.cli`. It imports a
command's module only when that command runs or a help page lists it; every module imports TensorFlow,
TFX and Beam inside its commands, so `tfxp --help` and `tfxp COMMAND --help` never load them.

Adding a command: write it in a module under tfxp/cli/ as a `@click.command` (not `@main.command`: the
modules do not import this package's group), add one line to COMMANDS, and its exit codes to
tfxp/cli/exit_codes.py's EXIT_CODES.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

import click

from tfxp.cli._common import CommandGroup

# Command name -> "module:attribute" of its click command or group. The registration point.
COMMANDS: Mapping[str, str] = MappingProxyType(
    {
        "run": "tfxp.cli.pipeline:run",
        "compile": "tfxp.cli.pipeline:compile_command",
        "schema": "tfxp.cli.pipeline:schema",
        "serve": "tfxp.cli.serving:serve",
        "predict": "tfxp.cli.serving:predict",
        "convert": "tfxp.cli.mobile:convert",
        "mobile-predict": "tfxp.cli.mobile:mobile_predict",
        "init": "tfxp.cli.project:init",
        "monitor": "tfxp.cli.monitoring:monitor",
        "report": "tfxp.cli.report:report",
        "history": "tfxp.cli.history:history",
        "lineage": "tfxp.cli.history:lineage",
        "release": "tfxp.cli.release:release",
    }
)

# setup.py's `name`: --version asks importlib.metadata for it, so the answer is the
# installed version and needs no TensorFlow import.
DISTRIBUTION = "tfxp"


class LazyGroup(CommandGroup):
    """A CommandGroup whose commands are imported from COMMANDS-style "module:attribute" specs on first use."""

    def __init__(self, *args, lazy_commands: Mapping[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.add_command(load_command(cmd_name, self.lazy_commands[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def load_command(name: str, spec: str) -> click.Command:
    """The click command `spec` ("package.module:attribute") registered as `name`.

    Raises ImportError or AttributeError when the spec names nothing, TypeError when it names something
    that is not a click.Command, and ValueError when the command calls itself otherwise (help and usage
    lines would name another command than the one typed).
    """
    module_name, _, attribute = spec.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"tfxp command {name!r}: {spec} is a {type(command).__name__}, not a click.Command")
    if command.name != name:
        raise ValueError(f"tfxp command {name!r}: {spec} is named {command.name!r}")
    return command


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="tfxp", message="%(prog)s %(version)s")
def main() -> None:
    """TFX from a CSV: train, gate and push a model; serve it; ship it to apps.

    `tfxp run` runs the embedded taxi project; `tfxp init --data CSV --label
    COLUMN` starts a project of your own (then `tfxp run --project DIR`).
    `tfxp COMMAND --help` describes a command and its exit codes. README.md
    is the front door; docs/ has a page per topic.
    """
