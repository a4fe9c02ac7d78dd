"""The run report, `leanline report`/`runs`, and live progress, on real TFX runs.

One full penguins run (module fixture) feeds the report tests. Two runs of the same
pipeline on a curated schema that the data breaks (the data gate stops them; the second
one reads the cache) feed the progress tests and the report on a run that stopped early.
The live display's parts (estimates from an MLMD store written here, bars fed by a real
Keras fit) and how `report` and `runs` name a run are tested without a pipeline run.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from tfx import v1 as tfx

from components.data_gate.executor import DataValidationError
from pipeline.config import LeanlineConfig, load_config
from pipeline.inputs.datasets import data_path
from pipeline.local_runner import local_beam_args
from pipeline.pipeline import create_pipeline
from pipeline.progress import run_progress

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SECTION_HEADINGS = (
    "Pipeline",
    "Data",
    "Schema",
    "Training",
    "Evaluation",
    "Compression",
    "Serving",
)
# Anything a browser would fetch from elsewhere: src/href/url()/@import to a scheme or //.
REMOTE_REFERENCE = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//|url\(\s*["']?\s*(?:[a-z]+:)?//|@import""",
    re.IGNORECASE,
)


def _penguins(output_dir: Path) -> LeanlineConfig:
    """Penguins, trained briefly, with gates loose enough that the run pushes."""
    return load_config(CONFIGS / "penguins.yaml").with_overrides(
        output_dir=str(output_dir),
        training={"epochs": 20, "batch_size": 32},
        compression={"fine_tune_epochs": 1, "report_examples": 100, "representative_examples": 32},
        evaluation={
            "thresholds": {
                "min_value": 0.34,
                "max_drop_vs_uncompressed": 0.3,
                "max_drop_vs_blessed": 0.3,
            }
        },
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    from pipeline.local_runner import run_local
    from pipeline.report.build import write_report

    config = _penguins(tmp_path_factory.mktemp("penguins") / "output")
    summary = run_local(config)
    report = write_report(config.output_path, config)
    return config, summary, report


# Penguins' columns, with an island domain that lacks Dream: ExampleValidator flags it.
SCHEMA_WITHOUT_DREAM = """
feature { name: "species" type: BYTES }
feature { name: "island" type: BYTES domain: "island" }
feature { name: "bill_length_mm" type: FLOAT }
feature { name: "bill_depth_mm" type: FLOAT }
feature { name: "flipper_length_mm" type: INT }
feature { name: "body_mass_g" type: INT }
feature { name: "sex" type: BYTES }
feature { name: "year" type: INT }
string_domain { name: "island" value: "Biscoe" value: "Torgersen" }
"""
GATE_STOPS_BEFORE = (
    "Transform",
    "Trainer",
    "Compressor",
    "EvaluateCompression",
    "EvaluateTFLiteVsBlessed",
    "ServingPusher",
)


@pytest.fixture(scope="module")
def gated_runs(tmp_path_factory):
    """Two runs that the data gate stops, each under the progress reporter (the store
    does not exist yet when the first starts); returns the config and each run's lines."""
    directory = tmp_path_factory.mktemp("gated")
    schema = directory / "schema.pbtxt"
    schema.write_text(SCHEMA_WITHOUT_DREAM)
    config = _penguins(directory / "output").with_overrides(data={"schema": str(schema)})
    output_dir = config.output_path
    metadata_path = output_dir / "metadata.sqlite"
    pipeline = create_pipeline(
        config,
        data_path=data_path(config, output_dir),
        pipeline_root=str(output_dir / "pipeline"),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(metadata_path)
        ),
        beam_pipeline_args=local_beam_args(config.beam_pipeline_args),
    )
    printed = []
    for _ in range(2):
        stream = io.StringIO()
        with pytest.raises(DataValidationError, match="Dream"):
            with run_progress(metadata_path, stream=stream, poll_seconds=0.2):
                tfx.orchestration.LocalDagRunner().run(pipeline)
        printed.append(stream.getvalue().splitlines())
    return config, printed


# --- progress ----------------------------------------------------------------------------

# No return annotations: TFX reads them at run time, and this module's are strings.


@tfx.dsl.components.component
def Succeed():
    """Does nothing, successfully."""


@tfx.dsl.components.component
def Fail():
    raise ValueError("this component always fails")


