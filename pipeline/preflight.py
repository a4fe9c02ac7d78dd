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

What spreadsheet and database exports write besides plain numbers:

- Missing-value markers (`MISSING_VALUE_MARKERS`: "NA", "NULL", "#N/A", ...) in a
  column that must hold numbers are read as missing: the copy ExampleGen reads has
  those cells empty, and `CheckedInputs.notes` counts them per column. In any other
  column they are values ("NA" may be North America).
- A column that needs a value in every row (`value_rules`: the label of the tabular,
  digits and text families, `value_count.min` of a curated schema) is refused where a cell
  is empty or such a marker, rather than stopping the run at Transform or the DataGate.
- Semicolon-, tab- or bar-separated files are refused, naming the delimiter and how to
  convert. They are not converted here: a semicolon export writes decimal commas
  ("3,14"), and which commas are decimal marks is the exporter's knowledge, not ours.
- Numbers as a spreadsheet displays them ("1,234.5", "$12", "12%") and formula errors
  ("#DIV/0!") are refused like any string in a numeric column, with what to change.
- UTF-16 (Excel's "Unicode Text") and non-UTF-8 text are refused with the command that
  converts them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shlex
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
# Byte-order marks of UTF-16, little and big endian: Excel's "Unicode Text" starts so.
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SNIFF_BYTES = 8192
_BYTE_ORDER_MARK = "\ufeff"
# A failure message lists at most this many problems.
MAX_PROBLEMS = 20

# What exports write for a missing number, compared upper-cased with surrounding spaces
# ignored: pandas' default NA strings that float() does not parse (it reads "nan"),
# R's NA, SQL's NULL and the \N of MySQL and PostgreSQL dumps, Python's None, and the
# placeholders people type. Read as missing only in columns that must hold numbers.
MISSING_VALUE_MARKERS = frozenset(
    {"NA", "N/A", "#N/A", "#N/A N/A", "#NA", "<NA>", "NULL", "\\N", "NONE", "-", "?", "."}
)
# Delimiters of exports that are not comma-separated, with their names in messages.
_OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
# What spreadsheets add to a number they export as displayed ("$1,234.50", "12 %",
# "1 234,5" with no-break spaces, the Swiss "1'234").
_NUMBER_DISPLAY_CHARACTERS = str.maketrans("", "", ",$€£¥%' \u00a0\u202f")
# Excel's formula errors: #DIV/0!, #VALUE!, #REF!, #NAME?, #NUM!, #NULL!, #SPILL!.
_FORMULA_ERROR = re.compile(r"#[A-Z0/]+[!?]")
# Families whose preprocessing_fn stops on a row without a label
# (models.tabular.preprocessing.present); taxi derives its label from tips and fare.
_FAMILIES_NEEDING_A_LABEL = ("tabular", "digits", "text")


class InputDataError(UserError):
    """The input files cannot be read as the configured CSV data."""


def _is_missing_marker(cell: str) -> bool:
    """Whether the cell is one of MISSING_VALUE_MARKERS."""
    return cell.strip().upper() in MISSING_VALUE_MARKERS


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
    # Files with missing-value markers in columns that must hold numbers, with those
    # columns: ExampleGen's copy has these cells empty.
    missing_markers: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    # What the run should know but that stops nothing (non-finite numbers and
    # missing-value markers read as missing).
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


@dataclass(frozen=True)
class _Columns:
    """The columns of one file's header that its rows are checked for, by index."""

    width: int
    # Columns that must hold numbers, with their rule.
    numbers: dict[int, tuple[str, NumberRule]]
    # Columns that need a value in every row (`value_rules`).
    needing_values: dict[int, str]


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
    # Missing-value markers in columns that must hold numbers, by column.
    markers: dict[str, _Occurrences] = field(default_factory=dict)
    # Cells with no value (empty, or a marker in a number column) in columns that need
    # one in every row, by column.
    no_value: dict[str, _Occurrences] = field(default_factory=dict)


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
    needing_values = value_rules(config)
    problems: list[str] = []
    headers: dict[Path, list[str]] = {}
    plain_headers: dict[Path, list[str]] = {}
    missing_markers: dict[Path, tuple[str, ...]] = {}
    notes: list[str] = []
    rows = 0
    for file in files:
        header, scan = _check_file(file, required, numeric, needing_values, problems)
        if header is not None:
            headers[file] = header
            rows += scan.rows
            if scan.needs_plain_header:
                plain_headers[file] = header
            if scan.markers:
                missing_markers[file] = tuple(scan.markers)
            notes += _read_as_missing_notes(file, scan)
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
        missing_markers=missing_markers,
        notes=tuple(notes),
    )


