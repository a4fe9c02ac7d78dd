"""Pre-flight check of CSV inputs: seconds with the csv module, before a minute of TFX and Beam.

Pure: it reads the inputs and writes nothing; the copies it asks for (`CheckedInputs`)
are pipeline.inputs.copies'.

CsvExampleGen parses rows with CSV quoting, infers each column's type from all its
values (int, else float, else string), and fails on ragged rows deep inside Beam. A
numeric column with a stray string becomes a string column, which Transform or TFDV
then reject far from the cause. This check reads the files as the csv module does with
its default dialect (quoted fields, CRLF line ends) and names the file, line, column
and value at fault. ExampleGen reads the header differently, as the first line split
on commas: a quoted header (what many exporters write) or a byte-order mark would give
it column names with quotes in them. pipeline.inputs.copies.example_gen_path hands it
copies with a plain header line then. TFRecord inputs are not checked here. What the schema says about
values (domains, ranges, unseen categories) is TFDV's job: ExampleValidator and
DataGate.

What spreadsheet and database exports write besides plain numbers:

- Missing-value markers (`MISSING_VALUE_MARKERS`: "NA", "NULL", "#N/A", ...) in a
  column that must hold numbers are read as missing: the copy ExampleGen reads has
  those cells empty, and `CheckedInputs.notes` counts them per column. In any other
  column they are values ("NA" may be North America).
- Integers written as floats ("2.0": pandas writes an integer column with gaps so) in
  a column that must hold integers are integers: the copy has them as "2", since
  ExampleGen would type the column FLOAT, against a curated INT or the int64 ids
  Transform makes. A classifier's label whose values are all numbers or spreadsheet
  booleans (TRUE, FALSE, any case) holds class ids: the copy has integers there, a
  boolean as the number spreadsheets take it for (FALSE 0, TRUE 1), not a class name
  whose id would depend on the other names. A label with any other value holds class
  names, kept as written.
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
import decimal
import math
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models.errors import UserError
from models.taxi.features import FARE_COLUMN
from pipeline.config import LeanlineConfig

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
# A classifier's label with more distinct values than this holds no set of classes (an
# id or a measurement column, more likely): pre-flight stops collecting them and says so.
MAX_LABEL_VALUES = 10_000
# Values not among model.label.classes named per file in a failure message.
_UNKNOWN_LABEL_VALUES_SHOWN = 10

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
# (models.tabular.preprocessing.present), and which read a classifier's label as class
# ids (models.tabular.preprocessing.class_ids); taxi derives its label from tips and fare.
_FAMILIES_NEEDING_A_LABEL = ("tabular", "digits", "text")
# ExampleGen types a column INT when every value is an integer in this range.
_INT64_RANGE = range(-(2**63), 2**63)
# Spreadsheet booleans (Excel writes TRUE and FALSE, pandas True and False), compared
# upper-cased with surrounding spaces ignored, as the numbers spreadsheets take them for.
_BOOLEAN_NUMBERS = {"FALSE": "0", "TRUE": "1"}


class InputDataError(UserError):
    """The input files cannot be read as the configured CSV data."""


def is_missing_marker(cell: str) -> bool:
    """Whether the cell is one of MISSING_VALUE_MARKERS."""
    return cell.strip().upper() in MISSING_VALUE_MARKERS


def integer_text(cell: str) -> str | None:
    """The integer a number cell writes, in plain digits ("2.0", "2.00", "2e3": "2", "2",
    "2000"); None when it writes a number that is no integer in ExampleGen's INT range,
    or no number. Read as a decimal, not a float, so that no digit is rounded."""
    try:
        number = decimal.Decimal(cell)
    except decimal.InvalidOperation:
        return None
    # adjusted() is the exponent of the leading digit: larger ones are outside int64,
    # and int() of 1e999999999 would take minutes.
    if not number.is_finite() or number.adjusted() > 18 or number != number.to_integral_value():
        return None
    integer = int(number)
    return str(integer) if integer in _INT64_RANGE else None


def class_id(cell: str) -> str:
    """A cell of a label holding class ids as the copy holds it: a boolean as its number,
    an integer written as a float as an integer."""
    return _BOOLEAN_NUMBERS.get(cell.strip().upper()) or integer_text(cell) or cell


@dataclass(frozen=True)
class NumberRule:
    """A column that must hold numbers (integers when `integer`), and who says so."""

    integer: bool
    source: str

    def plain(self, cell: str) -> str | None:
        """The cell as the copy ExampleGen reads holds it: itself (empty is missing), or
        for integers the integer a float writes ("2.0" -> "2"); None when it is not a
        number of this kind. Like ExampleGen's type inference: int() or float() parses."""
        if not cell:
            return cell
        try:
            int(cell) if self.integer else float(cell)
        except ValueError:
            return integer_text(cell) if self.integer else None
        return cell

    def accepts(self, cell: str) -> bool:
        return self.plain(cell) is not None

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
    # Files whose copy ExampleGen reads has cells rewritten, with those columns and how
    # (`_CELL_REWRITES`): missing-value markers emptied, integers written as floats and
    # a classifier's booleans written as integers.
    rewrites: dict[Path, dict[str, str]] = field(default_factory=dict)
    # What the run should know but that stops nothing (non-finite numbers and
    # missing-value markers read as missing, cells read as integers).
    notes: tuple[str, ...] = ()
    # A classifier's label values in all files (`classes_label`); None when the family
    # reads no label values or the format is not checked.
    label_values: LabelValues | None = None