LINE = re.compile(
    r"^\[\s*(\d+\.\d)s\] (\w+) (started|complete|cached|failed)(?: \((\d+\.\d) s\))?$"
)


def _events(lines: list[str]) -> list[tuple[str, str]]:
    """(component, state) per printed line; fails on a line of any other shape."""
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return [match.group(2, 3) for match in matches]


@pytest.mark.slow
def test_progress_prints_each_component_start_and_end(gated_runs):
    _, (first, _) = gated_runs
    events = _events(first)
    components = list(dict.fromkeys(component for component, _ in events))
    assert set(components) == {
        "CsvExampleGen",
        "ImportSchemaGen",
        "StatisticsGen",
        "ExampleValidator",
        "LatestBlessedModelResolver",
        "DataGate",
    }
    for component in components:
        ended = "failed" if component == "DataGate" else "complete"
        assert [e for e in events if e[0] == component] == [
            (component, "started"),
            (component, ended),
        ]
    # Lines come in time order, and a component starts after its upstream ends.
    assert events.index(("StatisticsGen", "started")) > events.index(("CsvExampleGen", "complete"))
    assert events[-1] == ("DataGate", "failed")
    parsed = [LINE.match(line) for line in first]
    elapsed = [float(match[1]) for match in parsed]
    assert elapsed == sorted(elapsed)
    # "complete (N s)" is the component's own wall time, its end minus its start.
    example_gen = [match for match in parsed if match[2] == "CsvExampleGen"]
    started, completed = (float(match[1]) for match in example_gen)
    assert float(example_gen[1][4]) == pytest.approx(completed - started, abs=0.15)
    # No Beam pipeline runs in 0.1 s: a zero or a stand-in duration fails here (fast VMs: 0.5 s).
    assert float(example_gen[1][4]) >= 0.2


@pytest.mark.slow
def test_progress_reports_cache_hits_without_a_start(gated_runs):
    _, (_, second) = gated_runs
    events = _events(second)
    for component in ("CsvExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator"):
        assert [e for e in events if e[0] == component] == [(component, "cached")]
    # A failed execution is never cached: the gate runs, and fails, again.
    assert events[-2:] == [("DataGate", "started"), ("DataGate", "failed")]


@pytest.mark.slow
def test_progress_reports_a_failed_component(tmp_path):
    succeed, fail = Succeed(), Fail()
    fail.add_upstream_node(succeed)
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="failing",
        pipeline_root=str(tmp_path / "pipeline"),
        components=[succeed, fail],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")
        ),
    )
    stream = io.StringIO()
    with pytest.raises(ValueError, match="always fails"):
        with run_progress(tmp_path / "metadata.sqlite", stream=stream, poll_seconds=0.2):
            tfx.orchestration.LocalDagRunner().run(pipeline)

    assert [LINE.match(line).group(2, 3) for line in stream.getvalue().splitlines()] == [
        ("Succeed", "started"),
        ("Succeed", "complete"),
        ("Fail", "started"),
        ("Fail", "failed"),
    ]