def _read_as_missing_notes(file: Path, scan: _FileScan) -> list[str]:
    non_finite = [
        f"{file}: column {column!r} holds {_count(seen.count, 'value')} that "
        f"{'is' if seen.count == 1 else 'are'} not finite (first: line "
        f"{seen.first_line}, {seen.first_value!r}), read as missing"
        for column, seen in scan.non_finite.items()
    ]
    markers = [
        f"{file}: column {column!r} holds {_count(seen.count, 'missing-value marker')} "
        f"(first: line {seen.first_line}, {seen.first_value!r}), read as missing"
        for column, seen in scan.markers.items()
    ]
    return non_finite + markers


PLAIN_HEADER_DIR = "plain-header-csv"


def example_gen_path(checked: CheckedInputs, work_dir: Path) -> str:
    """The path ExampleGen reads: the checked one, or, when a file's header needs CSV
    quoting rules or a column holds missing-value markers, copies under `work_dir`:
    a plain comma-separated header line, the markers' cells empty, every other byte
    of a file without markers as it was.

    A copy keeps its source's modification time and is written again only when the
    source changes, so ExampleGen's input fingerprint, and its cache, hold across runs.
    Copies that empty markers in other columns (the config changed) go to another
    directory, so neither this check nor ExampleGen's cache takes one for the other.
    """
    if not checked.plain_headers and not checked.missing_markers:
        return str(checked.path)
    copies = _copies_dir(work_dir, checked.missing_markers)
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
        if file in checked.missing_markers:
            _copy_emptying_markers(file, partial, checked.missing_markers[file])
        else:
            _copy_with_plain_header(file, partial, checked.plain_headers.get(file))
        os.utime(partial, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
        os.replace(partial, target)
    return str(copies if checked.path.is_dir() else copies / checked.path.name)


def _copies_dir(work_dir: Path, missing_markers: dict[Path, tuple[str, ...]]) -> Path:
    """The directory of copies whose markers are emptied in these columns; copies for
    other columns are removed."""
    root = work_dir / PLAIN_HEADER_DIR
    if missing_markers:
        emptied = sorted((file.name, sorted(columns)) for file, columns in missing_markers.items())
        digest = hashlib.sha256(json.dumps(emptied).encode()).hexdigest()[:12]
        copies = root / f"markers-emptied-{digest}"
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


def _copy_emptying_markers(file: Path, target: Path, columns: tuple[str, ...]) -> None:
    """The file's rows as the csv module reads them, missing-value markers in `columns`
    emptied, under a plain header."""
    with (
        file.open(encoding="utf-8-sig", newline="") as source,
        target.open("w", encoding="utf-8", newline="") as copy,
    ):
        rows = csv.reader(source)
        header = next(rows)
        emptied = [header.index(column) for column in columns]
        copy.write(",".join(header) + "\n")
        writer = csv.writer(copy, lineterminator="\n")
        for row in rows:
            if not row:  # a blank line, which ExampleGen skips
                continue
            for index in emptied:
                if _is_missing_marker(row[index]):
                    row[index] = ""
            writer.writerow(row)


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
    required |= {column: "model.features.text" for column in features.text}
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
    if config.model.is_regression:
        rules[config.model.label.column] = NumberRule(False, "model.task regression")
    if config.data.schema_path:
        rules |= _schema_number_rules(Path(config.resolve(config.data.schema_path)))
    return rules


def value_rules(config: LeanlineConfig) -> dict[str, str]:
    """The columns that need a value in every row, and who says so: the label where the
    family's preprocessing needs one, and features to which a curated schema gives
    `value_count.min` of 1 or more (an empty cell is a feature with no values, which
    TFDV counts against value_count, not presence)."""
    rules = {}
    if config.model.family in _FAMILIES_NEEDING_A_LABEL:
        rules[config.model.label.column] = f"model.label.column of family {config.model.family}"
    if config.data.schema_path:
        schema_file = Path(config.resolve(config.data.schema_path))
        rules |= {
            feature.name: f"value_count.min {feature.value_count.min} in {schema_file}"
            for feature in _schema(schema_file).feature
            if feature.value_count.min >= 1
        }
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


def _schema(schema_file: Path) -> schema_pb2.Schema:
    return text_format.Parse(schema_file.read_text(), schema_pb2.Schema())


def _schema_number_rules(schema_file: Path) -> dict[str, NumberRule]:
    schema = _schema(schema_file)
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
    needing_values: dict[str, str],
    problems: list[str],
) -> tuple[list[str] | None, _FileScan]:
    """Appends the file's problems; returns its header (None when unreadable) and scan."""
    scan = _FileScan()
    not_utf8 = _not_utf8_text(file)
    if not_utf8:
        problems.append(f"{file}: {not_utf8}")
        return None, scan
    with file.open("rb") as handle:
        lines = _text_lines(handle)
        try:
            header = _read_header(file, next(lines, ""), required, problems, scan)
            if header is not None:
                _scan_rows(lines, _columns_of(header, numeric, needing_values), scan)
        except _NotUtf8Error as error:
            problems.append(
                f"{file}: line {error.line} is not UTF-8 text ({error.reason}); "
                + _utf8_advice(file, "CP1252")
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
            f"{bad.first_line} has {bad.first_value!r} ({_count(bad.count, 'row')} like "
            f"this){_not_a_number_advice(bad.first_value, rule)}"
        )
    for column, empty in scan.no_value.items():
        problems.append(
            f"{file}: column {column!r} needs a value in every row ({needing_values[column]}): "
            f"line {empty.first_line} has {empty.first_value!r} ({_count(empty.count, 'row')} "
            "like this); fill those in or delete the rows"
        )
    return header, scan


