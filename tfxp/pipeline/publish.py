"""Publishing a model version directory atomically (for TF Serving's file-system poller), at most once per model.

Every published version carries a push record, PUSH_RECORD at its root, naming
the model it was copied from (`source_id`, the model artifact URI). A push that
finds its model already published returns that version instead of copying it
again, so a run re-executed after a crash never publishes a duplicate.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable

# One home for the version-name rule (shared with the server) and tree copies (shared with the Trainer).
from tfxp.files import copy_tree, is_version_name
from tfxp.pipeline import failpoints
from tfxp.pipeline.config import is_uri

# TF Serving loads only integer-named children of the base path, so a dot-named
# staging directory is invisible to it while it is being filled.
STAGING_PREFIX = ".staging-"
# On object stores (gs://) there is no atomic directory rename. These files are
# uploaded last: TF Serving cannot load a version before its saved_model.pb
# exists, and apps read model_spec.json first.
COMMIT_FILES = ("saved_model.pb", "model_spec.json")
# JSON at the root of each version: {"source_id", "source", "version", "pushed_at",
# "files"}. TF Serving and the TFLite loaders ignore files they don't know.
PUSH_RECORD = "tfxp_push.json"

_log = logging.getLogger(__name__)
# Staging directories this process is filling: a staging name carrying our own pid
# but not listed here was left by an earlier process that had the same pid (pids
# repeat across containers).
_filling: set[str] = set()


def _listdir(base_dir: str) -> list[str]:
    if is_uri(base_dir):
        import tensorflow as tf

        return [d.rstrip("/") for d in tf.io.gfile.listdir(base_dir)] if tf.io.gfile.isdir(base_dir) else []
    return os.listdir(base_dir) if os.path.isdir(base_dir) else []


def _join(base_dir: str, name: str) -> str:
    return f"{base_dir.rstrip('/')}/{name}" if is_uri(base_dir) else os.path.join(base_dir, name)


def _versions(base_dir: str) -> list[int]:
    return [int(d) for d in _listdir(base_dir) if is_version_name(d)]


def next_version(base_dir: str) -> int:
    """Unix time, like TFX's Pusher, but always above every existing version."""
    return max([int(time.time())] + [v + 1 for v in _versions(base_dir)])


def read_push_record(version_dir: str) -> dict | None:
    """The push record of a version directory; None if it has none or it can't be read."""
    path = _join(version_dir, PUSH_RECORD)
    if is_uri(path):
        import tensorflow as tf

        unreadable: tuple[type[Exception], ...] = (tf.errors.OpError, ValueError)
    else:
        unreadable = (OSError, ValueError)
    try:
        if is_uri(path):
            if not tf.io.gfile.exists(path):
                return None
            with tf.io.gfile.GFile(path) as f:
                record = json.loads(f.read())
        else:
            with open(path) as f:
                record = json.load(f)
    except FileNotFoundError:
        return None
    except unreadable as exc:  # a broken record names no model: treated like a missing one
        _log.warning("unreadable push record %s: %s", path, exc)
        return None
    return record if isinstance(record, dict) else None


def _push_record(source_id: str | None, source: str, version: int, files: list[str]) -> str:
    return json.dumps(
        {
            "source_id": source_id,
            "source": source,
            "version": version,
            "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": sorted(f.replace(os.sep, "/") for f in files),
        },
        indent=2,
    )


def latest_version(base_dir: str) -> int | None:
    """The highest version under `base_dir`: the one TF Serving's default policy (latest 1) serves."""
    return max(_versions(base_dir), default=None)


def find_pushed(base_dir: str, source_id: str, version: int | None = None) -> tuple[int, str] | None:
    """(version, path) of the version whose push record names `source_id`, else None.

    With `version` given only that version is looked at; otherwise the newest
    matching one.
    """
    candidates = [version] if version is not None else sorted(_versions(base_dir), reverse=True)
    for candidate in candidates:
        path = _join(base_dir, str(candidate))
        record = read_push_record(path)
        if record is not None and record.get("source_id") == source_id:
            return candidate, path
    return None


