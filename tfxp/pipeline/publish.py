"""Publishing a model version directory atomically (for TF Serving's file-system poller), at most once per model.

Every published version carries a push record, PUSH_RECORD at its root, naming
the model it was copied from by a digest of its artifact URI (`source_id`,
`source_digest`): a folder served as is publishes no build-machine path. A push
that finds its model already published returns that version instead of copying
it again, so a run re-executed after a crash never publishes a duplicate.
`publish_latest` then points LATEST_FILE at the newest complete version, for apps.
"""

from __future__ import annotations

import hashlib
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
# JSON at the root of each version: {"source_id" (source_digest of the model's URI), "version",
# "pushed_at", "files" (relative to the version folder)}. No absolute path: a backend serving the
# folder as is publishes the record too. TF Serving and the TFLite loaders ignore files they don't know.
PUSH_RECORD = "tfxp_push.json"
# Beside the version folders: {"version", "path", "files": {name: {"path", "sha256", "bytes"}}, ...},
# paths relative to the file itself; rewritten whole (atomically) after a version is complete.
LATEST_FILE = "latest.json"
LATEST_FORMAT = 1
_DIGEST_PREFIX = "sha256:"

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


def source_digest(source_id: str) -> str:
    """How a push record names a model: "sha256:<hex>" of its artifact URI (no build-machine path)."""
    return _DIGEST_PREFIX + hashlib.sha256(source_id.encode("utf-8")).hexdigest()


def _names(record: dict, source_id: str) -> bool:
    # Records written before the digest held the URI itself: still recognised, so crash recovery
    # finds versions pushed by an older release.
    return record.get("source_id") in (source_digest(source_id), source_id)


def _push_record(source_id: str | None, version: int, files: list[str]) -> str:
    return json.dumps(
        {
            "source_id": source_digest(source_id) if source_id is not None else None,
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
        if record is not None and _names(record, source_id):
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
            f.write(_push_record(source_id, version, files))
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
                    f.write(_push_record(source_id, version, files))
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


def _read_bytes(path: str) -> bytes:
    if is_uri(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def read_latest(base_dir: str) -> dict | None:
    """The LATEST_FILE pointer of `base_dir`; None if there is none or it can't be read."""
    try:
        pointer = json.loads(_read_bytes(_join(base_dir, LATEST_FILE)))
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001  (a broken pointer is rewritten, never trusted)
        if is_uri(base_dir) and "NotFound" in type(exc).__name__:
            return None
        _log.warning("unreadable %s in %s: %s", LATEST_FILE, base_dir, exc)
        return None
    return pointer if isinstance(pointer, dict) else None


def publish_latest(base_dir: str, version: int, files: list[str], extra: dict | None = None) -> dict | None:
    """Points `<base_dir>/LATEST_FILE` at `<base_dir>/<version>/`, a version already complete.

    `files`: names inside the version folder to list, each with its sha256 and size, read back from
    the published version (so the pointer describes what is there, not what was meant to be). Paths
    are relative to the pointer ("<version>/model.tflite"); `extra` adds keys (model name, spec
    fields). Written atomically: locally beside it then renamed over it; on an object store one
    object write, which readers see whole or not at all. Never moves back: when the pointer already
    names a newer version, nothing is written and None is returned; else the pointer written.
    Raises OSError (or tf.errors.OpError) when a listed file can't be read: no pointer to a half version.
    """
    current = read_latest(base_dir)
    if current is not None and isinstance(current.get("version"), int) and current["version"] > version:
        return None
    listed = {}
    for name in files:
        content = _read_bytes(_join(_join(base_dir, str(version)), name))
        listed[name] = {
            "path": f"{version}/{name}",
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": len(content),
        }
    pointer = {
        "format": LATEST_FORMAT,
        **(extra or {}),
        "version": version,
        "path": f"{version}/",
        "files": listed,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(pointer, indent=2) + "\n"
    target = _join(base_dir, LATEST_FILE)
    if is_uri(base_dir):
        import tensorflow as tf

        with tf.io.gfile.GFile(target, "w") as f:
            f.write(text)
    else:
        tmp = _join(base_dir, f".{LATEST_FILE}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    return pointer
