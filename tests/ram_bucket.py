"""Test-only: TensorFlow's in-memory `ram://` file system as a bucket that both Beam and
TensorFlow read and write in one process: the stand-in for gs:// of tests/kfp_harness.py.

Why: TensorFlow opens `ram://` but Beam refuses it, and the GCS emulator that Beam could
use is invisible to TensorFlow (its GCS client ignores STORAGE_EMULATOR_HOST and calls
the real endpoint). The gaps between ram:// and gs:// are filled here, each the way GCS
behaves, and only for ram:// URIs:

- Beam: `RamFileSystem`, Beam's file system for the `ram` scheme, delegating to
  `tf.io.gfile` (ExampleGen, StatisticsGen, Transform and the Evaluator read and write
  through Beam). Beam finds file systems by subclass: importing this module registers it.
- Listings: ram:// lists by name prefix (`assets/` also lists `.extra` of a sibling
  `assets.extra/`); on GCS a listing holds only what exists.
- Recursive deletes: ram:// deletes everything, then fails on such a phantom entry.
- Directory renames: TensorFlow's GCS client renames a directory object by object
  (tf.Transform publishes its output that way); ram:// leaves the new name empty.

`behave_like_gcs(monkeypatch)` puts the last three in place of TensorFlow's functions.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
from collections.abc import Iterator

import tensorflow as tf
from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)
from tensorflow.python.lib.io import file_io

SCHEME = "ram"
_tf_list_directory = file_io.list_directory_v2
_tf_rmtree = tf.io.gfile.rmtree
_tf_rename = tf.io.gfile.rename


def behave_like_gcs(monkeypatch) -> None:
    """ram:// lists, deletes and renames directories as GCS does, until the test ends."""
    # walk() lists through the module's function, listdir() is the exported one.
    monkeypatch.setattr(file_io, "list_directory_v2", list_directory_like_gcs)
    monkeypatch.setattr(tf.io.gfile, "listdir", list_directory_like_gcs)
    monkeypatch.setattr(tf.io.gfile, "rmtree", rmtree_like_gcs)
    monkeypatch.setattr(tf.io.gfile, "rename", rename_like_gcs)


def _is_ram(path) -> bool:
    return str(path).startswith(f"{SCHEME}://")


def list_directory_like_gcs(path) -> list[str]:
    """tf.io.gfile.listdir without ram://'s entries of prefix siblings."""
    entries = _tf_list_directory(path)
    if not _is_ram(path):
        return entries
    directory = str(path).rstrip("/")
    return [entry for entry in entries if tf.io.gfile.exists(f"{directory}/{entry.rstrip('/')}")]


def rmtree_like_gcs(path) -> None:
    """tf.io.gfile.rmtree, finishing entry by entry where ram:// stopped at a phantom."""
    try:
        _tf_rmtree(path)
        return
    except tf.errors.NotFoundError:
        if not _is_ram(path):
            raise
    directory = str(path).rstrip("/")
    if not tf.io.gfile.exists(directory):
        return
    for entry in list_directory_like_gcs(directory):
        child = f"{directory}/{entry.rstrip('/')}"
        if tf.io.gfile.isdir(child):
            rmtree_like_gcs(child)
        else:
            tf.io.gfile.remove(child)
    # Emptied: what may remain is a directory ram:// holds no entry of, nothing to delete.
    with contextlib.suppress(tf.errors.NotFoundError):
        _tf_rmtree(directory)


def rename_like_gcs(source: str, destination: str, overwrite: bool = False) -> None:
    """tf.io.gfile.rename, but a ram:// directory is renamed file by file, as on GCS."""
    if not (str(source).startswith(f"{SCHEME}://") and tf.io.gfile.isdir(source)):
        _tf_rename(source, destination, overwrite)
        return
    source = str(source).rstrip("/")
    destination = str(destination).rstrip("/")
    for directory, _, files in list(tf.io.gfile.walk(source)):
        target_directory = destination + directory[len(source) :]
        tf.io.gfile.makedirs(target_directory)
        for name in files:
            path = posixpath.join(directory, name)
            if _is_file(path):
                _tf_rename(path, posixpath.join(target_directory, name), overwrite)
    tf.io.gfile.rmtree(source)


class RamFileSystem(FileSystem):
    """ram://... for Beam, through tf.io.gfile (test-only)."""

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        return posixpath.join(basepath, *paths)

    def split(self, path: str) -> tuple[str, str]:
        return posixpath.split(path.rstrip("/"))

    def mkdirs(self, path: str) -> None:
        if tf.io.gfile.exists(path):
            raise BeamIOError("Directory already exists", {path: FileExistsError(path)})
        tf.io.gfile.makedirs(path)

    def has_dirs(self) -> bool:
        return True

    def _list(self, dir_or_prefix: str) -> Iterator[FileMetadata]:
        if tf.io.gfile.isdir(dir_or_prefix):
            roots = [dir_or_prefix]
        else:
            roots = tf.io.gfile.glob(dir_or_prefix + "*")
        for root in roots:
            if not tf.io.gfile.isdir(root):
                yield self.metadata(root)
                continue
            for directory, _, files in tf.io.gfile.walk(root):
                for name in files:
                    path = posixpath.join(directory, name)
                    if _is_file(path):
                        yield self.metadata(path)

    def create(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ):
        return _compressed(_WrittenOnClose(path), path, compression_type)

    def open(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ):
        return _compressed(tf.io.gfile.GFile(path, "rb"), path, compression_type)

    def copy(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            tf.io.gfile.copy(source, destination, overwrite=True)

    def rename(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        for source, destination in zip(source_file_names, destination_file_names, strict=True):
            tf.io.gfile.makedirs(posixpath.dirname(destination))
            _tf_rename(source, destination, True)

    def exists(self, path: str) -> bool:
        return tf.io.gfile.exists(path)

    def size(self, path: str) -> int:
        return tf.io.gfile.stat(path).length

    def last_updated(self, path: str) -> float:
        return tf.io.gfile.stat(path).mtime_nsec / 1e9

    def checksum(self, path: str) -> str:
        return str(self.size(path))

    def metadata(self, path: str) -> FileMetadata:
        stat = tf.io.gfile.stat(path)
        return FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)

    def delete(self, paths: list[str]) -> None:
        missing = {path: FileNotFoundError(path) for path in paths if not self.exists(path)}
        if missing:
            raise BeamIOError("Delete operation failed", missing)
        for path in paths:
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)


class _WrittenOnClose(io.BytesIO):
    """A file written whole on close, as an object store uploads it: TensorFlow's
    ram:// files cannot tell their position, which Beam's compressed writer asks."""

    mode = "wb"  # what Beam's CompressedFile reads to know it writes

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def close(self) -> None:
        if not self.closed:
            tf.io.gfile.makedirs(posixpath.dirname(self.path))
            with tf.io.gfile.GFile(self.path, "wb") as handle:
                handle.write(self.getvalue())
        super().close()


def _is_file(path: str) -> bool:
    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)


def _compressed(handle, path: str, compression_type: str):
    compression_type = FileSystem._get_compression_type(path, compression_type)
    if compression_type == CompressionTypes.UNCOMPRESSED:
        return handle
    return CompressedFile(handle, compression_type=compression_type)
