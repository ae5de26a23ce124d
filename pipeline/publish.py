"""Publishing a model version directory atomically (for TF Serving's file-system poller)."""
from __future__ import annotations

import os
import shutil
import time
from typing import Callable

# TF Serving loads only integer-named children of the base path, so a dot-named
# staging directory is invisible to it while it is being filled.
STAGING_PREFIX = ".staging-"


def next_version(base_dir: str) -> int:
    """Unix time, like TFX's Pusher, but always above every existing version."""
    existing = [int(d) for d in os.listdir(base_dir) if d.isdigit()] if os.path.isdir(base_dir) else []
    return max([int(time.time())] + [v + 1 for v in existing])


def publish_version(
    source: str,
    base_dir: str,
    add_files: Callable[[str], None] = lambda staging: None,
    version: int | None = None,
) -> tuple[int, str]:
    """Copies `source` to `<base_dir>/<version>/` so that it appears complete or not at all.

    The copy and `add_files(staging_dir)` happen in a staging directory beside the
    final one (same file system), then one rename publishes it. On any failure the
    staging directory is removed and nothing is published. Returns (version, path).
    """
    os.makedirs(base_dir, exist_ok=True)
    version = next_version(base_dir) if version is None else version
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"model version already exists: {final}")
    staging = os.path.join(base_dir, f"{STAGING_PREFIX}{version}-{os.getpid()}")
    try:
        shutil.copytree(source, staging)
        add_files(staging)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version, final