def remove_stale_staging(base_dir: str) -> list[str]:
    """Removes staging directories of processes that are gone; returns their names.

    A staging directory is `.staging-<version>-<pid>`. It is stale when its pid
    is not a live process, or when it is our own pid but this process isn't
    filling it, or when its name can't be parsed. A live process's staging
    directory is never removed (a reused pid keeps one until that process ends).
    """
    removed = []
    for name in _listdir(base_dir):
        path = os.path.join(base_dir, name)
        if name.startswith(STAGING_PREFIX) and _stale(name, path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    if removed:
        _log.info("removed stale staging directories in %s: %s", base_dir, removed)
    return removed


def _stale(name: str, path: str) -> bool:
    if path in _filling:
        return False
    pid_text = name.rsplit("-", 1)[-1]
    if not is_version_name(pid_text):  # the same ASCII-digits rule
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # not in _filling: an earlier process with our pid left it
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by another user
        return False
    return False


def publish_version(
    source: str,
    base_dir: str,
    add_files: Callable[[str], None] = lambda staging: None,
    version: int | None = None,
    source_id: str | None = None,
) -> tuple[int, str]:
    """Copies `source` to `<base_dir>/<version>/` so that it appears complete or not at all.

    The copy, `add_files(staging_dir)` and the push record happen in a staging
    directory beside the final one (same file system), then one rename publishes
    it. On any failure the staging directory is removed and nothing is
    published; staging directories of processes that died are removed first.
    Returns (version, path). `base_dir` may be a gs:// URI; see `_publish_remote`
    for what "atomic" means there.

    `source_id` identifies the model (its artifact URI). If a version whose push
    record has the same `source_id` exists (`<version>/` itself when `version` is
    given), that version is returned and nothing is copied.

    Raises FileExistsError if `version` is given and `<version>/` exists without
    this `source_id` in its record: another model holds that number.
    """
    if is_uri(base_dir) or is_uri(source):
        return _publish_remote(source, base_dir, add_files, version, source_id)
    os.makedirs(base_dir, exist_ok=True)
    remove_stale_staging(base_dir)
    if source_id is not None:
        pushed = find_pushed(base_dir, source_id, version)
        if pushed is not None:
            _log.info("%s is already pushed as %s; not copying it again", source_id, pushed[1])
            return pushed
    version = next_version(base_dir) if version is None else version
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"model version already exists: {final} (its push record does not name this model)")
    staging = os.path.join(base_dir, f"{STAGING_PREFIX}{version}-{os.getpid()}")
    _filling.add(staging)
    try:
        shutil.copytree(source, staging)
        add_files(staging)
        files = [os.path.relpath(os.path.join(d, f), staging) for d, _, names in os.walk(staging) for f in names]
        # Written before the rename, so a version never exists without its record.
        with open(os.path.join(staging, PUSH_RECORD), "w") as f:
            f.write(_push_record(source_id, source, version, files))
        failpoints.hit("publish:staged")
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _filling.discard(staging)
    failpoints.hit("publish:renamed")
    return version, final


def _publish_remote(
    source: str, base_dir: str, add_files: Callable[[str], None], version: int | None, source_id: str | None
) -> tuple[int, str]:
    """Publishing through tf.io.gfile, for object stores without directory renames.

    The version is assembled in a local temporary directory (so `add_files` and
    any failure stay local), then uploaded: the push record first, COMMIT_FILES
    last. A failed upload deletes what it wrote.

    The record goes first because an upload killed half-way can't clean up: it
    claims the version for `source_id`, so the next push of the same model resumes
    it (uploads the files its record lists that are missing; an object store
    writes each object whole) instead of publishing a duplicate or, for a fixed
    `version`, failing on it forever. A version whose listed files all exist is
    complete and is returned as is.
    """
    import tensorflow as tf

    gfile = tf.io.gfile
    gfile.makedirs(base_dir)
    resumed = None
    if source_id is not None:
        resumed = find_pushed(base_dir, source_id, version)
        if resumed is not None:
            record = read_push_record(resumed[1]) or {}
            if all(gfile.exists(f"{resumed[1]}/{rel}") for rel in record.get("files", [])):
                _log.info("%s is already pushed as %s; not copying it again", source_id, resumed[1])
                return resumed
            _log.info("resuming the interrupted push of %s to %s", source_id, resumed[1])
            version = resumed[0]
    version = next_version(base_dir) if version is None else version
    final = f"{base_dir.rstrip('/')}/{version}"
    if resumed is None and gfile.exists(final):
        raise FileExistsError(f"model version already exists: {final} (its push record does not name this model)")
    with tempfile.TemporaryDirectory(prefix="tfxp-publish-") as tmp:
        staging = os.path.join(tmp, str(version))
        copy_tree(source, staging)
        add_files(staging)
        files = [os.path.relpath(os.path.join(d, f), staging) for d, _, names in os.walk(staging) for f in names]
        try:
            if resumed is None:
                gfile.makedirs(final)
                with gfile.GFile(f"{final}/{PUSH_RECORD}", "w") as f:
                    f.write(_push_record(source_id, source, version, files))
            for rel in upload_order(files):
                target = f"{final}/{rel.replace(os.sep, '/')}"
                if resumed is not None and gfile.exists(target):
                    continue
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
