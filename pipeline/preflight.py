"""Pre-flight check of CSV inputs: seconds with the csv module, before a minute of TFX and Beam.

CsvExampleGen parses rows with CSV quoting, infers each column's type from all its
values (int, else float, else string), and fails on ragged rows deep inside Beam. A
numeric column with a stray string becomes a string column, which Transform or TFDV
then reject far from the cause. This check reads the files as the csv module does with
its default dialect (quoted fields, CRLF line ends) and names the file, line, column
and value at fault. ExampleGen reads the header differently, as the first line split
on commas: a quoted header (what many exporters write) or a byte-order mark would give
it column names with quotes in them. `example_gen_path` hands it copies with a plain
header line then. TFRecord inputs are not checked here. What the schema says about
values (domains, ranges, unseen categories) is TFDV's job: ExampleValidator and
DataGate.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.config import LeanlineConfig
from pipeline.errors import UserError

# Known binary formats by their first bytes, to say what a non-CSV file is.
_MAGIC_NUMBERS = {
    b"\x1f\x8b": "gzip-compressed data",
    b"\x89PNG": "a PNG image",
    b"PK\x03\x04": "a zip archive",
    b"PAR1": "a Parquet file",
}
_SNIFF_BYTES = 8192
_BYTE_ORDER_MARK = "\ufeff"
# A failure message lists at most this many problems.
MAX_PROBLEMS = 20


class InputDataError(UserError):
    """The input files cannot be read as the configured CSV data."""


@dataclass(frozen=True)
class NumberRule:
    """A column that must hold numbers (integers when `integer`), and who says so."""

    integer: bool
    source: str

    def accepts(self, cell: str) -> bool:
        """Like ExampleGen's type inference: empty is missing, else int() or float() parses."""
        if not cell:
            return True
        try:
            int(cell) if self.integer else float(cell)
        except ValueError:
            return False
        return True

    @property
    def expected(self) -> str:
        return "integers" if self.integer else "numbers"


@dataclass(frozen=True)
class CheckedInputs:
    # What was checked: a file or a directory, and the files read.
    path: Path
    files: tuple[Path, ...]
    # Data rows in all files; None when the format is not checked (TFRecord).
    rows: int | None
    # Files whose first line ExampleGen would misread (quoted names, a byte-order mark),
    # with the column names the csv module reads there.
    plain_headers: dict[Path, list[str]] = field(default_factory=dict)
    # What the run should know but that stops nothing (non-finite numbers read as missing).
    notes: tuple[str, ...] = ()


@dataclass
class _Occurrences:
    """One kind of problem in one file: where it first shows (line, value) and how often."""

    first_line: int
    first_value: str
    count: int = 1


def _noted(seen: _Occurrences | None, line: int, value: str) -> _Occurrences:
    if seen is None:
        return _Occurrences(line, value)
    seen.count += 1
    return seen


@dataclass
class _FileScan:
    rows: int = 0
    # The header line is not what splitting it on commas gives (quotes, a byte-order mark).
    needs_plain_header: bool = False
    # Rows whose number of fields differs from the header's; the value is that number.
    ragged: _Occurrences | None = None
    # Cells that are not numbers in columns that must hold numbers, by column.
    bad_cells: dict[str, _Occurrences] = field(default_factory=dict)
    # Numbers that are not finite (nan, inf), by column: Transform reads them as missing.
    non_finite: dict[str, _Occurrences] = field(default_factory=dict)


def check_inputs(config: LeanlineConfig, data_path: str) -> CheckedInputs:
    """Checks the CSV file, or directory of CSV files, that ExampleGen will read.

    Raises InputDataError listing every problem found (files, columns, lines, values).
    """
    path = Path(data_path)
    files = input_files(path)
    if config.data.format != "csv":
        return CheckedInputs(path=path, files=tuple(files), rows=None)
    if not files:
        raise InputDataError(f"data directory is empty: {path}")
    required = required_columns(config)
    numeric = number_rules(config)
    problems: list[str] = []
    headers: dict[Path, list[str]] = {}
    plain_headers: dict[Path, list[str]] = {}
    notes: list[str] = []
    rows = 0
    for file in files:
        header, scan = _check_file(file, required, numeric, problems)
        if header is not None:
            headers[file] = header
            rows += scan.rows
            if scan.needs_plain_header:
                plain_headers[file] = header
            notes += [
                f"{file}: column {column!r} holds {_count(seen.count, 'value')} that "
                f"{'is' if seen.count == 1 else 'are'} not finite (first: line "
                f"{seen.first_line}, {seen.first_value!r}), read as missing"
                for column, seen in scan.non_finite.items()
            ]
    problems.extend(_header_mismatches(headers))
    if not problems and rows == 0:
        names = ", ".join(str(f) for f in files)
        problems.append(f"{names}: a header but no data rows")
    if problems:
        raise InputDataError(_failure_message(problems))
    return CheckedInputs(
        path=path,
        files=tuple(files),
        rows=rows,
        plain_headers=plain_headers,
        notes=tuple(notes),
    )