@dataclass(frozen=True)
class LabelValues:
    """The distinct values of a classifier's label column in all files, as ExampleGen
    reads them, with their rows: pipeline.classes takes the class list from them."""

    column: str
    # Class names (strings, as written) where ExampleGen reads strings (`_label_values`);
    # else class ids (booleans and integers written as floats as the copy holds them).
    names: bool
    rows: dict[str | int, int]


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
    # A classifier's label that may hold class ids (`class_id_label`).
    label: int | None
    # A classifier's label whose values are collected (`classes_label`).
    label_values: int | None = None


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
    # Integers written as floats ("2.0") in columns that must hold integers, by column;
    # the label's once every file shows that it holds class ids.
    integral_floats: dict[str, _Occurrences] = field(default_factory=dict)
    # Booleans in the label, once every file shows that it holds class ids.
    booleans: dict[str, _Occurrences] = field(default_factory=dict)
    # The label's cells other than plain integers, by `_label_cell_kind`.
    label_cells: dict[str, _Occurrences] = field(default_factory=dict)
    # A classifier's label values as written (`classes_label`), up to MAX_LABEL_VALUES;
    # `too_many_label_values` when the file holds more.
    label_values: dict[str, _Occurrences] = field(default_factory=dict)
    too_many_label_values: bool = False
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
    label = class_id_label(config, numeric)
    classes_column = classes_label(config)
    problems: list[str] = []
    headers: dict[Path, list[str]] = {}
    scans: dict[Path, _FileScan] = {}
    for file in files:
        header, scan = _check_file(
            file, required, numeric, needing_values, label, classes_column, problems
        )
        if header is not None:
            headers[file], scans[file] = header, scan
    problems.extend(_header_mismatches(headers))
    if label is not None:
        _settle_label_cells(label, scans, problems)
    label_values = None
    if classes_column is not None:
        label_values = _label_values(config, classes_column, label is not None, scans, problems)
    rows = sum(scan.rows for scan in scans.values())
    if not problems and rows == 0:
        names = ", ".join(str(f) for f in files)
        problems.append(f"{names}: a header but no data rows")
    if problems:
        raise InputDataError(_failure_message(problems))
    rewrites = {file: _rewrites(scan, numeric, label) for file, scan in scans.items()}
    return CheckedInputs(
        path=path,
        files=tuple(files),
        rows=rows,
        plain_headers={
            file: headers[file] for file, scan in scans.items() if scan.needs_plain_header
        },
        rewrites={file: columns for file, columns in rewrites.items() if columns},
        notes=tuple(note for file, scan in scans.items() for note in _notes(file, scan)),
        label_values=label_values,
    )


def classes_label(config: LeanlineConfig) -> str | None:
    """The label column whose values pre-flight collects: a classifier's, where the
    family reads its values as class names or ids (`models.tabular.preprocessing.class_ids`)."""
    if config.model.is_regression or config.model.family not in _FAMILIES_NEEDING_A_LABEL:
        return None
    return config.model.label.column


def _label_values(
    config: LeanlineConfig,
    column: str,
    holds_ids: bool,
    scans: dict[Path, _FileScan],
    problems: list[str],
) -> LabelValues | None:
    """The label's values in all files, read as ExampleGen types the column: names when
    any value is no number, or a boolean where the label does not hold class ids (the
    copy then keeps it as written: `holds_ids` is for `class_id_label`). Appends a
    problem for too many values, and for each file with values that
    `model.label.classes` does not list."""
    if any(scan.too_many_label_values for scan in scans.values()):
        problems.append(
            f"column {column!r} (model.label.column of a classifier) holds more than "
            f"{MAX_LABEL_VALUES} distinct values, too many to be classes: is it the column to "
            "predict? (A number to predict is model.task: regression.)"
        )
        return None
    written: dict[str, int] = {}
    for scan in scans.values():
        for value, seen in scan.label_values.items():
            written[value] = written.get(value, 0) + seen.count
    name_kinds = {_NAME} if holds_ids else {_NAME, _BOOLEAN}
    names = any(_label_cell_kind(value) in name_kinds for value in written)
    classes = config.model.label.classes
    if classes is not None:
        for file, scan in scans.items():
            values = scan.label_values.items()
            unknown = [seen for value, seen in values if not _is_class(value, names, classes)]
            if unknown:
                problems.append(_unknown_labels_problem(file, column, names, classes, unknown))
    rows: dict[str | int, int] = {}
    for value, count in written.items():
        key = value if names else _class_id_number(value)
        if key is not None:
            rows[key] = rows.get(key, 0) + count
    return LabelValues(column, names, rows)


