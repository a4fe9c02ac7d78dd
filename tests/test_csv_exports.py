"""What spreadsheet and database exports write, through the pre-flight check.

Each case is read as ExampleGen would read it (through the copy `example_gen_path`
hands it) or refused with the file, line, column and what to do; the advice that
names a command is run and its output passes. Penguins' columns, as the tabular
family reads them; the last test runs ExampleGen, StatisticsGen and SchemaGen.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import palmerpenguins
import pandas
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.config import LeanlineConfig, load_config
from pipeline.datasets import bundled_csv
from pipeline.preflight import PLAIN_HEADER_DIR, InputDataError, check_inputs, example_gen_path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TAXI_SCHEMA = CONFIGS / "schemas" / "taxi" / "schema.pbtxt"
HEADER = [
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]
ROW = ["Adelie", "Torgersen", "39.1", "18.7", "181", "3750", "male", "2007"]


def penguins(**changes) -> LeanlineConfig:
    """configs/penguins.yaml, `changes` replacing keys of `model.features`."""
    raw = yaml.safe_load((CONFIGS / "penguins.yaml").read_text())
    raw["model"]["features"].update(changes)
    return LeanlineConfig.model_validate(raw)


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return text.getvalue()


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def with_cell(column: str, value: str) -> list[str]:
    return [value if name == column else cell for name, cell in zip(HEADER, ROW, strict=True)]


def refusal(data: Path) -> str:
    with pytest.raises(InputDataError) as error:
        check_inputs(penguins(), str(data))
    return str(error.value)


def rows_of(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


# --- 1. Missing-value markers ---------------------------------------------------------------


def test_missing_value_markers_in_numeric_columns_reach_example_gen_as_empty_cells(tmp_path):
    markers = ["NA", "N/A", "n/a", "null", "NULL", "None", "#N/A", "-", "?", ".", "\\N", " NA "]
    rows = [with_cell("body_mass_g", marker) for marker in markers]
    rows += [with_cell("bill_length_mm", "NA"), with_cell("island", "NA"), ROW]
    data = write(tmp_path / "input" / "penguins.csv", csv_text([HEADER, *rows]))

    checked = check_inputs(penguins(), str(data))

    assert checked.rows == len(rows)
    assert checked.notes == (
        f"{data}: column 'body_mass_g' holds {len(markers)} missing-value markers (first: "
        "line 2, 'NA'), read as missing",
        f"{data}: column 'bill_length_mm' holds 1 missing-value marker (first: line "
        f"{len(markers) + 2}, 'NA'), read as missing",
    )
    copy = Path(example_gen_path(checked, tmp_path / "work"))
    assert copy != data and copy.name == data.name
    assert rows_of(copy) == [
        HEADER,
        *[with_cell("body_mass_g", "")] * len(markers),
        with_cell("bill_length_mm", ""),
        # A categorical column keeps its values: "NA" may be a real one (North America).
        with_cell("island", "NA"),
        ROW,
    ]


def test_a_config_that_empties_other_columns_gets_other_copies(tmp_path):
    """The copy depends on the config, not only on the source: a column that becomes
    numeric must not be read from a copy written when it was not (nor from ExampleGen's
    cache of that copy, which a new directory, a new input_base, rules out)."""
    rows = [with_cell("year", "NA"), with_cell("body_mass_g", "NA"), ROW]
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, *rows]))
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    work = tmp_path / "work"

    first = Path(example_gen_path(check_inputs(penguins(), str(data)), work))
    second = Path(
        example_gen_path(check_inputs(penguins(numeric=[*numeric, "year"]), str(data)), work)
    )

    assert first.parent != second.parent
    assert [row[HEADER.index("year")] for row in rows_of(second)[1:]] == ["", "2007", "2007"]
    assert [p.name for p in (work / PLAIN_HEADER_DIR).iterdir()] == [second.parent.name]
    # The same config again finds its copy as written: ExampleGen's fingerprint holds.
    before = second.stat()
    again = example_gen_path(check_inputs(penguins(numeric=[*numeric, "year"]), str(data)), work)
    assert Path(again) == second
    assert (second.stat().st_ino, second.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_rows_without_a_label_are_refused_where_the_model_needs_one(tmp_path):
    # Excel writes rows of only commas below a table it has formatted.
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, ROW, [""] * 8, [""] * 8]))
    assert (
        f"{data}: column 'species' needs a value in every row (model.label.column of family "
        "tabular): line 3 has '' (2 rows like this); fill those in or delete the rows"
    ) in refusal(data)


def test_a_marker_where_the_curated_schema_needs_a_value_is_refused_with_its_line(tmp_path):
    """The curated taxi schema gives `fare` value_count.min 1: an emptied marker would
    stop the run at the DataGate, after ExampleGen and StatisticsGen, with no line."""
    header, *rows = rows_of(bundled_csv("taxi", tmp_path))[:4]
    fare = header.index("fare")
    rows[1][fare], rows[2][fare] = "n/a", ""
    data = write(tmp_path / "input" / "taxi.csv", csv_text([header, *rows]))
    raw = yaml.safe_load((CONFIGS / "taxi.yaml").read_text())
    raw["data"]["schema"] = str(TAXI_SCHEMA)
    with pytest.raises(InputDataError) as error:
        check_inputs(LeanlineConfig.model_validate(raw), str(data))
    assert (
        f"{data}: column 'fare' needs a value in every row (value_count.min 1 in {TAXI_SCHEMA}): "
        "line 3 has 'n/a' (2 rows like this)"
    ) in str(error.value)


# --- 2. Other delimiters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "delimiter, name, decimal",
    [(";", "semicolons", ","), ("\t", "tabs", ".")],
    ids=["semicolon", "tab"],
)
def test_semicolon_and_tab_separated_exports_are_refused_with_how_to_convert(
    delimiter, name, decimal, tmp_path
):
    row = [cell.replace(".", decimal) for cell in ROW]
    data = write(tmp_path / "input" / "penguins.csv", csv_text([HEADER, row], delimiter))

    message = refusal(data)

    assert (
        f"{data}: line 1, the header, has its fields separated by {name} ({delimiter!r}), "
        "and ExampleGen reads comma-separated files only" in message
    )
    assert "missing column" not in message  # the delimiter is the one problem to fix
    # The conversion the message shows gives a file that passes, decimals read as numbers.
    converted = tmp_path / "converted" / "penguins.csv"
    converted.parent.mkdir()
    conversion = message.split("e.g. ", 1)[1].splitlines()[0]
    exec(
        conversion.replace("OLD", repr(str(data))).replace("NEW", repr(str(converted))),
        {"pandas": pandas},
    )
    assert check_inputs(penguins(), str(converted)).rows == 1
    assert rows_of(converted)[1] == ROW


# --- 3. Numbers as spreadsheets display them ------------------------------------------------


@pytest.mark.parametrize(
    "value, advice",
    [
        ("1,234.5", "a number as a spreadsheet displays it"),
        ("$12", "a number as a spreadsheet displays it"),
        ("12%", "a number as a spreadsheet displays it"),
        ("3,14", "a number as a spreadsheet displays it"),
        ("#DIV/0!", "a spreadsheet formula error"),
    ],
)
def test_formatted_numbers_are_refused_naming_file_line_column_value_and_the_fix(
    value, advice, tmp_path
):
    data = write(
        tmp_path / "penguins.csv", csv_text([HEADER, ROW, with_cell("bill_depth_mm", value)])
    )
    message = refusal(data)
    assert (
        f"{data}: column 'bill_depth_mm' must hold numbers (model.features.numeric): "
        f"line 3 has {value!r} (1 row like this); {advice}" in message
    )


# --- 4. Row and header shapes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            csv_text([HEADER, ROW, [*ROW, "x"], ROW[:2]]),
            "line 3 has 9 fields, the header 8 (2 lines like this)",
        ),
        (csv_text([HEADER]), "a header but no data rows"),
        ("", "empty file, no header line"),
        (
            csv_text([[*HEADER, "", ""], [*ROW, "", ""]]),
            "line 1, the header, has no name for columns 9, 10",
        ),
        # A line of spaces is one field, which ExampleGen refuses too ("Columns do not match").
        (csv_text([HEADER, ROW]) + "  \n", "line 3 has 1 fields, the header 8"),
    ],
    ids=["ragged", "header_only", "empty", "unnamed_columns", "line_of_spaces"],
)
def test_rows_unlike_the_header_are_refused_naming_the_file_and_line(content, expected, tmp_path):
    data = write(tmp_path / "penguins.csv", content)
    assert f"{data}: {expected}" in refusal(data)


def test_trailing_blank_lines_are_skipped_as_example_gen_skips_them(tmp_path):
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, ROW, ROW]) + "\n\r\n\n")
    checked = check_inputs(penguins(), str(data))
    assert checked.rows == 2 and not checked.notes
    assert example_gen_path(checked, tmp_path / "work") == str(data)


# --- 5. Encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("utf-16", "UTF-16 text (Excel's 'Unicode Text' writes it, tab-separated), not UTF-8"),
        ("cp1252", "line 3 is not UTF-8 text (byte 0xe9 at position 15)"),
    ],
    ids=["utf16", "cp1252"],
)
def test_utf16_and_cp1252_exports_are_refused_with_the_command_that_converts_them(
    encoding, expected, tmp_path
):
    if shutil.which("iconv") is None:
        pytest.skip("iconv is not installed")
    text = csv_text([HEADER, ROW, with_cell("island", "Torgersén")])
    data = write(tmp_path / "input" / "penguins.csv", text.encode(encoding))

    message = refusal(data)

    assert f"{data}: {expected}; save it as 'CSV UTF-8 (Comma delimited)'" in message
    command = message.split("e.g. ", 1)[1].splitlines()[0]
    subprocess.run(command, shell=True, check=True)
    assert check_inputs(penguins(), str(data)).rows == 2
    assert data.read_text(encoding="utf-8") == text


# --- End to end: ExampleGen, StatisticsGen and SchemaGen on an export with markers -----------


def test_an_export_with_na_markers_gives_example_gen_numeric_columns(tmp_path):
    """The palmerpenguins CSV as R writes it ("NA" for missing), re-exported as a
    spreadsheet would (quoted fields, CRLF, byte-order mark): ExampleGen reads the
    measurements as numbers, and the categorical "sex" keeps "NA" as a value."""
    from pipeline.schema import write_inferred_schema

    source = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    with source.open(newline="") as handle:
        table = list(csv.reader(handle))
    assert sum(row.count("NA") for row in table) > 10
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(table)
    data = write(tmp_path / "input" / "penguins.csv", b"\xef\xbb\xbf" + text.getvalue().encode())
    config = load_config(CONFIGS / "penguins.yaml")
    assert (
        f"{data}: column 'bill_length_mm' holds 2 missing-value markers (first: line 5, 'NA'), "
        "read as missing"
    ) in check_inputs(config, str(data)).notes

    schema_file = write_inferred_schema(config, str(tmp_path / "schema.pbtxt"), str(data))

    schema = text_format.Parse(schema_file.read_text(), schema_pb2.Schema())
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    assert types == {
        "species": "BYTES",
        "island": "BYTES",
        "bill_length_mm": "FLOAT",
        "bill_depth_mm": "FLOAT",
        "flipper_length_mm": "INT",
        "body_mass_g": "INT",
        "sex": "BYTES",
        "year": "INT",
    }
    (sex,) = [d for d in schema.string_domain if d.name == "sex"]
    assert "NA" in sex.value