def _columns_of(
    header: list[str], numeric: dict[str, NumberRule], needing_values: dict[str, str]
) -> _Columns:
    return _Columns(
        width=len(header),
        numbers={header.index(c): (c, rule) for c, rule in numeric.items() if c in header},
        needing_values={header.index(c): c for c in needing_values if c in header},
    )


def _not_a_number_advice(value: str, rule: NumberRule) -> str:
    """What to change when `value` is what a spreadsheet shows instead of a number."""
    if _FORMULA_ERROR.fullmatch(value.strip()):
        return "; a spreadsheet formula error: fix the formula, or leave the cell empty"
    plain = value.translate(_NUMBER_DISPLAY_CHARACTERS)
    if plain and plain != value and rule.accepts(plain):
        return (
            "; a number as a spreadsheet displays it: export the column as plain numbers "
            "(no thousands separators, currency or percent signs; '.' as the decimal mark)"
        )
    return ""


def _utf8_advice(file: Path, encoding: str) -> str:
    """How to make `file`, text in `encoding`, UTF-8 in place."""
    path = shlex.quote(str(file))
    return (
        "save it as 'CSV UTF-8 (Comma delimited)', or convert it in place, e.g. "
        f"iconv -f {encoding} -t UTF-8 {path} > {path}.tmp && mv {path}.tmp {path}"
    )


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


