"""Reliability: bad data, bad config, crashes and concurrent runs lose nothing.

Fast tests (no TFX run) cover the pre-flight data check, config errors through the
CLI and the predict client's input check. The slow ones share one real pipeline
run that is killed during its Trainer and then resumed (`crash_and_resume`): the
pushed version it leaves is the "previous version" that every later failure must
leave untouched. Data is the first rows of the bundled taxi CSV, written here.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import gzip
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2
from tfx.utils import path_utils

from components.serving_pusher.executor import push_model
from models.config import ModelConfig
from models.errors import UserError
from pipeline import cli, summary
from pipeline.config import LeanlineConfig, load_config
from pipeline.inputs.checks import check_inputs
from pipeline.inputs.copies import example_gen_path
from pipeline.inputs.datasets import bundled_csv
from pipeline.layout import LOCK_FILE, METADATA_FILE
from pipeline.local_runner import run_local
from serving.check import check_servable
from serving.versions import STAGING_PREFIX, existing_versions

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TAXI_SCHEMA = CONFIGS / "schemas" / "taxi" / "schema.pbtxt"
LEANLINE = REPO / ".venv" / "bin" / "leanline"
ROWS = 400
# Each run's TFX, Beam and TF logs are silenced; what reaches stderr must fit on a screen.
MAX_STDERR_LINES = 20
# Components that run before the Trainer: a resumed run takes them from the cache.
BEFORE_TRAINER = (
    "CsvExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
)
RUN_TIMEOUT_S = 1200
# A line of tf_keras's fit at verbose=2: an epoch's start, or its end with the loss.
KERAS_LINE = r"(Epoch \d+/\d+|\s*\d+/\d+ - .*loss)"

Table = tuple[list[str], list[list[str]]]


# --- Data and configs made here ------------------------------------------------------------


@pytest.fixture(scope="module")
def taxi_table(tmp_path_factory) -> Table:
    """Header and the first ROWS rows of the bundled taxi CSV."""
    source = bundled_csv("taxi", tmp_path_factory.mktemp("bundled"))
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for _, row in zip(range(ROWS), reader, strict=False)]
    return header, rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def without_column(table: Table, column: str) -> Table:
    header, rows = table
    index = header.index(column)
    return (
        [c for i, c in enumerate(header) if i != index],
        [[v for i, v in enumerate(row) if i != index] for row in rows],
    )


def with_values(table: Table, column: str, value: str, every: int) -> Table:
    """`value` in `column` of every `every`-th row (rows 0, every, 2*every, ...)."""
    header, rows = table
    index = header.index(column)
    changed = [list(row) for row in rows]
    for row in changed[::every]:
        row[index] = value
    return header, changed


def write_config(directory: Path, **sections: Any) -> Path:
    """configs/taxi.yaml with a quick training and lenient gates; `sections` replace
    whole top-level sections."""
    raw = yaml.safe_load((CONFIGS / "taxi.yaml").read_text())
    raw["data"]["schema"] = str(TAXI_SCHEMA)
    raw["training"] = {"epochs": 1, "batch_size": 64}
    raw["compression"] = {
        "fine_tune_epochs": 1,
        "representative_examples": 64,
        "report_examples": 100,
    }
    # Reliability, not accuracy, is under test: any model passes the gates.
    raw["evaluation"]["thresholds"] = {
        "metric": "binary_accuracy",
        "min_value": 0.0,
        "max_drop_vs_uncompressed": 1.0,
        "max_drop_vs_blessed": 1.0,
    }
    for key, value in sections.items():
        raw[key] = value
    path = directory / "leanline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`leanline ARGV` in this process (TF is loaded already); returns exit code and stderr.
    --verbose only keeps the test session's logging as it was."""
    code = cli.main(["--verbose", *argv])
    return code, capsys.readouterr().err


