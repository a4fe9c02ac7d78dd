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
  SavedModel yet (TF Serving and TFX's own pusher rely on this), then the
  completion marker `PUBLISHED_MARKER`, and a failed upload is deleted. A pusher
  that is killed cannot delete: its numbered directory stays, without the marker.
  So leanline's readers (`existing_versions`: the serving configs and pins,
  `leanline versions`, the report, `check-servable`, the next version number)
  count a remote version only with its marker, and the next publish removes such
  orphans (`remove_orphans`). TF Serving itself cannot read the marker: it aspires
  every numeric directory, and fails to load one without `saved_model.pb`, keeping
  the version it serves. Version numbers are milliseconds, so concurrent pushers
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

from models.errors import UserError

LOCK_FILE = ".push.lock"
STAGING_PREFIX = ".tmp-"
# Uploaded last but one to an object store: until it exists, the version is no SavedModel.
SAVED_MODEL_FILE = "saved_model.pb"
# Uploaded last to an object store: only a version holding it is complete.
PUBLISHED_MARKER = ".leanline-published"
# How long an incomplete remote version may be an upload still under way (its number
# is the time its push chose it): older ones are orphans of killed pushers.
ORPHAN_AGE_MS = 60 * 60 * 1000

# Fills a local staging directory with one version's files; raising aborts the push.
Populate = Callable[[Path], None]


def is_remote(base_dir: str | Path) -> bool:
    """gs://... and other URIs that TensorFlow's file system opens, not local paths."""
    return "://" in str(base_dir)


def existing_versions(base_dir: str | Path) -> list[int]:
    """The published version numbers under `base_dir`, ascending (none when it is
    missing). A remote version counts only once its upload wrote PUBLISHED_MARKER."""
    if is_remote(base_dir):
        complete, _ = _remote_versions(str(base_dir))
        return complete
    if not Path(base_dir).is_dir():
        return []
    return sorted(int(entry.name) for entry in Path(base_dir).iterdir() if entry.name.isdigit())


def _remote_versions(base_uri: str) -> tuple[list[int], list[int]]:
    """The numbered directories under a remote `base_uri`, ascending: those with
    PUBLISHED_MARKER, and those without (uploads under way, or orphans)."""
    import tensorflow as tf  # only object stores need TensorFlow's file system

    if not tf.io.gfile.isdir(base_uri):
        return [], []
    numbers = sorted(
        {
            int(name.rstrip("/"))
            for name in tf.io.gfile.listdir(base_uri)
            if name.rstrip("/").isdigit()
        }
    )
    complete = [
        n for n in numbers if tf.io.gfile.exists(f"{_version_uri(base_uri, n)}/{PUBLISHED_MARKER}")
    ]
    return complete, [n for n in numbers if n not in complete]


def _version_uri(base: str | Path, version: int) -> str:
    return f"{str(base).rstrip('/')}/{version}"


def remove_orphans(base_uri: str, now_ms: int) -> list[int]:
    """Removes the incomplete versions under a remote `base_uri` that a killed pusher
    left; returns their numbers. An incomplete version is an orphan when its number is
    more than ORPHAN_AGE_MS before `now_ms` (a younger one may be another pusher's
    upload under way; one numbered past the clock, after far-future versions, waits for
    the clock) and above the lowest complete version: versions published before leanline
    wrote markers are all below it, and stay. Buckets have no lock, so another pusher
    may be removing the same orphan: one already gone is no error."""
    import tensorflow as tf  # only object stores need TensorFlow's file system

    complete, incomplete = _remote_versions(base_uri)
    orphans = [n for n in incomplete if complete and complete[0] < n < now_ms - ORPHAN_AGE_MS]
    for version in orphans:
        with contextlib.suppress(tf.errors.NotFoundError):
            tf.io.gfile.rmtree(_version_uri(base_uri, version))
    return orphans


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
        for base in populators:
            if is_remote(base):
                remove_orphans(str(base), time.time_ns() // 1_000_000)
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
        _upload(staging, _version_uri(base, version))
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
    if (staging / PUBLISHED_MARKER).exists():
        raise UserError(
            f"the staged version holds a file named {PUBLISHED_MARKER}, the completion marker "
            "of a remote publish, which would mark it complete before its last file: remove "
            "it from the model artifact"
        )
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    # saved_model.pb goes last: until it exists, the version is not a SavedModel.
    files.sort(key=lambda p: p.relative_to(staging) == Path(SAVED_MODEL_FILE))
    try:
        for path in files:
            destination = f"{target}/{path.relative_to(staging).as_posix()}"
            tf.io.gfile.makedirs(destination.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), destination)
        # Last: a reader that finds it finds every file above.
        with tf.io.gfile.GFile(f"{target}/{PUBLISHED_MARKER}", "w") as marker:
            marker.write(f"{len(files)} files\n")
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


def _taken_versions(base_dir: str | Path) -> list[int]:
    """Every version number in use under `base_dir`: the published ones and, on an object
    store, the incomplete uploads too, so that a new version never lands in one (an upload
    refuses an existing directory)."""
    if not is_remote(base_dir):
        return existing_versions(base_dir)
    complete, incomplete = _remote_versions(str(base_dir))
    return complete + incomplete


def _next_version(base_dirs: list[str | Path]) -> int:
    highest = max((v for base in base_dirs for v in _taken_versions(base)), default=0)
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