def _mlmd_store(path: Path):
    """A writable MLMD store with the types and the node context that TFX records for
    the Trainer of pipeline `p` (no pipeline runs here)."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(path)
    store = mlmd.MetadataStore(connection)
    node_type, _ = (
        store.put_context_type(metadata_store_pb2.ContextType(name=name))
        for name in ("node", "pipeline_run")
    )
    store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    store.put_contexts([metadata_store_pb2.Context(type_id=node_type, name="p.Trainer")])
    return store


def _execution(store, run: str, state: int) -> int:
    """An execution of the Trainer in a new pipeline run named `run`."""
    from ml_metadata.proto import metadata_store_pb2

    (run_id,) = store.put_contexts(
        [metadata_store_pb2.Context(type_id=store.get_context_type("pipeline_run").id, name=run)]
    )
    execution = metadata_store_pb2.Execution(
        type_id=store.get_execution_type("Trainer").id, last_known_state=state
    )
    (execution_id,) = store.put_executions([execution])
    node = store.get_context_by_type_and_name("node", "p.Trainer")
    store.put_attributions_and_associations(
        [],
        [
            metadata_store_pb2.Association(execution_id=execution_id, context_id=context)
            for context in (node.id, run_id)
        ],
    )
    return execution_id


def _set_state(store, execution_id: int, state: int) -> None:
    (execution,) = store.get_executions_by_id([execution_id])
    execution.last_known_state = state
    store.put_executions([execution])


def test_a_component_start_carries_how_long_its_last_completed_run_took(tmp_path):
    import time

    from ml_metadata.proto import metadata_store_pb2

    from pipeline.progress import RunWatcher

    Execution = metadata_store_pb2.Execution
    metadata = tmp_path / "metadata.sqlite"
    store = _mlmd_store(metadata)
    first = _execution(store, "run-1", Execution.RUNNING)
    time.sleep(0.3)
    _set_state(store, first, Execution.COMPLETE)
    failed = _execution(store, "run-2", Execution.RUNNING)
    time.sleep(1.5)
    _set_state(store, failed, Execution.FAILED)  # says nothing of how long it takes

    watcher = RunWatcher(metadata, since_ms=int(time.time() * 1000))
    time.sleep(0.01)
    third = _execution(store, "run-3", Execution.RUNNING)
    (started,) = watcher.poll()
    assert (started.component, started.state) == ("Trainer", "started")
    assert 0.3 <= started.estimate < 1.5  # the completed run's seconds, not the failed one's
    _set_state(store, third, Execution.COMPLETE)
    (ended,) = watcher.poll()
    assert (ended.component, ended.state, ended.estimate) == ("Trainer", "complete", None)


def _rendered(progress) -> list[str]:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    console.print(progress)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


def test_the_live_display_draws_a_bar_per_component_and_per_keras_fit(tmp_path, capsys):
    """A real Keras fit inside a run's log: its epoch lines reach the display and the
    log file, not the terminal; a one-epoch fit and an evaluation add no bar."""
    import logging

    import numpy as np
    import tf_keras as keras
    from rich.console import Console

    from pipeline.progress import STARTED, ComponentEvent, KerasEpochs, LiveDisplay
    from pipeline.run_log import run_log

    display = LiveDisplay(Console(file=io.StringIO()))
    seen = []

    class Watch(keras.callbacks.Callback):
        """Runs before Keras' own progress logger: at epoch N's end, epoch N shows."""

        def on_epoch_end(self, epoch, logs=None):
            seen.append([(t.description, t.completed, t.total) for t in display.progress.tasks])
            seen[-1].append(_rendered(display.progress)[-1])

    model = keras.Sequential([keras.layers.Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse")
    rows, labels = np.random.default_rng(0).random((64, 3)), np.zeros(64)
    with run_log(tmp_path) as log_path:
        epochs = KerasEpochs(display.epoch_started, display.epoch_ended)
        logging.getLogger("absl").addHandler(epochs)
        try:
            display.show([ComponentEvent("Trainer", STARTED, 0.0, estimate=600.0)])
            display.show([ComponentEvent("Compressor", STARTED, 0.0, estimate=0.0)])
            model.fit(rows, labels, epochs=3, batch_size=16, verbose=2, callbacks=[Watch()])
            after_fit = [task.description for task in display.progress.tasks]
            model.fit(rows, labels, epochs=1, batch_size=16, verbose=2)
            model.evaluate(rows, labels, verbose=2)
            after_one_epoch = [task.description for task in display.progress.tasks]
        finally:
            logging.getLogger("absl").removeHandler(epochs)
    lines = _rendered(display.progress)
    display.show([ComponentEvent("Trainer", "complete", 9.0, seconds=9.0)])

    for number, state in enumerate(seen, start=1):
        *tasks, fit_line = state
        assert [task[0] for task in tasks] == ["Trainer", "Compressor", f"  epoch {number}/3"]
        assert tasks[2][1:] == (number - 1, 3)  # epochs behind it, of 3
        # The time left at the pace of the epochs so far, once one has ended.
        assert ("left" in fit_line) == (number > 1), fit_line
    assert after_fit == after_one_epoch == ["Trainer", "Compressor"]
    assert re.search(r"Trainer .* \d+ s, about \d+ s left$", lines[0]), lines
    assert re.search(r"Compressor .* \d+ s, past the estimate of 0 s$", lines[1]), lines
    assert [task.description for task in display.progress.tasks] == ["Compressor"]
    # Keras printed nothing; its lines are in the run's log file.
    assert capsys.readouterr().out == ""
    log = log_path.read_text()
    assert [line.split("absl: ")[1] for line in log.splitlines() if "Epoch" in line] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    assert len(re.findall(r"INFO absl: 4/4 - .*loss", log)) == 4  # 3 + 1 epoch ends
    assert keras.utils.is_interactive_logging_enabled()  # as it was before the run


@pytest.mark.slow
def test_report_on_a_run_the_data_gate_stopped(gated_runs):
    from pipeline.report.build import write_report

    config, _ = gated_runs
    page = write_report(config.output_path, config).read_text()

    assert "could not be built" not in page
    for heading in SECTION_HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    assert re.search(r">failed</span>", page)  # the run's status
    assert re.search(r">DataGate</text>.*?>failed · \d+\.\d s</text>", page)
    for component in GATE_STOPS_BEFORE:
        assert re.search(f">{component}</text>[^<]*<text[^>]*>not run</text>", page), component
    assert page.count(">not run</text>") == len(GATE_STOPS_BEFORE)
    assert "2 anomalies. The data gate stopped the run." in page
    assert "column &#x27;island&#x27;: Unexpected string values" in page
    assert "Biscoe, Torgersen" in page  # the curated schema's domain
    assert re.search(r"train: \d+ rows", page)
    assert "No training history" in page
    assert "No compression report" in page
    assert "Nothing was pushed: the run stopped before the pusher" in page
    assert "<img" not in page


def test_report_without_any_run(tmp_path):
    from pipeline.report.build import write_report

    config = _penguins(tmp_path)
    page = write_report(tmp_path, config).read_text()
    assert f"No run of &#x27;{config.name}&#x27; is recorded" in page
    assert "No statistics" in page
    assert "No evaluation" in page


# --- the full run --------------------------------------------------------------------------


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


@pytest.mark.slow
def test_report_has_every_section_and_its_plots(full_run):
    config, summary, report = full_run
    page = report.read_text()

    assert summary.pushed, summary
    assert report == config.output_path / "report.html"
    assert "could not be built" not in page
    for heading in SECTION_HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    assert REMOTE_REFERENCE.search(page) is None
    assert "<script" not in page and "<link" not in page

    images = _images(page)
    assert len(images) == 2
    for source in images:
        path = report.parent / source
        assert path.is_file(), source
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.parent == config.output_path / "report"


@pytest.mark.slow
def test_report_content_matches_the_run(full_run):
    config, summary, report = full_run
    page = report.read_text()

    for split, rows in summary.rows.items():
        assert f"{split}: {rows} rows" in page
    assert "No anomalies" in page
    for feature in ("bill_length_mm", "island", "species"):
        assert f"<td>{feature}</td>" in page
    assert "Biscoe, Dream, Torgersen" in page  # the schema's island domain
    assert "20 epochs of" in page
    assert page.count("blessed</span>") == 2 and "not blessed" not in page
    assert "island = Dream" in page  # the configured slice
    # Both Evaluators' tables, EvaluateVsBlessed's without a baseline (nothing blessed yet).
    assert page.count("<td>Overall</td>") == 2
    assert "No baseline model yet" in page
    assert "sparse_categorical_accuracy &gt;= 0.34" in page  # the recorded threshold
    assert "compressed TFLite" in page and "Sparsity by layer" in page
    assert f"This run pushed version {summary.pushed_version} to" in page
    assert "<td>0 Adelie, 1 Chinstrap, 2 Gentoo</td>" in page  # the version's classes by id
    assert "complete · " in page and ">not run</text>" not in page


def _chromium() -> str:
    """Headless Chromium, which scripts/bootstrap installs (`make setup`); tests install
    nothing, so without one the test skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "no headless browser: chromium is not on PATH (scripts/bootstrap installs "
            "Debian's with apt-get when run as root)"
        )
    return found


