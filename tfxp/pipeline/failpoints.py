"""Fail points: named places where a test can kill the pipeline as a crash would.

The pattern of etcd's gofail and TiKV's fail-rs, reduced to what crash tests need.
`hit(name)` kills the current process with SIGKILL when the environment variable
TFXP_FAILPOINT equals `name`, and does nothing otherwise (one environment
lookup). SIGKILL runs no `finally`, no `except` and no atexit handler, so what is
left on disk is exactly what a power cut or an OOM kill would leave.

    TFXP_FAILPOINT=publish:renamed tfxp run ...    # exits -9 right after the first rename

Points (all in the push path, all before ML Metadata records the component):

- `publish:staged`: `pipeline.publish.publish_version`, local base path: the
  staging directory is complete (model, added files, push record) but not yet
  renamed. Leaves a `.staging-*` directory and no version.
- `publish:renamed`: `publish_version`, local base path: right after the rename
  published `<version>/`. The version exists, nothing has recorded it.
- `pusher:published`: `AtomicPusher`, after `publish_version` returned, before the
  component returns (and TFX records its output).
- `mobile_pusher:published`: `MobilePusher`, likewise.

Two points raise instead of killing (`raise_at`), for failures the run must report, not survive:

- `mobile_pusher:conversion`: `MobilePusher`, after the serving push, raises
  tfxp.mobile.errors.ConversionError where the conversion starts, as a transform the
  TFLite graph can't reproduce does (e.g. "no (mean, std) reproduces the transform").
- `mobile_pusher:error`: the same place, a RuntimeError: an unexpected failure of the
  component (it fails; its execution is not cached).

Two points are read only by the InfraValidator (tfxp.pipeline.infra_validator.stage) and spoil its
staged copy alone, so the candidate loads in-process but can't be served (the run exits 4, not pushed):

- `infra_validator:corrupt_warmup`: the staged warmup file is garbled.
- `infra_validator:garble_variables`: the staged variables are truncated to 16 bytes.

The `publish:*` points fire on whichever publish reaches them first: in a fresh
run that is the serving push; on a re-run whose serving version already exists
(a crash after its rename) the Pusher copies nothing, so they fire in the mobile
push.
"""

import os
import signal

ENV = "TFXP_FAILPOINT"


def raise_at(name: str, error: Exception) -> None:
    """Raises `error` when TFXP_FAILPOINT is `name`; otherwise returns at once."""
    if os.environ.get(ENV) == name:
        raise error


def hit(name: str) -> None:
    """Kills this process with SIGKILL when TFXP_FAILPOINT is `name`; otherwise returns at once."""
    if os.environ.get(ENV) != name:
        return
    # Descriptor 2 is the run's log file during `tfxp run`: say why the log ends here.
    os.write(2, f"\nfailpoint {name}: SIGKILL pid {os.getpid()}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