def _class_id_number(cell: str) -> int | None:
    """The class id a label cell holds as the copy holds it; None for a number that is
    no integer (refused as such, `_settle_label_cells`)."""
    text = class_id(cell)
    return int(text) if text.lstrip("-").isdigit() else None


def _is_class(value: str, names: bool, classes: list[str]) -> bool:
    """Whether a label value is among `classes`: a name listed, or an id below their count."""
    if names:
        return value in classes
    number = _class_id_number(value)
    return number is None or 0 <= number < len(classes)


def _unknown_labels_problem(
    file: Path, column: str, names: bool, classes: list[str], unknown: list[_Occurrences]
) -> str:
    unknown = sorted(unknown, key=lambda seen: seen.first_line)
    shown = ", ".join(
        f"{seen.first_value!r} ({_count(seen.count, 'row')}, first line {seen.first_line})"
        for seen in unknown[:_UNKNOWN_LABEL_VALUES_SHOWN]
    )
    more = len(unknown) - _UNKNOWN_LABEL_VALUES_SHOWN
    shown += f" and {more} more values" if more > 0 else ""
    if names:
        return (
            f"{file}: column {column!r} holds values that model.label.classes {classes} does "
            f"not list: {shown}; add them to the list, or fix or delete those rows"
        )
    return (
        f"{file}: column {column!r} holds class ids outside [0, {len(classes)}), the ids "
        f"model.label.classes {classes} names in order: {shown}; fix or delete those rows"
    )


def _settle_label_cells(label: str, scans: dict[Path, _FileScan], problems: list[str]) -> None:
    """What the label holds, once every file is read (ExampleGen types a column by all
    its values): class names, kept as written, when any cell is neither a number nor a
    boolean; else class ids, so a number that is no integer is a problem, and the copy
    rewrites integers written as floats and booleans (each scan's integral_floats and
    booleans)."""
    if any(_NAME in scan.label_cells for scan in scans.values()):
        return
    for file, scan in scans.items():
        cells = scan.label_cells
        if _MARKER in cells:
            marker = cells[_MARKER]
            problems.append(
                f"{file}: column {label!r} needs a value in every row (a classifier's label "
                f"of class ids): line {marker.first_line} has {marker.first_value!r} "
                f"({_count(marker.count, 'row')} like this); fill those in or delete the rows"
            )
        if _FRACTION in cells:
            problems.append(_not_numbers_problem(file, label, _CLASS_ID_RULE, cells[_FRACTION]))
        if _INTEGRAL in cells:
            scan.integral_floats[label] = cells[_INTEGRAL]
        if _BOOLEAN in cells:
            scan.booleans[label] = cells[_BOOLEAN]


def _rewrites(scan: _FileScan, numeric: dict[str, NumberRule], label: str | None) -> dict[str, str]:
    """How the copy rewrites each column of the file that holds cells to rewrite."""
    rewrites = {}
    for column in [*scan.markers, *scan.integral_floats, *scan.booleans]:
        if column == label:
            rewrites[column] = "class ids"
        else:
            rewrites[column] = "integers" if numeric[column].integer else "markers emptied"
    return rewrites


def _notes(file: Path, scan: _FileScan) -> list[str]:
    """What the scan read otherwise than written, one note per column and kind."""
    kinds: list[tuple[dict[str, _Occurrences], Callable[[int], str], str]] = [
        (
            scan.non_finite,
            lambda n: f"{_count(n, 'value')} that {'is' if n == 1 else 'are'} not finite",
            "read as missing",
        ),
        (scan.markers, lambda n: _count(n, "missing-value marker"), "read as missing"),
        (
            scan.integral_floats,
            lambda n: f"{_count(n, 'float')} with an integer value",
            "read as integers",
        ),
        (scan.booleans, lambda n: _count(n, "boolean"), "read as class ids FALSE=0, TRUE=1"),
    ]
    return [
        f"{file}: column {column!r} holds {holds(seen.count)} (first: line "
        f"{seen.first_line}, {seen.first_value!r}), {read_as}"
        for occurrences, holds, read_as in kinds
        for column, seen in occurrences.items()
    ]


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