@pytest.mark.slow
def test_report_renders_in_headless_chromium(full_run):
    from PIL import Image, ImageStat

    _, _, report = full_run
    screenshot = report.parent / "report-screenshot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={screenshot}",
                "--window-size=1280,2000",
                report.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    image = Image.open(screenshot).convert("L")
    assert image.size == (1280, 2000)
    # A rendered page, not a blank or error page: many shades, real contrast.
    assert len(image.getcolors(maxcolors=256 * 256) or range(10_000)) > 50
    assert ImageStat.Stat(image).stddev[0] > 20


@pytest.mark.slow
def test_runs_lists_the_run(full_run, capsys):
    from pipeline.cli import report as cli

    config, summary, _ = full_run
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["runs", "--run-dir", str(config.output_path)])
    assert args.handler(args) == 0

    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["run", "pipeline", "started"]
    cells = row.split()
    assert cells[0] == summary.run_id and cells[1] == config.name
    assert "complete" in cells and "yes" in cells and summary.pushed_version in cells
    metric = cells[cells.index("sparse_categorical_accuracy") + 1]
    assert float(metric) == pytest.approx(
        summary.eval_metrics["candidate"]["sparse_categorical_accuracy"], abs=1e-4
    )


@pytest.mark.slow
def test_report_command_rewrites_the_page(full_run, tmp_path, capsys):
    from pipeline.cli import report as cli

    config, _, report = full_run
    config_file = tmp_path / "penguins.yaml"
    config_file.write_text(yaml.safe_dump(json.loads(config.model_dump_json(by_alias=True))))
    report.unlink()
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["report", "--run-dir", str(config.output_path), "--config", str(config_file)]
    )

    assert args.handler(args) == 0
    assert capsys.readouterr().out.strip() == f"wrote {report}"
    assert "<h2>Compression</h2>" in report.read_text()


