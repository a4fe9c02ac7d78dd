"""What spreadsheet and database exports write, through the pre-flight check.

Each case is read as ExampleGen would read it (through the copy `example_gen_path`
hands it) or refused with the file, line, column and what to do; the advice that
names a command is run and its output passes. Penguins' columns, as the tabular
family reads them; the last two tests run ExampleGen, StatisticsGen and SchemaGen,
the last also Transform.
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
from pipeline.inputs.checks import InputDataError, check_inputs
from pipeline.inputs.copies import example_gen_path
from pipeline.inputs.datasets import bundled_csv
from pipeline.layout import PLAIN_HEADER_DIR

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


def penguins_raw() -> dict:
    """configs/penguins.yaml without its class list: these tests write other labels."""
    raw = yaml.safe_load((CONFIGS / "penguins.yaml").read_text())
    raw["model"]["label"] = {"column": raw["model"]["label"]["column"], "num_classes": 3}
    return raw


def penguins(**changes) -> LeanlineConfig:
    """configs/penguins.yaml (no class list), `changes` replacing keys of `model.features`."""
    raw = penguins_raw()
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


# --- 6. Integers written as floats, booleans as labels -----------------------------------------


def test_integers_written_as_floats_reach_example_gen_as_integers(tmp_path):
    """pandas writes an integer column with gaps as floats ("2007.0"); ExampleGen would
    type it FLOAT. A float column keeps its floats: its curated type may be FLOAT."""
    years = ["2007.0", "2008.00", "2e3", "NA", "", "2009"]
    rows = [with_cell("year", year) for year in years]
    rows[0][HEADER.index("body_mass_g")] = "3750.0"
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, *rows]))

    checked = check_inputs(penguins(categorical_int={"year": 3000}), str(data))

    assert checked.notes == (
        f"{data}: column 'year' holds 1 missing-value marker (first: line 5, 'NA'), read as missing",
        f"{data}: column 'year' holds 3 floats with an integer value (first: line 2, '2007.0'), "
        "read as integers",
    )
    copy = rows_of(Path(example_gen_path(checked, tmp_path / "work")))
    assert [row[HEADER.index("year")] for row in copy[1:]] == [
        "2007",
        "2008",
        "2000",
        "",
        "",
        "2009",
    ]
    assert copy[1][HEADER.index("body_mass_g")] == "3750.0"


def test_a_float_that_is_no_integer_in_an_integer_column_is_refused(tmp_path):
    rows = [with_cell("year", "2007.0"), with_cell("year", "2007.5"), with_cell("year", "1e400")]
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, *rows]))
    with pytest.raises(InputDataError) as error:
        check_inputs(penguins(categorical_int={"year": 3000}), str(data))
    assert (
        f"{data}: column 'year' must hold integers (model.features.categorical_int): line 3 has "
        "'2007.5' (2 rows like this)"
    ) in str(error.value)


def test_an_int_column_of_the_curated_schema_reads_integers_written_as_floats(tmp_path):
    header, *rows = rows_of(bundled_csv("taxi", tmp_path))[:4]
    seconds = header.index("trip_seconds")
    rows[1][seconds] = f"{rows[1][seconds]}.0"
    data = write(tmp_path / "input" / "taxi.csv", csv_text([header, *rows]))
    raw = yaml.safe_load((CONFIGS / "taxi.yaml").read_text())
    raw["data"]["schema"] = str(TAXI_SCHEMA)

    checked = check_inputs(LeanlineConfig.model_validate(raw), str(data))

    assert checked.rewrites == {data: {"trip_seconds": "integers"}}
    copy = rows_of(Path(example_gen_path(checked, tmp_path / "work")))
    assert copy[2][seconds] == rows[1][seconds].removesuffix(".0")


def test_a_column_rewritten_otherwise_gets_another_copy(tmp_path):
    """The copy's directory names how each column is rewritten: "2007.0" stays a float
    where 'year' is numeric, an integer where it holds ids."""
    rows = [with_cell("year", "NA"), with_cell("year", "2007.0")]
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, *rows]))
    work = tmp_path / "work"
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]

    as_floats = Path(example_gen_path(check_inputs(penguins(numeric=numeric), str(data)), work))
    as_ids = Path(
        example_gen_path(check_inputs(penguins(categorical_int={"year": 3000}), str(data)), work)
    )

    assert as_floats.parent != as_ids.parent
    assert [row[HEADER.index("year")] for row in rows_of(as_ids)[1:]] == ["", "2007"]
    assert [p.name for p in (work / PLAIN_HEADER_DIR).iterdir()] == [as_ids.parent.name]
    floats = Path(example_gen_path(check_inputs(penguins(numeric=numeric), str(data)), work))
    assert [row[HEADER.index("year")] for row in rows_of(floats)[1:]] == ["", "2007.0"]


LABEL_IDS = "class ids: model.label.column of a classifier, whose values are numbers"


@pytest.mark.parametrize(
    "files, copied, notes",
    [
        (
            [["0.0", "1.0", "2.00", "1"]],
            [["0", "1", "2", "1"]],
            ["holds 3 floats with an integer value (first: line 2, '0.0'), read as integers"],
        ),
        (
            [["TRUE", "false", "True", " FALSE "]],
            [["1", "0", "1", "0"]],
            ["holds 4 booleans (first: line 2, 'TRUE'), read as class ids FALSE=0, TRUE=1"],
        ),
        (
            [["TRUE", "0", "1.0", "False"]],
            [["1", "0", "1", "0"]],
            [
                "holds 1 float with an integer value (first: line 4, '1.0'), read as integers",
                "holds 2 booleans (first: line 2, 'TRUE'), read as class ids FALSE=0, TRUE=1",
            ],
        ),
        # One class name makes every value a name, as ExampleGen types the column STRING.
        ([["TRUE", "2.0", "2.5"], ["Adelie"]], None, []),
    ],
    ids=["integral_floats", "booleans", "booleans_and_numbers", "names_in_another_file"],
)
def test_a_classifier_label_of_numbers_or_booleans_reaches_example_gen_as_class_ids(
    files, copied, notes, tmp_path
):
    data = tmp_path / "input"
    for number, labels in enumerate(files):
        rows = [with_cell("species", label) for label in labels]
        write(data / f"part-{number}.csv", csv_text([HEADER, *rows]))

    checked = check_inputs(penguins(), str(data))

    assert checked.notes == tuple(f"{data / 'part-0.csv'}: column 'species' {n}" for n in notes)
    source = Path(example_gen_path(checked, tmp_path / "work"))
    if copied is None:
        assert source == data
    for number, labels in enumerate(copied or []):
        copy = rows_of(source / f"part-{number}.csv")
        assert [row[HEADER.index("species")] for row in copy[1:]] == labels


def test_a_label_of_numbers_that_are_no_integers_is_refused(tmp_path):
    rows = [with_cell("species", label) for label in ["0", "2.5", "1.0", "nan"]]
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, *rows]))
    assert (
        f"{data}: column 'species' must hold integers ({LABEL_IDS}): line 3 has '2.5' "
        "(2 rows like this)"
    ) in refusal(data)


def test_a_label_the_curated_schema_types_bytes_keeps_its_booleans(tmp_path):
    schema = write(tmp_path / "schema.pbtxt", 'feature { name: "species" type: BYTES }\n')
    raw = penguins_raw()
    raw["data"]["schema"] = str(schema)
    data = write(tmp_path / "penguins.csv", csv_text([HEADER, with_cell("species", "TRUE")]))

    checked = check_inputs(LeanlineConfig.model_validate(raw), str(data))

    assert not checked.rewrites and not checked.notes
    assert example_gen_path(checked, tmp_path / "work") == str(data)


# --- End to end: ExampleGen, StatisticsGen and SchemaGen on an export with markers -----------


@pytest.mark.slow
def test_an_export_with_na_markers_gives_example_gen_numeric_columns(tmp_path):
    """The palmerpenguins CSV as R writes it ("NA" for missing), re-exported as a
    spreadsheet would (quoted fields, CRLF, byte-order mark): ExampleGen reads the
    measurements as numbers, and the categorical "sex" keeps "NA" as a value."""
    from pipeline.inputs.schema import write_inferred_schema

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


# --- End to end: ExampleGen and Transform read those cells as int64 ids ---------------------


@pytest.mark.slow
def test_integers_written_as_floats_and_boolean_labels_are_int64_ids_in_transform(tmp_path):
    """One table, two classifiers: `grade` ("0.0", "1.0", "2.0") and `passed` (TRUE/FALSE
    in three cases) as labels, `rooms` and `floors` ("2.0", gaps) as categorical_int.
    Through the pipeline's own ExampleGen, StatisticsGen, SchemaGen and Transform, each
    is an int64 column and a class id, row by row: each label is a function of rooms.
    (Two id columns with gaps: stacked_floats cannot concatenate a single sparse one.)"""
    import tensorflow as tf

    from models.common.features import LABEL_KEY
    from models.tabular.preprocessing import CATEGORICAL_INT_KEY
    from pipeline.local_runner import run_components
    from pipeline.pipeline import training_stages

    # rooms id (0: missing) -> each label's cell and class id.
    grades = {0: ("2.0", 2), 1: ("0.0", 0), 2: ("1.0", 1), 3: ("2", 2)}
    passed = {0: ("TRUE", 1), 1: ("FALSE", 0), 2: ("TRUE", 1), 3: ("FALSE", 0)}
    cases = [str.upper, str.title, str.lower]
    table = [["rooms", "floors", "grade", "passed"]]
    for i in range(90):
        rooms = ["", "1.0", "2.0", "3.0", "1", "2.00"][i % 6]
        ids = int(float(rooms)) if rooms else 0
        floors = ["1.0", "", "2"][i % 3]
        table.append([rooms, floors, grades[ids][0], cases[i % 3](passed[ids][0])])
    data = write(tmp_path / "input" / "rooms.csv", csv_text(table))

    components = []
    for label, classes in (("grade", 3), ("passed", 2)):
        config = LeanlineConfig.model_validate(
            {
                "name": "rooms",
                "data": {"path": str(data)},
                "model": {
                    "family": "tabular",
                    "label": {"column": label, "num_classes": classes},
                    "features": {"categorical_int": {"rooms": 4, "floors": 3}},
                },
            }
        )
        source = example_gen_path(check_inputs(config, str(data)), tmp_path / label)
        stages = training_stages(config, source)
        stage_components = [stages.example_gen, stages.statistics_gen, stages.schema_gen]
        components += [c.with_id(f"{c.id}_{label}") for c in [*stage_components, stages.transform]]
    root = run_components("rooms", tmp_path / "run", components, [])

    def examples(component: str, output: str) -> list[tf.train.Example]:
        files = sorted((root / component / output).glob("*/Split-*/*.gz"))
        assert files
        return [
            tf.train.Example.FromString(record.numpy())
            for record in tf.data.TFRecordDataset([str(f) for f in files], "GZIP")
        ]

    expected = {"grade": grades, "passed": passed}
    for label, ids in expected.items():
        (schema_file,) = (root / f"SchemaGen_{label}" / "schema").glob("*/schema.pbtxt")
        schema = text_format.Parse(schema_file.read_text(), schema_pb2.Schema())
        types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
        assert types["rooms"] == types["floors"] == types[label] == "INT", types
        transformed = examples(f"Transform_{label}", "transformed_examples")
        assert len(transformed) == len(table) - 1
        for example in transformed:
            features = example.features.feature
            # Columns in name order, each offset by the ranges before it: floors' 3 ids.
            _, offset_room = features[CATEGORICAL_INT_KEY].int64_list.value
            room = offset_room - 3
            assert list(features[LABEL_KEY].int64_list.value) == [ids[room][1]], label
        assert {e.features.feature[LABEL_KEY].int64_list.value[0] for e in transformed} == {
            class_id for _, class_id in ids.values()
        }