# --- Disk state -----------------------------------------------------------------------------


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Inode, mtime and size of every entry under `root`, by relative path."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        for path in sorted(root.rglob("*"))
        for stat in [path.stat()]
    }


def pushed_state(config: LeanlineConfig) -> dict[str, Any]:
    """Everything a push writes: serving and TFLite versions."""
    return {
        "serving": tree_state(config.serving_model_dir),
        "tflite": tree_state(config.tflite_model_dir),
    }


def version_dirs(config: LeanlineConfig) -> list[Path]:
    return [config.serving_model_dir / str(v) for v in existing_versions(config.serving_model_dir)]


def staging_leftovers(config: LeanlineConfig) -> list[Path]:
    return [
        path
        for base in (config.serving_model_dir, config.tflite_model_dir)
        if base.exists()
        for path in base.iterdir()
        if path.name.startswith(STAGING_PREFIX)
    ]


def lock_is_free(output_dir: Path) -> bool:
    """Whether no process holds the run lock (the file stays; opened without truncating)."""
    with open(output_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


# --- 1. Bad data: refused by the pre-flight check, before any TFX work -----------------------

BadData = Callable[[Table, Path], Path]


def _csv_of(change: Callable[[Table], Table]) -> BadData:
    return lambda table, directory: write_csv(directory / "taxi.csv", *change(table))


def _bytes_of(content: Callable[[Table], bytes]) -> BadData:
    def write(table: Table, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "taxi.csv"
        path.write_bytes(content(table))
        return path

    return write


def _empty_directory(_: Table, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _csv_text(table: Table) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([table[0], *table[1]])
    return text.getvalue().encode()


# PNG signature and the start of an IHDR chunk.
_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"

BAD_DATA: dict[str, tuple[BadData, list[str]]] = {
    "missing_column": (
        _csv_of(lambda t: without_column(t, "trip_miles")),
        ["taxi.csv: missing column 'trip_miles' (model.features.numeric)"],
    ),
    "label_missing": (
        _csv_of(lambda t: without_column(t, "tips")),
        ["taxi.csv: missing column 'tips' (model.label.column)"],
    ),
    "strings_in_a_numeric_column": (
        # Rows 0, 50, ..., 350: lines 2, 52, ... of the file.
        _csv_of(lambda t: with_values(t, "fare", "about ten", every=50)),
        ["taxi.csv: column 'fare' must hold numbers", "line 2 has 'about ten' (8 rows like this)"],
    ),
    "header_only": (
        _csv_of(lambda t: (t[0], [])),
        ["taxi.csv: a header but no data rows"],
    ),
    "gzip_bytes": (
        _bytes_of(lambda t: gzip.compress(_csv_text(t))),
        ["taxi.csv: not a CSV text file (it holds gzip-compressed data)"],
    ),
    "png_image": (
        _bytes_of(lambda t: _PNG + bytes(range(256))),
        ["taxi.csv: not a CSV text file (it holds a PNG image)"],
    ),
    "ragged_rows": (
        _bytes_of(lambda t: _csv_text(t) + b"1,2,3\n"),
        [f"taxi.csv: line {ROWS + 2} has 3 fields, the header 18 (1 line like this)"],
    ),
    "not_utf8": (
        _bytes_of(lambda t: _csv_text(t) + "Caf\xe9".encode("latin-1") + b"\n"),
        [f"taxi.csv: line {ROWS + 2} is not UTF-8 text (byte 0xe9 at position 4)"],
    ),
    "empty_directory": (_empty_directory, ["data directory is empty"]),
    "comma_in_a_column_name": (
        _csv_of(lambda t: renamed(t, "trip_start_timestamp", "trip,start")),
        ["taxi.csv: column names ['trip,start'] are empty or hold a comma"],
    ),
    "repeated_column_name": (
        _csv_of(lambda t: renamed(t, "trip_start_timestamp", "fare")),
        ["taxi.csv: column names ['fare'] appear more than once"],
    ),
}


def renamed(table: Table, column: str, name: str) -> Table:
    header, rows = table
    return [name if c == column else c for c in header], rows


def test_quoted_crlf_and_bom_headers_pass_and_example_gen_gets_a_plain_header(taxi_table, tmp_path):
    """What spreadsheets and exporters write: every field quoted, CRLF line ends, a
    UTF-8 byte-order mark. The csv module reads such a file; so must leanline."""
    header, rows = taxi_table
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows([header, *rows])
    source = tmp_path / "input" / "taxi.csv"
    source.parent.mkdir()
    source.write_bytes(b"\xef\xbb\xbf" + text.getvalue().encode())
    config = load_config(CONFIGS / "taxi.yaml")

    checked = check_inputs(config, str(source))
    assert checked.rows == ROWS
    assert checked.plain_headers == {source: header}

    path = Path(example_gen_path(checked, tmp_path / "work"))
    assert path.name == "taxi.csv" and path != source
    lines = path.read_bytes().split(b"\r\n")
    assert lines[0] == ",".join(header).encode()
    assert path.read_bytes().split(b"\r\n", 1)[1] == source.read_bytes().split(b"\r\n", 1)[1]
    # Written once: ExampleGen's fingerprint (names, sizes, times) holds across runs.
    before = path.stat()
    assert Path(example_gen_path(check_inputs(config, str(source)), tmp_path / "work")) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert before.st_mtime_ns == source.stat().st_mtime_ns

    # A plain file is read where it is.
    plain = write_csv(tmp_path / "plain" / "taxi.csv", header, rows)
    assert example_gen_path(check_inputs(config, str(plain)), tmp_path / "work") == str(plain)


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_in_seconds_before_any_tfx_work(case, taxi_table, tmp_path, capsys):
    make, expected = BAD_DATA[case]
    data = make(taxi_table, tmp_path / "input")
    output_dir = tmp_path / "output"

    started = time.monotonic()
    code, stderr = run_cli(
        "run",
        "--config",
        str(write_config(tmp_path)),
        "--output-dir",
        str(output_dir),
        "--data",
        str(data),
        capsys=capsys,
    )
    seconds = time.monotonic() - started

    assert code == 2
    assert stderr.startswith("leanline: error: ")
    for fragment in expected:
        assert fragment in stderr
    assert "Traceback" not in stderr
    assert seconds < 5, f"the pre-flight check took {seconds:.1f} s"
    assert not (output_dir / METADATA_FILE).exists()  # no component ran
    assert not (output_dir / "serving").exists()


def test_a_numeric_column_of_the_curated_schema_must_hold_integers(taxi_table, tmp_path):
    # trip_seconds is INT in the curated schema; a float makes ExampleGen type it FLOAT.
    header, rows = with_values(taxi_table, "trip_seconds", "12.5", every=100)
    data = write_csv(tmp_path / "taxi.csv", header, rows)
    config = load_config(write_config(tmp_path))
    with pytest.raises(UserError) as error:
        check_inputs(config, str(data))
    message = str(error.value)
    assert "column 'trip_seconds' must hold integers (INT in " in message
    assert "schema.pbtxt): line 2 has '12.5' (4 rows like this)" in message


def test_every_problem_of_every_file_of_a_directory_is_listed(taxi_table, tmp_path):
    header, rows = taxi_table
    write_csv(tmp_path / "input" / "a.csv", header, rows[:100])
    write_csv(tmp_path / "input" / "b.csv", *with_values(taxi_table, "trip_start_hour", "noon", 1))
    write_csv(tmp_path / "input" / "c.csv", list(reversed(header)), rows[:1])
    (tmp_path / "input" / "d.csv").write_bytes(b"")
    config = load_config(write_config(tmp_path))
    with pytest.raises(UserError) as error:
        check_inputs(config, str(tmp_path / "input"))
    lines = str(error.value).splitlines()
    assert any(
        "b.csv: column 'trip_start_hour' must hold integers" in line and f"{ROWS} rows" in line
        for line in lines
    )
    assert any("d.csv: empty file, no header line" in line for line in lines)
    assert any("c.csv: its header differs from" in line and "a.csv" in line for line in lines)
    assert not any(line.strip().startswith(f"{tmp_path}/input/a.csv") for line in lines)


@pytest.mark.parametrize("name", ["taxi", "penguins", "digits"])
def test_the_bundled_datasets_pass_the_preflight_check(name, tmp_path):
    config = load_config(CONFIGS / f"{name}.yaml")
    checked = check_inputs(config, str(bundled_csv(name, tmp_path)))
    assert checked.rows > 300


# --- 2. Bad config: the key and the file, exit code 2, no traceback --------------------------


def test_commands_print_no_tensorflow_start_up_lines_without_verbose(tmp_path):
    def runs(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [str(LEANLINE), *flags, "runs", "--run-dir", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    quiet = runs()
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        f"leanline: error: no runs recorded: {tmp_path / 'metadata.sqlite'} does not exist"
    ]
    # The same command with --verbose shows what the quiet one hides.
    verbose = runs("--verbose")
    assert verbose.returncode == 2
    assert len(verbose.stderr.splitlines()) > 1, verbose.stderr


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"training": {"epochs": 1, "epochz": 2}}, "training.epochz: unknown key"),
        ({"training": {"epochs": "one"}}, "training.epochs: Input should be a valid integer"),
        (
            {"compression": {"pruning": {"target_sparsity": -0.5}}},
            "compression.pruning.target_sparsity: Input should be greater than or equal to 0",
        ),
        (
            {"evaluation": {"thresholds": {"min_value": 2}}},
            "evaluation.thresholds.min_value: Input should be less than or equal to 1",
        ),
        (
            {"model": {"family": "transformer", "label": {"column": "tips"}}},
            "model.family: Input should be 'tabular', 'taxi', 'digits' or 'text'",
        ),
        ({"data": {"path": "no/such/data.csv"}}, "data.path: path does not exist: "),
        # The name becomes a directory under the output dir: no way out of it.
        ({"name": "../../etc"}, "name: String should match pattern"),
        ({"name": "taxi/../../x"}, "name: String should match pattern"),
    ],
)
def test_config_errors_name_the_file_and_key_through_the_cli(sections, expected, tmp_path, capsys):
    path = write_config(tmp_path, **sections)
    code, stderr = run_cli("run", "--config", str(path), capsys=capsys)
    assert code == 2
    assert stderr.startswith(f"leanline: error: {path}: invalid configuration")
    assert expected in stderr
    assert "Traceback" not in stderr


