"""`tfxp release status|pin|canary VERSION|promote|rollback`: labels `stable`/`canary` over a TF Serving
text ModelServerConfig, in TF Serving's safe order (see tfxp.serving.release)."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request

import click

from tfxp.cli.exit_codes import ExitCode, epilog


def _rest_available(server: str, model: str, version: int) -> bool:
    """True when REST GetModelStatus (GET /v1/models/M/versions/V) reports the version AVAILABLE."""
    try:
        url = f"http://{server}/v1/models/{model}/versions/{version}"
        with urllib.request.urlopen(url, timeout=5) as r:
            states = [s.get("state") for s in json.load(r).get("model_version_status", [])]
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return "AVAILABLE" in states


def _run(ctx: click.Context, change, *args) -> None:
    from tfxp.serving import release

    opts = ctx.params
    if not opts["config"]:
        raise click.UsageError("--model-config-file is required")
    try:
        result = change(opts["config"], opts["model"], *args)
        deadline = time.monotonic() + opts["timeout"]
        while not result.done and opts["server"]:
            # Step 1 written: wait until every served version is AVAILABLE, then re-run for step 2.
            if all(_rest_available(opts["server"], result.model, v) for v in result.versions):
                result = change(opts["config"], opts["model"], *args)
                continue
            if time.monotonic() > deadline:
                raise release.ReleaseError(f"versions {result.versions} not AVAILABLE at {opts['server']} in time")
            time.sleep(0.5)
    except release.ReleaseError as e:
        click.echo(f"refused: {e}", err=True)
        ctx.exit(ExitCode.CHECK_FAILED)
    if opts["as_json"]:
        click.echo(json.dumps(dataclasses.asdict(result), sort_keys=True))
    else:
        click.echo(f"{result.model}: labels {result.labels}, serving {result.versions}")
        if not result.done:
            click.echo(
                f"step 1 written; when the server reports {result.versions} AVAILABLE, run the same command again"
            )


def _options(f):
    """The options every subcommand takes (after the subcommand: `tfxp release canary 2 --model-config-file F`)."""
    for option in reversed(
        [
            click.option(
                "--model-config-file",
                "config",
                type=click.Path(dir_okay=False),
                help="TF Serving text ModelServerConfig.",
            ),
            click.option("--model", default=None, help="Model name. Default: the config's only model."),
            click.option("--server", default=None, help="REST HOST:PORT of the server, to wait for step 1 and finish."),
            click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for AVAILABLE."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout."),
        ]
    ):
        f = option(f)
    return click.pass_context(f)


@click.group()
def release() -> None:
    """Canary, promote, roll back a served model."""


@release.command(epilog=epilog("release status"))
@_options
def status(ctx, **_) -> None:
    """Versions on disk, served versions and labels."""
    from tfxp.serving import release as lib

    _run(ctx, lambda c, m: lib.status(c, m))


@release.command(epilog=epilog("release pin"))
@_options
def pin(ctx, **_) -> None:
    """Pin the served versions (specific policy, stable on the newest): a new folder waits for a label."""
    from tfxp.serving import release as lib

    _run(ctx, lambda c, m: lib.pin(c, m))


@release.command(epilog=epilog("release canary"))
@click.argument("version", type=int)
@_options
def canary(ctx, version: int, **_) -> None:
    """Serve stable and VERSION; label canary -> VERSION."""
    from tfxp.serving import release as lib

    _run(ctx, lib.canary, version)


@release.command(epilog=epilog("release promote"))
@_options
def promote(ctx, **_) -> None:
    """stable -> the canary's version; canary removed."""
    from tfxp.serving import release as lib

    _run(ctx, lambda c, m: lib.promote(c, m))


@release.command(epilog=epilog("release rollback"))
@click.option("--to", type=int, default=None, help="Version to roll back to. Default: the one before stable.")
@_options
def rollback(ctx, to, **_) -> None:
    """stable -> the previous version (or --to); canary removed."""
    from tfxp.serving import release as lib

    _run(ctx, lambda c, m: lib.rollback(c, m, to))
