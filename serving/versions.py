"""Publishing numbered model versions the way TF Serving expects to find them.

TF Serving watches a model's base directory and serves the highest numeric
subdirectory; names that are not numbers are ignored. A version is always built
and checked in a local staging directory first, then published:

- On a local (POSIX) filesystem the staging directory is a hidden sibling of the
  versions (`.tmp-<version>-<pid>`). It is flushed to disk and renamed into place:
  the rename is atomic, so the server never sees half a model. An exclusive
  `fcntl` lock on a file in the base directory serializes pushers, so numbers are
  chosen and published by one pusher at a time and only grow.
- Object stores (`gs://...`) have neither rename nor locks. The staged files are
  uploaded with `saved_model.pb` last, because a version without it is not a
  SavedModel yet (TF Serving and TFX's own pusher rely on this), and a failed
  upload is deleted. Version numbers are milliseconds, so concurrent pushers
  collide only if they publish in the same millisecond.

Existing versions are never written to.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

LOCK_FILE = ".push.lock"
STAGING_PREFIX = ".tmp-"
# Uploaded last to an object store: its presence marks the version complete.
SAVED_MODEL_FILE = "saved_model.pb"

# Fills a local staging directory with one version's files; raising aborts the push.
Populate = Callable[[Path], None]


def is_remote(base_dir: str | Path) -> bool:
    """gs://... and other URIs that TensorFlow's file system opens, not local paths."""
    return "://" in str(base_dir)


def existing_versions(base_dir: str | Path) -> list[int]:
    """The published version numbers under `base_dir`, ascending (none when it is missing)."""
    if is_remote(base_dir):
        import tensorflow as tf  # only object stores need TensorFlow's file system

        if not tf.io.gfile.isdir(str(base_dir)):
            return []
        names = [name.rstrip("/") for name in tf.io.gfile.listdir(str(base_dir))]
    else:
        if not Path(base_dir).is_dir():
            return []
        names = [entry.name for entry in Path(base_dir).iterdir()]
    return sorted(int(name) for name in names if name.isdigit())


def latest_version_dir(base_dir: Path) -> Path | None:
    """The local version directory TF Serving would serve: the highest number."""
    versions = existing_versions(base_dir)
    return base_dir / str(versions[-1]) if versions else None


def publish_version(populators: Mapping[str | Path, Populate]) -> int:
    """Publishes one new version under each base directory; returns its number.

    Every base directory gets the same number, higher than any version already in
    any of them: time in milliseconds, or the highest existing number plus one.
    All versions are staged and populated before the first one is published, and
    they are published in the mapping's order, so put the directory a server
    watches last. On any error the staged files are removed and nothing more is
    published.
    """
    local_dirs = [Path(base) for base in populators if not is_remote(base)]
    for base_dir in local_dirs:
        base_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # A fixed locking order keeps two pushers of overlapping directories deadlock-free.
        for base_dir in sorted(local_dirs):
            stack.enter_context(_exclusive_lock(base_dir))
            _remove_stale_staging(base_dir)
        version = _next_version(list(populators))
        staged = {base: _staging_dir(base, version, stack) for base in populators}
        try:
            for base, staging in staged.items():
                populators[base](staging)
            for base, staging in staged.items():
                _publish(staging, base, version)
        except BaseException:
            for base, staging in staged.items():
                if not is_remote(base):  # remote staging is a TemporaryDirectory
                    shutil.rmtree(staging, ignore_errors=True)
            raise
    return version


def _staging_dir(base: str | Path, version: int, stack: contextlib.ExitStack) -> Path:
    if is_remote(base):
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=STAGING_PREFIX)))
    staging = Path(base) / f"{STAGING_PREFIX}{version}-{os.getpid()}"
    staging.mkdir()
    return staging


def _publish(staging: Path, base: str | Path, version: int) -> None:
    if is_remote(base):
        _upload(staging, f"{str(base).rstrip('/')}/{version}")
        return
    final = Path(base) / str(version)
    if final.exists():
        raise FileExistsError(f"version directory {final} appeared during the push")
    _fsync_tree(staging)
    os.rename(staging, final)
    _fsync_path(Path(base))


def _upload(staging: Path, target: str) -> None:
    import tensorflow as tf  # only object stores need TensorFlow's file system

    if tf.io.gfile.exists(target):
        raise FileExistsError(f"version directory {target} appeared during the push")
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    # saved_model.pb goes last: until it exists, the version is not a SavedModel.
    files.sort(key=lambda p: p.relative_to(staging) == Path(SAVED_MODEL_FILE))
    try:
        for path in files:
            destination = f"{target}/{path.relative_to(staging).as_posix()}"
            tf.io.gfile.makedirs(destination.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), destination)
    except BaseException:
        if tf.io.gfile.exists(target):
            tf.io.gfile.rmtree(target)
        raise


@contextlib.contextmanager
def _exclusive_lock(base_dir: Path) -> Iterator[None]:
    with open(base_dir / LOCK_FILE, "a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _remove_stale_staging(base_dir: Path) -> None:
    """Leftovers of pushers that were killed; safe to delete because we hold the lock."""
    for entry in base_dir.iterdir():
        if entry.name.startswith(STAGING_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)


def _next_version(base_dirs: list[str | Path]) -> int:
    highest = max((v for base in base_dirs for v in existing_versions(base)), default=0)
    return max(time.time_ns() // 1_000_000, highest + 1)


def _fsync_tree(root: Path) -> None:
    """Flushes every file, then every directory bottom-up, so a crash after the rename
    cannot leave a published version with missing or empty files."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(Path(directory) / name)
        _fsync_path(Path(directory))


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