# --- 6. predict checks its rows before connecting ------------------------------------------


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A loopback port that accepts connections, to tell whether anyone connected."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        yield server


def test_predict_reports_a_bad_row_before_connecting(listening_socket, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("fare,trip_miles,payment_type\n12.5,3.1,Cash\nabout ten,2.0,Cash\n")
    host, port = listening_socket.getsockname()
    code, stderr = run_cli(
        "predict",
        "--server",
        f"{host}:{port}",
        "--model",
        "taxi",
        "--input",
        str(rows),
        "--schema",
        str(TAXI_SCHEMA),
        capsys=capsys,
    )
    assert code == 2
    assert "row 2, column 'fare': 'about ten' is not a number" in stderr
    with pytest.raises(BlockingIOError):
        listening_socket.accept()  # nobody connected


# --- 3, 4. A run killed during its Trainer, resumed while a second run is refused ------------


@dataclass
class CrashAndResume:
    config: LeanlineConfig
    data: Path
    command: list[str]
    secrets: dict[str, str]
    killed_output: str
    lock_free_after_kill: bool
    versions_after_kill: list[Path]
    # The in-process run attempted while the resumed one held the lock (None: not refused).
    refusal: str | None
    refusal_s: float
    resumed_returncode: int
    resumed_output: str
    # <output>/logs/ after the resumed run: one log file per run.
    run_logs: list[Path]
    summary: dict[str, Any]
    versions_after_resume: list[Path]
    pushed_after_resume: dict[str, Any]


def make_secrets() -> dict[str, str]:
    """Credentials a user might have in the environment; none may be written anywhere."""
    return {
        name: f"{name.lower()}-{secrets.token_hex(8)}"
        for name in ("KFP_TOKEN", "LEANLINE_TEST_SECRET", "DB_PASSWORD")
    }


def trainer_state(metadata: Path, pipeline: str) -> int | None:
    """The latest run's Trainer execution state, read from MLMD without locking it."""
    if not metadata.exists():
        return None
    try:
        store = summary.open_store(metadata)
        run = summary.latest_run_context(store, pipeline)
        if run is None:
            return None
        for execution in store.get_executions_by_context(run.id):
            nodes = store.get_contexts_by_execution(execution.id)
            if any(node.name == f"{pipeline}.Trainer" for node in nodes):
                return execution.last_known_state
    except mlmd.errors.StatusError:  # the store is being created or written
        return None
    return None


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Polls `condition` while `process` runs."""
    started = time.monotonic()
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}")
        if time.monotonic() - started > RUN_TIMEOUT_S:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def leanline_process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[str]]:
    """`leanline` in its own process group (so the whole group can be killed), its
    output in `log`; killed if still running when the block ends."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def crash_and_resume(taxi_table, tmp_path_factory) -> CrashAndResume:
    """`leanline run` killed during its Trainer, then the same command again: the one
    real pushed run that the slow tests share."""
    directory = tmp_path_factory.mktemp("crash")
    data = write_csv(directory / "input" / "taxi.csv", *taxi_table)
    config_path = write_config(directory)
    output_dir = directory / "output"
    command = [
        str(LEANLINE),
        *("run", "--config", str(config_path), "--output-dir", str(output_dir)),
        *("--data", str(data)),
    ]
    config = load_config(config_path).with_overrides(output_dir=str(output_dir))
    secret_values = make_secrets()
    env = {**os.environ, **secret_values}

    # SIGKILL while the Trainer runs: no cleanup code gets a chance.
    with leanline_process(command, env, directory / "killed.log") as killed:
        wait_for(
            lambda: (
                trainer_state(output_dir / METADATA_FILE, config.name)
                == metadata_store_pb2.Execution.RUNNING
            ),
            killed,
            "the Trainer started",
        )
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    lock_free_after_kill = lock_is_free(output_dir)
    versions_after_kill = version_dirs(config)

    # The same command again; while it holds the lock, a second run is refused.
    with leanline_process(command, env, directory / "resumed.log") as resumed:
        wait_for(
            lambda: (output_dir / LOCK_FILE).read_text().strip() == str(resumed.pid),
            resumed,
            "the resumed run took the lock",
        )
        refused_at = time.monotonic()
        try:
            run_local(config, data=str(data))
            refusal = None
        except UserError as error:
            refusal = str(error)
        refusal_s = time.monotonic() - refused_at
        resumed.wait(timeout=RUN_TIMEOUT_S)

    return CrashAndResume(
        config=config,
        data=data,
        command=command,
        secrets=secret_values,
        killed_output=(directory / "killed.log").read_text(),
        lock_free_after_kill=lock_free_after_kill,
        versions_after_kill=versions_after_kill,
        refusal=refusal,
        refusal_s=refusal_s,
        resumed_returncode=resumed.returncode,
        resumed_output=(directory / "resumed.log").read_text(),
        run_logs=sorted((output_dir / "logs").glob("run-*.log")),
        summary=json.loads((output_dir / summary.SUMMARY_FILE).read_text()),
        versions_after_resume=version_dirs(config),
        pushed_after_resume=pushed_state(config),
    )


@pytest.fixture(scope="module")
def pushed_version(crash_and_resume) -> Path:
    """The version directory the resumed run pushed."""
    (version_dir,) = crash_and_resume.versions_after_resume
    return version_dir


@pytest.mark.slow
def test_a_run_killed_during_training_resumes_from_the_cache_and_pushes_once(crash_and_resume):
    run = crash_and_resume
    assert run.lock_free_after_kill, "the kernel releases the fcntl lock of a killed run"
    assert run.versions_after_kill == []
    assert run.resumed_returncode == 0, run.resumed_output[-3000:]

    statuses = {c["id"]: c["status"] for c in run.summary["components"]}
    for component in BEFORE_TRAINER:
        assert statuses[component] == "cached", statuses
    assert statuses["Trainer"] == "complete"
    assert statuses["ServingPusher"] == "complete"
    (version_dir,) = run.versions_after_resume
    assert run.summary["pushed"] is True
    assert run.summary["pushed_path"] == str(version_dir)
    assert check_servable(version_dir).warmup_requests > 0


@pytest.mark.slow
def test_a_second_run_on_the_same_output_dir_is_refused_at_once(crash_and_resume):
    run = crash_and_resume
    assert run.refusal is not None, "a second run started while the first held the output dir"
    assert f"another leanline run is using {run.config.output_path}" in run.refusal
    assert run.refusal_s < 5
    # The run that held the lock was not disturbed: it finished and pushed one whole version.
    assert run.resumed_returncode == 0
    (version_dir,) = run.versions_after_resume
    assert (version_dir / "saved_model.pb").is_file()


@pytest.mark.slow
def test_a_run_prints_no_keras_lines_and_logs_everything_in_its_log_file(crash_and_resume):
    """Without --verbose the terminal holds the progress lines and the summary, never
    Keras' epoch lines; each run's log file holds them, and the progress lines."""
    run = crash_and_resume
    for printed in (run.killed_output, run.resumed_output):
        assert not re.search(f"^{KERAS_LINE}", printed, re.MULTILINE), printed[-3000:]
    assert re.search(r"^\[ *\d+\.\ds\] Trainer complete \(", run.resumed_output, re.MULTILINE)
    # The killed run's log too: it is written as the run goes.
    killed, resumed = run.run_logs
    assert "INFO leanline.progress: " in killed.read_text()
    log = resumed.read_text()
    assert re.search(f"INFO absl: {KERAS_LINE}", log), log[-3000:]
    assert re.search(r"INFO leanline.progress: \[ *\d+\.\ds\] Trainer complete \(", log)
    assert " INFO absl: Using deployment config:" in log  # TFX's own records


# --- 1. Unseen categories: through TFDV, stopped at the DataGate -----------------------------


@dataclass
class FailedRun:
    returncode: int
    stdout: str
    stderr: str
    log_files: list[Path]
    pushed_before: dict[str, Any]
    pushed_after: dict[str, Any]


@pytest.fixture(scope="module")
def anomalous_run(crash_and_resume, taxi_table, tmp_path_factory) -> FailedRun:
    """`leanline run` of rows with unseen categories, in the directory of the pushed run."""
    run = crash_and_resume
    directory = tmp_path_factory.mktemp("anomalies")
    # payment_type has a closed domain; company tolerates 10% of unseen values.
    table = with_values(taxi_table, "payment_type", "Bitcoin", every=3)
    table = with_values(table, "company", "Leanline Cabs Inc.", every=2)
    data = write_csv(directory / "taxi.csv", *table)
    logs = run.config.output_path / "logs"
    logs_before = set(logs.glob("*"))
    pushed_before = pushed_state(run.config)
    result = subprocess.run(
        [*run.command[:-1], str(data)],
        cwd=REPO,
        env={**os.environ, **run.secrets},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    return FailedRun(
        returncode=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        log_files=sorted(set(logs.glob("*")) - logs_before),
        pushed_before=pushed_before,
        pushed_after=pushed_state(run.config),
    )


@pytest.mark.slow
def test_unseen_categories_stop_the_run_with_a_short_message_and_push_nothing(anomalous_run):
    run = anomalous_run
    assert run.returncode == 2, run.stderr[-3000:]
    assert "leanline: error: the data does not match the schema" in run.stderr
    assert "column 'payment_type'" in run.stderr
    assert "column 'company'" in run.stderr
    assert "Anomalies artifact:" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.splitlines()) <= MAX_STDERR_LINES, run.stderr
    # The trace the user did not see is kept.
    (log,) = run.log_files
    assert f"full trace: {log}" in run.stderr
    assert "Traceback" in log.read_text()
    assert run.pushed_after == run.pushed_before


@pytest.mark.slow
def test_secrets_in_the_environment_are_never_written(crash_and_resume, anomalous_run):
    run = crash_and_resume
    printed = [run.killed_output, run.resumed_output, anomalous_run.stdout, anomalous_run.stderr]
    files = [p for p in run.config.output_path.rglob("*") if p.is_file()]
    assert anomalous_run.log_files and set(anomalous_run.log_files) <= set(files)
    for value in run.secrets.values():
        assert not [text for text in printed if value in text]
        assert not [p for p in files if value.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_failure_deep_in_beam_shows_its_cause_and_keeps_the_trace(tmp_path):
    # TFRecord input is not pre-flight checked; random bytes fail inside Beam's reader.
    data = tmp_path / "input"
    data.mkdir()
    (data / "part-0.tfrecord").write_bytes(secrets.token_bytes(3000))
    config = write_config(
        tmp_path, data={"path": str(data), "format": "tfrecord", "schema": str(TAXI_SCHEMA)}
    )
    output_dir = tmp_path / "output"
    result = subprocess.run(
        [str(LEANLINE), "run", "--config", str(config), "--output-dir", str(output_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "leanline: error: Not a valid TFRecord" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= MAX_STDERR_LINES, result.stderr
    (log,) = (output_dir / "logs").glob("*.log")
    assert f"full trace: {log}" in result.stderr
    # The run's log: its records, then the trace.
    records, trace = log.read_text().split(" ERROR pipeline.local_runner: the run failed\n")
    assert " INFO leanline.progress: " in records
    assert trace.startswith("Traceback") and len(trace.splitlines()) > MAX_STDERR_LINES
    assert not (output_dir / "serving").exists()


# --- 1, 5. What was pushed stays as it was ---------------------------------------------------


@pytest.mark.slow
def test_bad_data_leaves_the_pushed_version_untouched(
    crash_and_resume, taxi_table, tmp_path, capsys
):
    run = crash_and_resume
    metadata = run.config.output_path / METADATA_FILE
    metadata_before = metadata.stat().st_mtime_ns
    pushed_before = pushed_state(run.config)
    for case, (make, expected) in BAD_DATA.items():
        data = make(taxi_table, tmp_path / case)
        code, stderr = run_cli(*run.command[1:-1], str(data), capsys=capsys)
        assert code == 2, case
        assert expected[0] in stderr, case
    assert pushed_state(run.config) == pushed_before
    assert metadata.stat().st_mtime_ns == metadata_before  # no component ran


@pytest.mark.slow
def test_a_rerun_never_rewrites_an_earlier_version(crash_and_resume, pushed_version):
    run = crash_and_resume
    before = pushed_state(run.config)
    # The refused, failed and bad-data runs of the tests above changed nothing either.
    assert before == run.pushed_after_resume

    rerun = run_local(run.config, data=str(run.data))

    after = pushed_state(run.config)
    for kind, entries in before.items():
        assert {path: after[kind].get(path) for path in entries} == entries, kind
    assert rerun.error is None
    versions = version_dirs(run.config)
    assert versions == [pushed_version]
    assert not rerun.pushed
    assert "already the last pushed" in rerun.not_pushed_reason
    assert staging_leftovers(run.config) == []


def truncate_variables(version_dir: Path) -> Path:
    (data_file,) = (version_dir / "variables").glob("variables.data-*")
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    return data_file


@pytest.mark.slow
def test_a_failed_push_publishes_nothing_and_leaves_no_partial_directory(
    crash_and_resume, pushed_version, tmp_path
):
    run = crash_and_resume
    model_dir = tmp_path / "model"
    serving_model = Path(path_utils.serving_model_path(str(model_dir)))
    shutil.copytree(pushed_version, serving_model)
    truncate_variables(serving_model)
    pushed_before = pushed_state(run.config)

    with pytest.raises(UserError, match="truncated or corrupt"):
        push_model(
            model_dir,
            serving_model_dir=str(run.config.serving_model_dir),
            tflite_model_dir=None,
            warmup=[],
        )

    assert pushed_state(run.config) == pushed_before
    assert staging_leftovers(run.config) == []


@pytest.mark.slow
def test_check_servable_cli_detects_a_truncated_pushed_model(pushed_version, tmp_path, capsys):
    damaged = tmp_path / pushed_version.name
    shutil.copytree(pushed_version, damaged)
    data_file = truncate_variables(damaged)
    code, stderr = run_cli("check-servable", str(damaged), capsys=capsys)
    assert code == 2
    assert f"{data_file} is truncated or corrupt" in stderr
    assert "Traceback" not in stderr


# --- Labels a classifier cannot learn from: refused before training ------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (({0: 5, 1: 4, 2: 1}, {0: 2, 1: 1}), "holds class ids [2] outside [0, 2)"),
        (({1: 9}, {1: 3}), "fewer than two classes in the train split"),
    ],
)
def test_labels_outside_the_classes_or_of_one_class_are_refused(counts, expected):
    from models.common.train import check_labels

    model = ModelConfig.model_validate(
        {"family": "tabular", "features": {"numeric": ["x"]}, "label": {"column": "species"}}
    )
    with pytest.raises(UserError) as refused:
        check_labels(*counts, model)
    assert expected in str(refused.value)
    assert "rows per class id: train {" in str(refused.value)


def test_a_class_missing_from_one_split_is_a_warning_with_counts():
    from models.common.train import check_labels

    model = load_config(CONFIGS / "penguins.yaml").model  # 3 classes
    (warning,) = check_labels({0: 5, 1: 4, 2: 2}, {0: 2, 1: 1}, model)
    assert warning.startswith("label class 2 of 'species' is in the train split only")
    assert "eval {0: 2, 1: 1}" in warning


@pytest.mark.slow
@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (lambda row: row % 3, "holds class ids [2] outside [0, 2)"),
        (lambda row: 1, "fewer than two classes in the train split"),
    ],
    ids=["three_ids_for_two_classes", "one_class"],
)
def test_a_run_with_an_unlearnable_label_stops_before_training_and_pushes_nothing(
    label, expected, tmp_path, capsys
):
    from benchmarks.transform import LABEL, wide_config, wide_frame

    frame = wide_frame(5, 300)
    frame[LABEL] = [label(row) for row in range(len(frame))]
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "leanline.yaml"
    raw = wide_config(5, data, steps_per_epoch=None)
    raw["model"]["label"]["num_classes"] = 2  # unset, the run would count the ids in the data
    config.write_text(yaml.safe_dump(raw))
    output_dir = tmp_path / "output"
    code, stderr = run_cli(
        "run", "--config", str(config), "--output-dir", str(output_dir), capsys=capsys
    )
    assert code == 2
    assert expected in stderr and "rows per class id" in stderr
    assert not (output_dir / "serving").exists()
