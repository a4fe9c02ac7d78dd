"""The copies of the input that ExampleGen reads where the checked files would mislead
it (pipeline.inputs.checks says which and how: `CheckedInputs`): a plain header line,
cells rewritten. The one place that writes under the output's data directory; written
once per source change, so ExampleGen's cache holds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pipeline.inputs.checks import CheckedInputs, class_id, integer_text, is_missing_marker
from pipeline.layout import PLAIN_HEADER_DIR


def example_gen_path(checked: CheckedInputs, work_dir: Path) -> str:
    """The path ExampleGen reads: the checked one, or, when a file's header needs CSV
    quoting rules or a column holds cells to rewrite (`CheckedInputs.rewrites`), copies
    under `work_dir`: a plain comma-separated header line, those cells rewritten, every
    other byte of a file without such cells as it was.

    A copy keeps its source's modification time and is written again only when the
    source changes, so ExampleGen's input fingerprint, and its cache, hold across runs.
    Copies that rewrite other columns, or rewrite them otherwise (the config changed),
    go to another directory, so neither this check nor ExampleGen's cache takes one for
    the other.
    """
    if not checked.plain_headers and not checked.rewrites:
        return str(checked.path)
    copies = _copies_dir(work_dir, checked.rewrites)
    names = {file.name for file in checked.files}
    for stale in copies.iterdir():  # a file since removed from the input directory
        if stale.name not in names:
            stale.unlink()
    for file in checked.files:
        target = copies / file.name
        source_stat = file.stat()
        if target.exists() and target.stat().st_mtime_ns == source_stat.st_mtime_ns:
            continue
        partial = target.with_name(f".{target.name}.partial")
        if file in checked.rewrites:
            _copy_rewriting_cells(file, partial, checked.rewrites[file])
        else:
            _copy_with_plain_header(file, partial, checked.plain_headers.get(file))
        os.utime(partial, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
        os.replace(partial, target)
    return str(copies if checked.path.is_dir() else copies / checked.path.name)


def _copies_dir(work_dir: Path, rewrites: dict[Path, dict[str, str]]) -> Path:
    """The directory of copies whose cells are rewritten so, in these columns; copies
    for other columns are removed."""
    root = work_dir / PLAIN_HEADER_DIR
    if rewrites:
        rewritten = sorted(
            (file.name, sorted(columns.items())) for file, columns in rewrites.items()
        )
        digest = hashlib.sha256(json.dumps(rewritten).encode()).hexdigest()[:12]
        copies = root / f"cells-rewritten-{digest}"
    else:
        copies = root / "rows-unchanged"
    copies.mkdir(parents=True, exist_ok=True)
    for other in root.iterdir():  # copies for other columns, or of an older leanline
        if other != copies:
            shutil.rmtree(other) if other.is_dir() else other.unlink()
    return copies


def _copy_with_plain_header(file: Path, target: Path, header: list[str] | None) -> None:
    """The file's bytes, the first line replaced by `header` joined with commas."""
    with file.open("rb") as reader, target.open("wb") as writer:
        first_line = reader.readline()
        if header is None:
            writer.write(first_line)
        else:
            ending = b"\r\n" if first_line.endswith(b"\r\n") else b"\n"
            writer.write(",".join(header).encode("utf-8") + ending)
        shutil.copyfileobj(reader, writer)


def _emptied_marker(cell: str) -> str:
    return "" if is_missing_marker(cell) else cell


def _plain_integer(cell: str) -> str:
    return "" if is_missing_marker(cell) else integer_text(cell) or cell


# How the copy rewrites a cell, by what its column holds. The names enter the copies'
# directory digest: a column rewritten otherwise is another copy.
_CELL_REWRITES: dict[str, Callable[[str], str]] = {
    "markers emptied": _emptied_marker,
    "integers": _plain_integer,
    "class ids": class_id,
}


def _copy_rewriting_cells(file: Path, target: Path, rewrites: dict[str, str]) -> None:
    """The file's rows as the csv module reads them, the cells of the `rewrites` columns
    rewritten as `_CELL_REWRITES` says, under a plain header."""
    with (
        file.open(encoding="utf-8-sig", newline="") as source,
        target.open("w", encoding="utf-8", newline="") as copy,
    ):
        rows = csv.reader(source)
        header = next(rows)
        rewritten = [
            (header.index(column), _CELL_REWRITES[how]) for column, how in rewrites.items()
        ]
        copy.write(",".join(header) + "\n")
        writer = csv.writer(copy, lineterminator="\n")
        for row in rows:
            if not row:  # a blank line, which ExampleGen skips
                continue
            for index, rewrite in rewritten:
                row[index] = rewrite(row[index])
            writer.writerow(row)