def _not_utf8_text(file: Path) -> str | None:
    """What is wrong when the file's first bytes show it is not UTF-8 text."""
    with file.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(_UTF16_BOMS):
        advice = _utf8_advice(file, "UTF-16")
        return f"UTF-16 text (Excel's 'Unicode Text' writes it, tab-separated), not UTF-8; {advice}"
    for magic, kind in _MAGIC_NUMBERS.items():
        if head.startswith(magic):
            return f"not a CSV text file (it holds {kind})"
    if b"\x00" in head:
        return "not a CSV text file (it holds binary data (NUL bytes))"
    return None


def _read_header(
    file: Path, line: str, required: dict[str, str], problems: list[str], scan: _FileScan
) -> list[str] | None:
    """The column names as the csv module reads the first line: quoted names unquoted,
    a leading byte-order mark dropped. Notes in `scan` when ExampleGen, which splits the
    line on commas, would read other names. None when the file has no usable header."""
    if not line.strip():
        problems.append(f"{file}: empty file, no header line")
        return None
    text = line.rstrip("\r\n")
    header = next(csv.reader([text.removeprefix(_BYTE_ORDER_MARK)]), [])
    delimiter = _other_delimiter(header)
    if delimiter:
        problems.append(f"{file}: {_delimiter_advice(delimiter)}")
        return None
    scan.needs_plain_header = header != text.split(",")
    unnamed = [str(position) for position, name in enumerate(header, start=1) if not name.strip()]
    if unnamed:
        problems.append(
            f"{file}: line 1, the header, has no name for column{'s' if len(unnamed) > 1 else ''} "
            f"{', '.join(unnamed)} (what spreadsheets export for empty columns right of a table); "
            "delete those columns or name them"
        )
    unusable = [name for name in header if name.strip() and any(c in name for c in ',"\r\n')]
    if unusable:
        problems.append(
            f"{file}: column names {unusable!r} are empty or hold a comma, quote or line "
            "break, which a feature name cannot; rename those columns"
        )
    repeated = sorted({name for name in header if name.strip() and header.count(name) > 1})
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


def _other_delimiter(header: list[str]) -> str | None:
    """The delimiter other than a comma in a header of one field. No valid file has such
    a header: every model reads a label and at least one feature."""
    if len(header) != 1:
        return None
    return next((d for d in _OTHER_DELIMITERS if d in header[0]), None)


def _delimiter_advice(delimiter: str) -> str:
    # A semicolon export is what Excel writes where the decimal mark is a comma.
    decimal = ", decimal=','" if delimiter == ";" else ""
    return (
        f"line 1, the header, has its fields separated by {_OTHER_DELIMITERS[delimiter]} "
        f"({delimiter!r}), and ExampleGen reads comma-separated files only; save it as "
        "'CSV UTF-8 (Comma delimited)' with '.' as the decimal mark, or convert it, e.g. "
        f"pandas.read_csv(OLD, sep={delimiter!r}{decimal}).to_csv(NEW, index=False)"
    )


def _scan_rows(lines: Iterator[str], columns: _Columns, scan: _FileScan) -> None:
    """Reads the rows after the header line into `scan`."""
    reader = csv.reader(lines)
    for row in reader:
        line = reader.line_num + 1  # the header is line 1; a quoted field may span lines
        if not row:  # ExampleGen skips blank lines
            continue
        scan.rows += 1
        if len(row) != columns.width:
            scan.ragged = _noted(scan.ragged, line, str(len(row)))
            continue
        for index, (column, rule) in columns.numbers.items():
            cell = row[index]
            if rule.accepts(cell):
                if cell and not math.isfinite(float(cell)):
                    scan.non_finite[column] = _noted(scan.non_finite.get(column), line, cell)
            elif _is_missing_marker(cell):
                scan.markers[column] = _noted(scan.markers.get(column), line, cell)
            else:
                scan.bad_cells[column] = _noted(scan.bad_cells.get(column), line, cell)
        for index, column in columns.needing_values.items():
            cell = row[index]
            # ExampleGen's copy has no value there: the cell is empty, or a marker it empties.
            if not cell or (index in columns.numbers and _is_missing_marker(cell)):
                scan.no_value[column] = _noted(scan.no_value.get(column), line, cell)


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