PLAIN_HEADER_DIR = "plain-header-csv"


def example_gen_path(checked: CheckedInputs, work_dir: Path) -> str:
    """The path ExampleGen reads: the checked one, or, when a file's header needs CSV
    quoting rules, copies under `work_dir` with the header as a plain comma-separated
    line and every other byte as it was.

    A copy keeps its source's modification time and is written again only when the
    source changes, so ExampleGen's input fingerprint, and its cache, hold across runs.
    """
    if not checked.plain_headers:
        return str(checked.path)
    copies = work_dir / PLAIN_HEADER_DIR
    copies.mkdir(parents=True, exist_ok=True)
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
        with file.open("rb") as reader, partial.open("wb") as writer:
            first_line = reader.readline()
            header = checked.plain_headers.get(file)
            if header is None:
                writer.write(first_line)
            else:
                ending = b"\r\n" if first_line.endswith(b"\r\n") else b"\n"
                writer.write(",".join(header).encode("utf-8") + ending)
            shutil.copyfileobj(reader, writer)
        os.utime(partial, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
        os.replace(partial, target)
    return str(copies if checked.path.is_dir() else copies / checked.path.name)


def input_files(path: Path) -> list[Path]:
    """The files ExampleGen reads: the file itself, or the visible files of a directory."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def required_columns(config: LeanlineConfig) -> dict[str, str]:
    """Every column the model reads, with the config key that asks for it."""
    model = config.model
    features = model.features
    required = {column: "model.features.numeric" for column in features.numeric}
    required |= {column: "model.features.bucketized" for column in features.bucketized}
    required |= {column: "model.features.categorical" for column in features.categorical}
    required |= {column: "model.features.categorical_int" for column in features.categorical_int}
    for column in _family_columns(config):
        required.setdefault(column, f"model.family {model.family}")
    required[model.label.column] = "model.label.column"
    return required


def number_rules(config: LeanlineConfig) -> dict[str, NumberRule]:
    """The columns that must hold numbers: the config's numeric feature kinds, the
    family's numeric columns, and INT/FLOAT features of a curated schema (which wins,
    being what TFDV checks the data against)."""
    features = config.model.features
    rules = {c: NumberRule(False, "model.features.numeric") for c in features.numeric}
    rules |= {c: NumberRule(False, "model.features.bucketized") for c in features.bucketized}
    rules |= {
        c: NumberRule(True, "model.features.categorical_int") for c in features.categorical_int
    }
    for column in _family_columns(config):
        rules.setdefault(column, NumberRule(False, f"model.family {config.model.family}"))
    if config.data.schema_path:
        rules |= _schema_number_rules(Path(config.resolve(config.data.schema_path)))
    return rules


def _family_columns(config: LeanlineConfig) -> list[str]:
    """Numeric columns a model family reads besides `model.features`."""
    family = config.model.family
    if family == "taxi":  # the label "big tipper" compares tips with the fare
        from models.taxi.features import FARE_COLUMN

        return [FARE_COLUMN, config.model.label.column]
    if family == "digits":  # imports TensorFlow, which a digits run loads anyway
        from models.digits.features import PIXEL_COLUMNS

        return list(PIXEL_COLUMNS)
    return []


def _schema_number_rules(schema_file: Path) -> dict[str, NumberRule]:
    schema = text_format.Parse(schema_file.read_text(), schema_pb2.Schema())
    kinds = {schema_pb2.INT: True, schema_pb2.FLOAT: False}
    return {
        feature.name: NumberRule(
            kinds[feature.type], f"{schema_pb2.FeatureType.Name(feature.type)} in {schema_file}"
        )
        for feature in schema.feature
        if feature.type in kinds
    }


def _check_file(
    file: Path,
    required: dict[str, str],
    numeric: dict[str, NumberRule],
    problems: list[str],
) -> tuple[list[str] | None, _FileScan]:
    """Appends the file's problems; returns its header (None when unreadable) and scan."""
    scan = _FileScan()
    not_text = _binary_content(file)
    if not_text:
        problems.append(f"{file}: not a CSV text file ({not_text})")
        return None, scan
    with file.open("rb") as handle:
        lines = _text_lines(handle)
        try:
            header = _read_header(file, next(lines, ""), required, problems, scan)
            if header is not None:
                checked = {header.index(c): (c, rule) for c, rule in numeric.items() if c in header}
                _scan_rows(lines, len(header), checked, scan)
        except _NotUtf8Error as error:
            problems.append(
                f"{file}: line {error.line} is not UTF-8 text ({error.reason}); save the "
                "file as UTF-8 (spreadsheets: CSV UTF-8), or convert it, e.g. with iconv"
            )
            return None, scan
    if header is None:
        return None, scan
    if scan.ragged:
        problems.append(
            f"{file}: line {scan.ragged.first_line} has {scan.ragged.first_value} fields, "
            f"the header {len(header)} ({_count(scan.ragged.count, 'line')} like this)"
        )
    for column, bad in scan.bad_cells.items():
        rule = numeric[column]
        problems.append(
            f"{file}: column {column!r} must hold {rule.expected} ({rule.source}): line "
            f"{bad.first_line} has {bad.first_value!r} ({_count(bad.count, 'row')} like this)"
        )
    return header, scan


