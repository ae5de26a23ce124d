"""Publishing a model version directory atomically (for TF Serving's file-system poller)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Callable

from pipeline.config import is_uri

# TF Serving loads only integer-named children of the base path, so a dot-named
# staging directory is invisible to it while it is being filled.
STAGING_PREFIX = ".staging-"
# On object stores (gs://) there is no atomic directory rename. These files are
# uploaded last: TF Serving cannot load a version before its saved_model.pb
# exists, and apps read model_spec.json first.
COMMIT_FILES = ("saved_model.pb", "model_spec.json")


def _listdir(base_dir: str) -> list[str]:
    if is_uri(base_dir):
        import tensorflow as tf

        return [d.rstrip("/") for d in tf.io.gfile.listdir(base_dir)] if tf.io.gfile.isdir(base_dir) else []
    return os.listdir(base_dir) if os.path.isdir(base_dir) else []


def next_version(base_dir: str) -> int:
    """Unix time, like TFX's Pusher, but always above every existing version."""
    existing = [int(d) for d in _listdir(base_dir) if d.isdigit()]
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
    `base_dir` may be a gs:// URI; see `_publish_remote` for what "atomic" means there.
    """
    if is_uri(base_dir) or is_uri(source):
        return _publish_remote(source, base_dir, add_files, version)
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


def _publish_remote(
    source: str, base_dir: str, add_files: Callable[[str], None], version: int | None
) -> tuple[int, str]:
    """Publishing through tf.io.gfile, for object stores without directory renames.

    The version is assembled in a local temporary directory (so `add_files` and
    any failure stay local), then uploaded with COMMIT_FILES last. A failed
    upload deletes what it wrote.
    """
    import tensorflow as tf

    gfile = tf.io.gfile
    gfile.makedirs(base_dir)
    version = next_version(base_dir) if version is None else version
    final = f"{base_dir.rstrip('/')}/{version}"
    if gfile.exists(final):
        raise FileExistsError(f"model version already exists: {final}")
    with tempfile.TemporaryDirectory(prefix="tfxp-publish-") as tmp:
        staging = os.path.join(tmp, str(version))
        copy_tree(source, staging)
        add_files(staging)
        files = [os.path.relpath(os.path.join(d, f), staging) for d, _, names in os.walk(staging) for f in names]
        try:
            for rel in upload_order(files):
                target = f"{final}/{rel.replace(os.sep, '/')}"
                gfile.makedirs(target.rsplit("/", 1)[0])
                gfile.copy(os.path.join(staging, rel), target, overwrite=False)
        except BaseException:
            if gfile.exists(final):
                gfile.rmtree(final)
            raise
    return version, final


def upload_order(files: list[str]) -> list[str]:
    """Relative paths in upload order: COMMIT_FILES last."""
    return sorted(files, key=lambda rel: (os.path.basename(rel) in COMMIT_FILES, rel))


def copy_tree(source: str, target: str) -> None:
    """Recursive copy through tf.io.gfile (local paths and gs:// URIs alike)."""
    import tensorflow as tf

    source = source.rstrip("/")
    for directory, _, files in tf.io.gfile.walk(source):
        relative = directory[len(source):].strip("/")
        destination = f"{target.rstrip('/')}/{relative}" if relative else target
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(f"{directory.rstrip('/')}/{name}", f"{destination}/{name}", overwrite=True)