def class_id_label(config: LeanlineConfig, numeric: dict[str, NumberRule]) -> str | None:
    """The label column that holds class ids when its values are numbers or booleans:
    a classifier's, which the family reads with `class_ids`, unless a rule of `numeric`
    or the curated schema types it (an INT label follows its rule, a BYTES label holds
    class names as written)."""
    column = config.model.label.column
    # A regressor's label has a number rule.
    if config.model.family not in _FAMILIES_NEEDING_A_LABEL or column in numeric:
        return None
    if config.data.schema_path:
        schema = _schema(Path(config.resolve(config.data.schema_path)))
        if any(feature.name == column for feature in schema.feature):
            return None
    return column


# The rule of a label holding class ids; its source says why it must hold integers.
_CLASS_ID_RULE = NumberRule(
    True, "class ids: model.label.column of a classifier, whose values are numbers"
)
# What a label cell other than an integer or an empty cell is (_label_cell_kind).
_BOOLEAN, _INTEGRAL, _FRACTION, _NAME = "boolean", "integral float", "fraction", "name"
_MARKER = "missing-value marker"


def _label_cell_kind(cell: str) -> str | None:
    """_BOOLEAN, _INTEGRAL (an integer written as a float), _FRACTION (a number that is no
    integer), _NAME (no number), _MARKER (`NA`: no value among class ids, a name among
    names), or None: an integer, or an empty cell (value_rules)."""
    if is_missing_marker(cell):
        return _MARKER
    if cell.strip().upper() in _BOOLEAN_NUMBERS:
        return _BOOLEAN
    plain = _CLASS_ID_RULE.plain(cell)
    if plain is not None:
        return _INTEGRAL if plain != cell else None
    try:
        float(cell)
    except ValueError:
        return _NAME
    return _FRACTION


def _family_columns(config: LeanlineConfig) -> list[str]:
    """Numeric columns a model family reads besides `model.features`."""
    family = config.model.family
    if family == "taxi":  # the label "big tipper" compares tips with the fare
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
    label: str | None,
    classes_column: str | None,
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
                columns = _columns_of(header, numeric, needing_values, label, classes_column)
                _scan_rows(lines, columns, scan)
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
        problems.append(_not_numbers_problem(file, column, numeric[column], bad))
    for column, empty in scan.no_value.items():
        problems.append(
            f"{file}: column {column!r} needs a value in every row ({needing_values[column]}): "
            f"line {empty.first_line} has {empty.first_value!r} ({_count(empty.count, 'row')} "
            "like this); fill those in or delete the rows"
        )
    return header, scan


def _columns_of(
    header: list[str],
    numeric: dict[str, NumberRule],
    needing_values: dict[str, str],
    label: str | None,
    classes_column: str | None,
) -> _Columns:
    return _Columns(
        width=len(header),
        numbers={header.index(c): (c, rule) for c, rule in numeric.items() if c in header},
        needing_values={header.index(c): c for c in needing_values if c in header},
        label=header.index(label) if label in header else None,
        label_values=header.index(classes_column) if classes_column in header else None,
    )


def _not_numbers_problem(file: Path, column: str, rule: NumberRule, bad: _Occurrences) -> str:
    return (
        f"{file}: column {column!r} must hold {rule.expected} ({rule.source}): line "
        f"{bad.first_line} has {bad.first_value!r} ({_count(bad.count, 'row')} like "
        f"this){_not_a_number_advice(bad.first_value, rule)}"
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
            plain = rule.plain(cell)
            if plain is None:
                if is_missing_marker(cell):
                    scan.markers[column] = _noted(scan.markers.get(column), line, cell)
                else:
                    scan.bad_cells[column] = _noted(scan.bad_cells.get(column), line, cell)
            elif plain != cell:
                scan.integral_floats[column] = _noted(scan.integral_floats.get(column), line, cell)
            elif cell and not math.isfinite(float(cell)):
                scan.non_finite[column] = _noted(scan.non_finite.get(column), line, cell)
        if columns.label_values is not None and row[columns.label_values]:
            _note_label_value(scan, row[columns.label_values], line)
        if columns.label is not None:
            kind = _label_cell_kind(row[columns.label])
            if kind is not None:
                scan.label_cells[kind] = _noted(
                    scan.label_cells.get(kind), line, row[columns.label]
                )
        for index, column in columns.needing_values.items():
            cell = row[index]
            # ExampleGen's copy has no value there: the cell is empty, or a marker it empties.
            if not cell or (index in columns.numbers and is_missing_marker(cell)):
                scan.no_value[column] = _noted(scan.no_value.get(column), line, cell)


def _note_label_value(scan: _FileScan, value: str, line: int) -> None:
    seen = scan.label_values.get(value)
    if seen is None and len(scan.label_values) == MAX_LABEL_VALUES:
        scan.too_many_label_values = True
        return
    scan.label_values[value] = _noted(seen, line, value)


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
