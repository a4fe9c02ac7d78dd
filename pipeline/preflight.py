"""Pre-flight check of CSV inputs: seconds with the csv module, before a minute of TFX and Beam.

CsvExampleGen reads every file with one header (its first line, split on commas),
infers each column's type from all its values (int, else float, else string), and
fails on ragged rows deep inside Beam. A numeric column with a stray string becomes
a string column, which Transform or TFDV then reject far from the cause. This
check reads the same files the same way and names the file, line, column and
value at fault. TFRecord inputs are not checked here. What the schema says about
values (domains, ranges, unseen categories) is TFDV's job: ExampleValidator and
DataGate.
"""

from __future__ import annotations

import csv
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
    files: tuple[Path, ...]
    # Data rows in all files; None when the format is not checked (TFRecord).
    rows: int | None


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
    # Rows whose number of fields differs from the header's; the value is that number.
    ragged: _Occurrences | None = None
    # Cells that are not numbers in columns that must hold numbers, by column.
    bad_cells: dict[str, _Occurrences] = field(default_factory=dict)


def check_inputs(config: LeanlineConfig, data_path: str) -> CheckedInputs:
    """Checks the CSV file, or directory of CSV files, that ExampleGen will read.

    Raises InputDataError listing every problem found (files, columns, lines, values).
    """
    path = Path(data_path)
    files = input_files(path)
    if config.data.format != "csv":
        return CheckedInputs(files=tuple(files), rows=None)
    if not files:
        raise InputDataError(f"data directory is empty: {path}")
    required = required_columns(config)
    numeric = number_rules(config)
    problems: list[str] = []
    headers: dict[Path, list[str]] = {}
    rows = 0
    for file in files:
        header, scan = _check_file(file, required, numeric, problems)
        if header is not None:
            headers[file] = header
            rows += scan.rows
    problems.extend(_header_mismatches(headers))
    if not problems and rows == 0:
        names = ", ".join(str(f) for f in files)
        problems.append(f"{names}: a header but no data rows")
    if problems:
        raise InputDataError(_failure_message(problems))
    return CheckedInputs(files=tuple(files), rows=rows)


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
            header = _read_header(file, next(lines, ""), required, problems)
            if header is not None:
                checked = {header.index(c): (c, rule) for c, rule in numeric.items() if c in header}
                _scan_rows(lines, len(header), checked, scan)
        except _NotUtf8Error as error:
            problems.append(f"{file}: line {error.line} is not UTF-8 text ({error.reason})")
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
    file: Path, line: str, required: dict[str, str], problems: list[str]
) -> list[str] | None:
    """The column names as ExampleGen reads them: the first line split on commas,
    without CSV quoting rules."""
    if not line.strip():
        problems.append(f"{file}: empty file, no header line")
        return None
    header = line.rstrip("\r\n").split(",")
    if header[0].startswith(_BYTE_ORDER_MARK):
        problems.append(
            f"{file}: starts with a byte-order mark, which ExampleGen reads as part of "
            "the first column's name; save the file as UTF-8 without BOM"
        )
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
            if not rule.accepts(row[index]):
                scan.bad_cells[column] = _noted(scan.bad_cells.get(column), line, row[index])


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