class _NotUtf8Error(Exception):
    def __init__(self, line: int, error: UnicodeDecodeError):
        super().__init__(line, error)
        self.line = line
        self.reason = f"byte {error.object[error.start]:#04x} at position {error.start + 1}"


def _text_lines(handle: BinaryIO) -> Iterator[str]:
    """The file's lines as UTF-8 text, as ExampleGen decodes them; numbered from 1."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _NotUtf8Error(number, error) from None


def _binary_content(file: Path) -> str | None:
    """What the file is when it is clearly not text, judged from its first bytes."""
    with file.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    for magic, kind in _MAGIC_NUMBERS.items():
        if head.startswith(magic):
            return f"it holds {kind}"
    if b"\x00" in head:
        return "it holds binary data (NUL bytes)"
    return None


def _read_header(
    file: Path, line: str, required: dict[str, str], problems: list[str], scan: _FileScan
) -> list[str] | None:
    """The column names as the csv module reads the first line: quoted names unquoted,
    a leading byte-order mark dropped. Notes in `scan` when ExampleGen, which splits the
    line on commas, would read other names."""
    if not line.strip():
        problems.append(f"{file}: empty file, no header line")
        return None
    text = line.rstrip("\r\n")
    header = next(csv.reader([text.removeprefix(_BYTE_ORDER_MARK)]), [])
    scan.needs_plain_header = header != text.split(",")
    unusable = [name for name in header if not name.strip() or any(c in name for c in ',"\r\n')]
    if unusable:
        problems.append(
            f"{file}: column names {unusable!r} are empty or hold a comma, quote or line "
            "break, which a feature name cannot; rename those columns"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        problems.append(f"{file}: column names {repeated!r} appear more than once; rename them")
    missing = [column for column in required if column not in header]
    if missing:
        described = ", ".join(f"{column!r} ({required[column]})" for column in missing)
        problems.append(
            f"{file}: missing column{'s' if len(missing) > 1 else ''} {described}; "
            f"its header is: {', '.join(header)}"
        )
    return header


def _scan_rows(
    lines: Iterator[str],
    width: int,
    checked: dict[int, tuple[str, NumberRule]],
    scan: _FileScan,
) -> None:
    """Reads the rows after the header line into `scan`."""
    reader = csv.reader(lines)
    for row in reader:
        line = reader.line_num + 1  # the header is line 1; a quoted field may span lines
        if not row:  # ExampleGen skips blank lines
            continue
        scan.rows += 1
        if len(row) != width:
            scan.ragged = _noted(scan.ragged, line, str(len(row)))
            continue
        for index, (column, rule) in checked.items():
            cell = row[index]
            if not rule.accepts(cell):
                scan.bad_cells[column] = _noted(scan.bad_cells.get(column), line, cell)
            elif cell and not math.isfinite(float(cell)):
                scan.non_finite[column] = _noted(scan.non_finite.get(column), line, cell)


def _header_mismatches(headers: dict[Path, list[str]]) -> list[str]:
    """ExampleGen needs one header for all files of a directory."""
    if not headers:
        return []
    (first, header), *others = headers.items()
    return [
        f"{file}: its header differs from {first}'s; every file needs the same columns in the same order"
        for file, other in others
        if other != header
    ]


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _failure_message(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    listing = "\n  ".join(shown + ([f"... and {more} more problems"] if more else []))
    return (
        "the input data cannot be used; nothing ran and nothing was pushed:\n"
        f"  {listing}\n"
        "Fix the files (or the columns in the config) and run again."
    )
