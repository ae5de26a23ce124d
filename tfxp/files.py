"""Files shared by the pipeline, the model code and the server: version directory names, tree copies.

TF-free at import: `tfxp.models.signatures` (in the Trainer), `tfxp.pipeline.publish` (in the
Pusher) and `tfxp.serving.repository` (in the server) all import it; `copy_tree` loads
TensorFlow only when called, for `tf.io.gfile` (gs:// URIs).
"""

from __future__ import annotations

INT64_MAX = 2**63 - 1
_INT64_MAX_DIGITS = len(str(INT64_MAX))


def parse_version(name: str) -> int | None:
    """The version a base-path child's name stands for, or None if it is not a version.

    As TF Serving's sources/storage_path/file_system_storage_path_source.cc
    (ParseVersionNumber: `strings::safe_strto64`): a decimal int64, leading zeros
    allowed, so "00000123" is version 123 (and is loaded from "00000123/"); names
    beyond int64 are not versions. Only ASCII digits count: `str.isdigit()` also
    accepts e.g. "²", which `int()` rejects. Unlike safe_strto64, a leading "-" or
    surrounding spaces do not make a version here (TF Serving's REST routes take
    digits only, and publishing never writes such names).
    Of several names for one version ("1", "001"), TF Serving loads the last by
    name (IndexChildrenByVersion over its sorted children); the server does the same.
    """
    if not (name.isascii() and name.isdigit()):
        return None
    # Bounded before int(): Python refuses to convert more than 4,300 digits (leading zeros included).
    digits = name.lstrip("0") or "0"
    if len(digits) > _INT64_MAX_DIGITS:
        return None
    version = int(digits)
    return version if version <= INT64_MAX else None


def is_version_name(name: str) -> bool:
    """Whether a directory name is a TF Serving version (see `parse_version`).

    The one rule for the publisher (which versions exist, which number is next) and
    the server (which directories to load), so they never disagree on a name.
    """
    return parse_version(name) is not None


def copy_tree(source: str, target: str) -> None:
    """Recursive copy through tf.io.gfile (local paths and gs:// URIs alike); existing files are overwritten.

    Raises tf.errors.NotFoundError when `source` does not exist.
    """
    import tensorflow as tf

    source = source.rstrip("/")
    if not tf.io.gfile.isdir(source):
        # gfile.walk yields nothing for a missing directory: the copy would "succeed" empty.
        raise tf.errors.NotFoundError(None, None, f"copy_tree: no directory {source}")
    for directory, _, files in tf.io.gfile.walk(source):
        relative = directory[len(source) :].strip("/")
        destination = f"{target.rstrip('/')}/{relative}" if relative else target
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(f"{directory.rstrip('/')}/{name}", f"{destination}/{name}", overwrite=True)