@pytest.mark.slow
def test_report_takes_the_run_directory_alone(full_run, capsys):
    from pipeline.cli import report as cli
    from pipeline.config import load_run_config
    from pipeline.layout import RUN_CONFIG_FILE

    config, _, report = full_run
    saved = load_run_config(config.output_path)
    assert saved.model.model_dump() == config.model.model_dump()
    assert saved.output_path == config.output_path
    assert (config.output_path / RUN_CONFIG_FILE).is_file()
    report.unlink()
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["report", "--run-dir", str(config.output_path)])

    assert args.handler(args) == 0
    assert capsys.readouterr().out.strip() == f"wrote {report}"
    assert "<h2>Compression</h2>" in report.read_text()


def test_report_of_a_directory_without_a_saved_config_says_so(tmp_path):
    from pipeline.config import ConfigError, load_run_config

    with pytest.raises(ConfigError, match="holds no leanline.yaml"):
        load_run_config(tmp_path)


def test_report_and_runs_name_the_run_as_every_command_does(tmp_path, capsys):
    """--run-dir DIR, or --config FILE for its output_dir (--run-dir wins given both);
    the old spellings `report DIR` and `runs --output-dir DIR` still work, with a note."""
    from pipeline import cli
    from pipeline.config import write_run_config

    def leanline(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["--verbose", *argv])
        printed = capsys.readouterr()
        return code, printed.out.strip(), printed.err.strip()

    run_dir, other = tmp_path / "run", tmp_path / "other"
    run_dir.mkdir()
    other.mkdir()
    saved = write_run_config(_penguins(run_dir), run_dir)
    note = "leanline: note: `leanline {} DIR` is deprecated and goes in the next release; use `leanline {} --run-dir DIR`"

    wrote = (0, f"wrote {run_dir / 'report.html'}", "")
    assert leanline("report", "--run-dir", str(run_dir)) == wrote
    assert leanline("report", "--config", str(saved)) == wrote
    assert leanline("report", str(run_dir)) == (*wrote[:2], note.format("report", "report"))
    assert leanline("report", "--config", str(saved), "--run-dir", str(other)) == (
        0,
        f"wrote {other / 'report.html'}",
        "",
    )
    assert "No run of &#x27;penguins&#x27; is recorded" in (other / "report.html").read_text()

    no_runs = f"leanline: error: no runs recorded: {run_dir / 'metadata.sqlite'} does not exist"
    assert leanline("runs", "--run-dir", str(run_dir)) == (2, "", no_runs)
    assert leanline("runs", "--config", str(saved)) == (2, "", no_runs)
    assert leanline("runs", "--output-dir", str(run_dir)) == (
        2,
        "",
        f"{note.format('runs --output-dir', 'runs')}\n{no_runs}",
    )

    code, _, stderr = leanline("report", str(run_dir), "--run-dir", str(other))
    assert (code, stderr.splitlines()[-1]) == (
        2,
        f"leanline: error: the run directory is named twice ({run_dir} and {other}): keep --run-dir",
    )
    code, _, stderr = leanline("runs")
    assert (code, stderr) == (
        2,
        "leanline: error: name the run: --run-dir DIR, or --config FILE for the run in its output_dir",
    )
