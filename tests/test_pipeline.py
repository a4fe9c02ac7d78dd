"""The whole pipeline, end to end, on small slices of the bundled data (real TFX runs)."""

from __future__ import annotations

import csv
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from fixtures_models import QUICK_COMPRESSION, QUICK_TAXI_RUN, quick_config

from models.common.export import saved_classes
from models.common.tflite_format import tflite_classes
from models.errors import UserError
from pipeline.config import LeanlineConfig, custom_config, load_config
from pipeline.inputs.datasets import bundled_csv
from pipeline.local_runner import run_local
from serving.client import rows_to_examples

pytestmark = pytest.mark.slow
_KIND_OF_DTYPE = {tf.float32: "float", tf.int64: "int", tf.string: "bytes"}


def _csv_head(name: str, rows: int, directory: Path) -> Path:
    """The first `rows` rows of a bundled dataset, as its own CSV file."""
    lines = bundled_csv(name, directory / "bundled").read_text().splitlines(keepends=True)
    path = directory / "input" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines[: rows + 1]))
    return path


def _versions(config: LeanlineConfig) -> list[str]:
    if not config.serving_model_dir.exists():
        return []
    return sorted(p.name for p in config.serving_model_dir.iterdir() if p.name.isdigit())


def _predict_rows(model_dir: Path, csv_path: Path, count: int) -> np.ndarray:
    """Serves the first `count` CSV rows through `serving_default`, the way TF Serving would:
    serialized tf.Examples of the model's raw features, typed as its `serving_raw` inputs."""
    model = tf.saved_model.load(str(model_dir))
    inputs = model.signatures["serving_raw"].structured_input_signature[1]
    kinds = {name: _KIND_OF_DTYPE[spec.dtype] for name, spec in inputs.items()}
    with csv_path.open(newline="") as handle:
        rows = [
            {column: row[column] for column in kinds}
            for row in itertools.islice(csv.DictReader(handle), count)
        ]
    outputs = model.signatures["serving_default"](
        examples=tf.constant(rows_to_examples(rows, kinds))
    )
    return outputs["outputs"].numpy()


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    """One full taxi run on 2,000 rows; tests below read what it left."""
    directory = tmp_path_factory.mktemp("taxi")
    data = _csv_head("taxi", 2000, directory)
    config = quick_config("taxi", directory / "output", **QUICK_TAXI_RUN)
    summary = run_local(config, data=str(data))
    return config, data, summary


def test_taxi_run_pushes_a_servable_compressed_model(taxi_run):
    config, data, summary = taxi_run
    assert summary.error is None
    assert summary.blessings == {
        "EvaluateCompression": True,
        "SliceGate": True,
        "EvaluateTFLiteVsBlessed": True,
    }
    assert summary.pushed
    (version,) = _versions(config)
    version_dir = config.serving_model_dir / version
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert (config.tflite_model_dir / version / "model.tflite").stat().st_size > 0

    probabilities = _predict_rows(version_dir, data, 8)
    assert probabilities.shape == (8, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    # Both formats name the classes: the SavedModel's `classes`, the TFLite's metadata.
    tflite = (config.tflite_model_dir / version / "model.tflite").read_bytes()
    assert saved_classes(str(version_dir)) == tflite_classes(tflite) == ["0", "1"]


def _eval_examples(config: LeanlineConfig) -> tf.Tensor:
    """Every serialized eval example of the run, as ExampleGen wrote them."""
    files = sorted(config.output_path.glob("pipeline/CsvExampleGen/examples/*/Split-eval/*"))
    return tf.constant(
        list(
            tf.data.TFRecordDataset(
                [str(f) for f in files], compression_type="GZIP"
            ).as_numpy_iterator()
        )
    )


def test_the_version_holds_an_end_to_end_tflite_that_answers_as_the_saved_model(taxi_run):
    from models.common.data import raw_rows
    from models.common.export import is_present, raw_specs
    from models.common.measurement import predict_in_batches
    from models.common.tflite import TfliteModel
    from models.common.tflite_format import tf_serving_signatures
    from serving.check import check_servable, flex_or_custom_ops

    config, _, _ = taxi_run
    (version,) = _versions(config)
    version_dir = config.serving_model_dir / version
    content = (version_dir / "model.tflite").read_bytes()
    assert content == (config.tflite_model_dir / version / "model.tflite").read_bytes()
    assert flex_or_custom_ops(content) == []
    # The raw features of serving_raw, the Transform inside: no Transform output as input.
    model = TfliteModel(content)
    specs = raw_specs(str(version_dir))
    assert {i["key"] for i in model.inputs()} == set(specs)
    assert not any(i["key"].endswith("_xf") for i in model.inputs())

    # TF Serving reads the signature from the metadata: each feature to its input tensor.
    (signature,) = tf_serving_signatures(content).values()
    assert set(signature.inputs) == set(specs)
    assert {i.name for i in signature.inputs.values()} == {
        d["name"] for d in model.interpreter.get_input_details()
    }

    # The whole eval split, missing values sent as MISSING_VALUES, against the SavedModel
    # serving the same rows as tf.Examples with empty cells.
    examples = _eval_examples(config)
    rows, servable = raw_rows(examples, specs)
    assert servable.all()
    missing = np.any([~is_present(tf.constant(v, specs[n].dtype)) for n, v in rows.items()], axis=0)
    assert 0.1 < missing.mean() < 0.9  # the taxi data has gaps: both kinds of row are covered
    tflite = predict_in_batches(model, rows).reshape(-1)
    saved = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    served = saved(examples=examples)["outputs"].numpy().reshape(-1)
    assert np.mean((tflite > 0.5) == (served > 0.5)) >= 0.99
    assert np.abs(tflite - served).max() < 0.1  # int8 against float kernels
    raw = tf.saved_model.load(str(version_dir)).signatures["serving_raw"]
    as_raw = raw(**{n: tf.constant(v, specs[n].dtype) for n, v in rows.items()})["outputs"]
    np.testing.assert_allclose(as_raw.numpy().reshape(-1), served, atol=1e-6)

    # Warm-up requests call the signature both formats have; check-servable runs them on both.
    report = check_servable(version_dir)
    assert report.tflite and report.warmup_requests > 0
    assert report.tflite_latency_p50_ms is not None


def test_the_end_to_end_transform_is_proven_equal_to_tfts(taxi_run):
    """The float end-to-end TFLite, the builtin Transform and the float model, answers as
    the Trainer's SavedModel, TFT's Transform and the same model, to float rounding."""
    import tensorflow_transform as tft
    import tf_keras as keras

    from models.common.data import raw_rows
    from models.common.end_to_end import builtin_transform_for, to_end_to_end_tflite
    from models.common.export import raw_specs
    from models.common.measurement import predict_in_batches
    from models.common.tflite import TfliteModel

    config, _, _ = taxi_run
    (trainer_dir,) = config.output_path.glob("pipeline/Trainer/model/*")
    (transform_dir,) = config.output_path.glob("pipeline/Transform/transform_graph/*")
    saved_model_dir = str(trainer_dir / "Format-Serving")
    specs = raw_specs(saved_model_dir)
    rows, _ = raw_rows(_eval_examples(config), specs)
    float_model = keras.models.load_model(str(trainer_dir / "keras_model.keras"), compile=False)
    transform = builtin_transform_for(config.model, tft.TFTransformOutput(str(transform_dir)))
    tflite = TfliteModel(to_end_to_end_tflite(float_model, transform, specs))
    saved = tf.saved_model.load(saved_model_dir).signatures["serving_raw"]
    served = saved(**{n: tf.constant(v, specs[n].dtype) for n, v in rows.items()})["outputs"]
    np.testing.assert_allclose(predict_in_batches(tflite, rows), served.numpy(), atol=1e-5)


def _latest_artifact(config: LeanlineConfig, component: str, output: str) -> Path:
    runs = config.output_path.glob(f"pipeline/{component}/{output}/*")
    return max(runs, key=lambda path: int(path.name))


def _tfma_overall(evaluation_dir: Path) -> dict[tuple[str, str], float]:
    """The overall slice's metrics of an Evaluator run: (metric, model) -> value."""
    import tensorflow_model_analysis as tfma

    for per_slice in tfma.load_metrics(str(evaluation_dir)):
        if not per_slice.slice_key.single_slice_keys:
            return {
                (entry.key.name, entry.key.model_name): entry.value.double_value.value
                for entry in per_slice.metric_keys_and_values
                if not entry.key.is_diff
            }
    raise AssertionError(f"no overall slice in {evaluation_dir}")


def test_the_compression_gate_judges_both_end_to_end_tflites_on_the_whole_eval_split(taxi_run):
    """TFMA ran the shipped TFLite file and the float one of the run (not the SavedModels)
    on every eval row: its accuracies are those of the two files run here by hand."""
    from models.common.data import raw_rows
    from models.common.export import raw_specs
    from models.common.measurement import predict_in_batches
    from models.common.tflite import TfliteModel

    config, _, summary = taxi_run
    (version,) = _versions(config)
    shipped = config.serving_model_dir / version / "model.tflite"
    evaluation = _latest_artifact(config, "EvaluateCompression", "evaluation")
    models = json.loads((evaluation / "eval_config.json").read_text())["evalConfig"]["modelSpecs"]
    assert {m["modelType"] for m in models} == {"tf_lite"}
    float_tflite = _latest_artifact(config, "Compressor", "float_model") / "Format-Serving/tflite"

    examples = _eval_examples(config)
    specs = raw_specs(str(config.serving_model_dir / version))
    rows, _ = raw_rows(examples, specs)
    labels = (
        tf.saved_model.load(str(config.serving_model_dir / version))
        .signatures["transform_features"](examples=examples)["label"]
        .numpy()
    )
    tfma_metrics = _tfma_overall(evaluation)
    assert tfma_metrics["example_count", "candidate"] == len(labels)
    for model, path in (("candidate", shipped), ("baseline", float_tflite)):
        predicted = predict_in_batches(TfliteModel(path.read_bytes()), rows).reshape(-1) > 0.5
        accuracy = np.mean(predicted == (labels == 1))
        assert tfma_metrics["binary_accuracy", model] == pytest.approx(
            accuracy, abs=1.5 / len(labels)
        )
    assert summary.gated_format == "end-to-end TFLite"


def _flipped_on(keras_model, input_name: str, value: int):
    """The model with its probability flipped on the rows whose input `input_name` is
    `value`: a model that loses on that slice only."""
    import tf_keras as keras

    inputs = {
        name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
        for name, tensor in zip(keras_model.input_names, keras_model.inputs, strict=True)
    }
    probability = keras_model(inputs)
    flipped = keras.layers.Lambda(lambda t: tf.where(tf.equal(t[1], value), 1.0 - t[0], t[0]))(
        [probability, inputs[input_name]]
    )
    return keras.Model(inputs, flipped)


def _compression_gate(config, candidate_dir: Path, work: Path):
    """The run's compression gate (EvaluateCompression's Evaluator, then the SliceGate) on
    a candidate model directory against the run's float model; returns both blessings
    and the evaluation."""
    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.utils import json_utils, proto_utils

    from components.slice_gate.executor import Executor as SliceGateExecutor
    from pipeline.evaluation import eval_config

    examples = tfx_artifact("Examples", _latest_artifact(config, "Compressor", "tflite_examples"))
    examples.split_names = '["eval"]'
    evaluation = tfx_artifact("ModelEvaluation", work / "evaluation")
    evaluator_blessing = tfx_artifact("ModelBlessing", work / "evaluator_blessing")
    thresholds = config.evaluation.thresholds
    evaluator_executor.Executor().Do(
        {
            "examples": [examples],
            "model": [tfx_artifact("Model", candidate_dir)],
            "baseline_model": [
                tfx_artifact("Model", _latest_artifact(config, "Compressor", "float_model"))
            ],
        },
        {"evaluation": [evaluation], "blessing": [evaluator_blessing]},
        {
            "eval_config": proto_utils.proto_to_json(
                eval_config(config.evaluation, thresholds.vs_uncompressed, tflite=True)
            ),
            "example_splits": '["eval"]',
        },
    )
    gate_blessing = tfx_artifact("ModelBlessing", work / "slice_gate")
    SliceGateExecutor().Do(
        {"evaluation": [evaluation], "evaluator_blessing": [evaluator_blessing]},
        {"blessing": [gate_blessing]},
        {"thresholds": json_utils.dumps(thresholds.model_dump(mode="json"))},
    )
    return evaluator_blessing, gate_blessing, evaluation


def test_the_slice_gate_refuses_a_model_that_loses_on_one_slice_only(taxi_run, tmp_path):
    """A candidate equal to the run's float model but wrong on cash trips: the overall
    gate (loosened) passes, the slice gate names the slice, its size and both values,
    and the pusher publishes nothing. The same slice below min_slice_examples passes."""
    import shutil

    import tensorflow_transform as tft
    import tf_keras as keras

    from components.serving_pusher import executor as pusher
    from models.common.end_to_end import builtin_transform_for, to_end_to_end_tflite
    from models.common.export import raw_specs

    config, _, _ = taxi_run
    trainer_dir = _latest_artifact(config, "Trainer", "model")
    transform_output = tft.TFTransformOutput(
        str(_latest_artifact(config, "Transform", "transform_graph"))
    )
    cash = transform_output.vocabulary_by_name("payment_type").index(b"Cash")
    float_model = keras.models.load_model(str(trainer_dir / "keras_model.keras"), compile=False)
    serving = _latest_artifact(config, "Compressor", "float_model") / "Format-Serving"
    candidate = tmp_path / "candidate"
    shutil.copytree(serving, candidate / "Format-Serving")
    (candidate / "Format-Serving" / "tflite").write_bytes(
        to_end_to_end_tflite(
            _flipped_on(float_model, "payment_type_xf", cash),
            builtin_transform_for(config.model, transform_output),
            raw_specs(str(serving)),
        )
    )
    eval_rows = tf.io.parse_example(
        _eval_examples(config), {"payment_type": tf.io.VarLenFeature(tf.string)}
    )["payment_type"].values.numpy()
    cash_rows = int(np.sum(eval_rows == b"Cash"))
    loose_overall = {"min_value": 0.0, "max_drop_vs_uncompressed": 1.0, "max_slice_drop": 0.05}

    gated = config.with_overrides(
        evaluation={"thresholds": {**loose_overall, "min_slice_examples": cash_rows}}
    )
    evaluator_blessing, gate_blessing, evaluation = _compression_gate(
        gated, candidate, tmp_path / "gated"
    )
    assert evaluator_blessing.get_int_custom_property("blessed") == 1
    assert gate_blessing.get_int_custom_property("blessed") == 0
    (failure,) = gate_blessing.get_string_custom_property("slice_failures").splitlines()
    assert failure.startswith(f"slice payment_type=Cash ({cash_rows} eval rows): binary_accuracy ")
    assert re.search(r"\d\.\d{4} uncompressed -> \d\.\d{4} compressed", failure)
    assert "allowed down to -0.0500" in failure

    pushed_model = tfx_artifact("PushedModel", tmp_path / "pushed_model")
    pusher.Executor().Do(
        {
            pusher.MODEL_KEY: [tfx_artifact("Model", candidate)],
            pusher.COMPRESSION_BLESSING_KEY: [gate_blessing],
            pusher.COMPRESSION_EVALUATION_KEY: [evaluation],
        },
        {pusher.PUSHED_MODEL_KEY: [pushed_model]},
        {pusher.SERVING_MODEL_DIR_KEY: str(tmp_path / "serving"), pusher.MODEL_NAME_KEY: "taxi"},
    )
    assert pushed_model.get_int_custom_property("pushed") == 0
    assert failure in pushed_model.get_string_custom_property("not_pushed_reason")
    assert not (tmp_path / "serving").exists()

    small = config.with_overrides(
        evaluation={"thresholds": {**loose_overall, "min_slice_examples": cash_rows + 1}}
    )
    _, gate_blessing, _ = _compression_gate(small, candidate, tmp_path / "small")
    assert gate_blessing.get_int_custom_property("blessed") == 1


def tfx_artifact(kind: str, uri: Path):
    from tfx.types import standard_artifacts

    instance = getattr(standard_artifacts, kind)()
    instance.uri = str(uri)
    uri.mkdir(parents=True, exist_ok=True)
    return instance


def test_serving_commands_take_the_run_directory_alone(taxi_run, tmp_path, capsys):
    from pipeline import cli

    config, _, _ = taxi_run
    run_dir = str(config.output_path)
    configs = tmp_path / "configs"
    assert (
        cli.main(
            ["--verbose", "serving-config", "--run-dir", run_dir, "--output-dir", str(configs)]
        )
        == 0
    )
    models_config = (configs / "models.config").read_text()
    assert f'base_path: "{config.serving_model_dir}"' in models_config
    assert f"{config.name} ({config.serving_model_dir})" in capsys.readouterr().out
    manifests = tmp_path / "manifests"
    assert (
        cli.main(
            ["--verbose", "serving-manifests", "--run-dir", run_dir, "--output-dir", str(manifests)]
        )
        == 0
    )
    assert config.name in next(manifests.iterdir()).read_text()


def test_taxi_run_summary_records_every_component(taxi_run):
    config, _, summary = taxi_run
    written = json.loads((config.output_path / "run_summary.json").read_text())
    ids = [component["id"] for component in written["components"]]
    for expected in (
        "CsvExampleGen",
        "DataGate",
        "Transform",
        "Trainer",
        "Compressor",
        "ServingPusher",
    ):
        assert expected in ids
    assert all(component["status"] == "complete" for component in written["components"])
    assert written["rows"]["train"] + written["rows"]["eval"] == 2000
    # The compression result leads, in the file and in the printed table.
    assert next(iter(written)) == "result"
    result = written["result"]
    shipped = result["shipped_tflite"]
    assert shipped["zipped_ratio"] > 1 and result["pushed"] is True
    assert shipped["quality_metric"] == "accuracy"
    assert shipped["quality_change"] == pytest.approx(
        shipped["compressed_quality"] - shipped["float_quality"]
    )
    from pipeline.summary import format_table

    # After the shipped file's line and the model part's (checked below).
    recipe_line = format_table(summary).splitlines()[3]
    # The search's choice, also in MLMD (the report artifact's properties).
    report = json.loads(
        (_latest_artifact(config, "Compressor", "compression_report") / "report.json").read_text()
    )
    chosen = report["search"]["chosen"]
    assert result["compression_recipe"] == report["recipe"] == chosen
    assert result["search_trials"] == sum(
        trial["zipped_bytes"] is not None for trial in report["search"]["trials"]
    )
    assert (
        recipe_line
        == f"  recipe: {chosen}, chosen by the search in {result['search_trials']} trials"
    )
    assert 0.5 <= written["eval_metrics"]["candidate"]["binary_accuracy"] <= 1
    assert written["pushed_path"].startswith(str(config.serving_model_dir))


def test_the_report_draws_the_search_frontier_and_lists_every_trial(taxi_run):
    config, _, _ = taxi_run
    page = (config.output_path / "report.html").read_text()
    report = json.loads(
        (_latest_artifact(config, "Compressor", "compression_report") / "report.json").read_text()
    )

    assert "<h3>Compression search</h3>" in page
    assert f"Chosen: {report['search']['chosen']}." in page
    assert f"{report['search']['chosen']} (chosen)" in page
    for trial in report["search"]["trials"]:
        assert trial["recipe"] in page
    plot = config.output_path / "report" / "search_frontier.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _zipped_bytes(path: Path) -> int:
    from models.common.measurement import tflite_size

    return tflite_size(path.read_bytes()).zipped_bytes


def test_the_summary_and_the_report_open_with_the_shipped_files_ratio(taxi_run):
    """The headline is the pushed model.tflite (end to end, the Transform inside) against
    the float end-to-end TFLite, each zipped here; the model part stands beside it."""
    from pipeline.summary import format_table

    config, _, summary = taxi_run
    (version,) = _versions(config)
    pushed = _zipped_bytes(config.serving_model_dir / version / "model.tflite")
    float_end_to_end = _zipped_bytes(
        _latest_artifact(config, "Compressor", "float_model") / "Format-Serving/tflite"
    )
    model_part = _zipped_bytes(
        _latest_artifact(config, "Compressor", "compressed_model")
        / "Format-TFLite/transformed_inputs.tflite"
    )
    ratio = float_end_to_end / pushed
    # The pushed file holds the Transform as well as the model part.
    assert model_part < pushed

    result = json.loads((config.output_path / "run_summary.json").read_text())["result"]
    shipped = result["shipped_tflite"]
    assert (shipped["file"], shipped["zipped_bytes"]) == ("model.tflite", pushed)
    assert shipped["float_zipped_bytes"] == float_end_to_end
    assert shipped["zipped_ratio"] == pytest.approx(ratio)
    assert result["model_part"]["file"] == "transformed_inputs.tflite"
    assert result["model_part"]["zipped_bytes"] == model_part
    end_to_end = json.loads(
        (_latest_artifact(config, "Compressor", "compression_report") / "report.json").read_text()
    )["end_to_end"]
    assert shipped["compressed_quality"] == end_to_end["quality"]["compressed_tflite"]["accuracy"]
    assert shipped["float_quality"] == end_to_end["quality"]["float_tflite"]["accuracy"]
    assert shipped["eval_rows"] == end_to_end["eval_rows"]

    headline = (
        f"{ratio:.1f}x smaller zipped than the float end-to-end TFLite "
        f"({pushed:,} against {float_end_to_end:,} bytes)"
    )
    shipped_line, model_part_line = format_table(summary).splitlines()[1:3]
    assert shipped_line.startswith("  shipped: model.tflite (end to end, raw features in")
    assert headline in shipped_line
    assert shipped_line.endswith(f"; pushed as version {version}")
    assert model_part_line.startswith("  model part: transformed_inputs.tflite (the model alone")

    page = (config.output_path / "report.html").read_text()
    opening = page[page.index("<h2>Result</h2>") : page.index("<h2>Pipeline</h2>")]
    assert f"This run pushed version {version} to" in opening
    assert "Shipped: model.tflite (end to end, raw features in" in opening
    assert headline in opening
    assert "Model part: transformed_inputs.tflite (the model alone" in opening
    assert (
        "Gates: EvaluateCompression passed, SliceGate passed, EvaluateTFLiteVsBlessed passed."
        in opening
    )


def test_slices_are_listed_in_natural_order(taxi_run):
    """Hours as numbers (0, 1, 2, ..., 10), in the report's tables and the slice gate's."""
    from components.slice_gate.executor import slice_results

    config, _, _ = taxi_run
    page = (config.output_path / "report.html").read_text()
    first_gate = page[page.index("<h3>EvaluateCompression") :]
    first_gate = first_gate[: first_gate.index("</table>")]
    hours = re.findall(r"<td>trip_start_hour = (\d+)</td>", first_gate)
    # Hours below and above 10: text order would differ.
    assert sorted(hours) != sorted(hours, key=int)
    assert hours == sorted(hours, key=int)
    assert first_gate.index("<td>Overall</td>") < first_gate.index("<td>payment_type = ")
    assert first_gate.index("<td>payment_type = ") < first_gate.index("<td>trip_start_hour = ")

    evaluation = _latest_artifact(config, "EvaluateCompression", "evaluation")
    names = [result.name for result in slice_results(str(evaluation), "binary_accuracy")]
    gated_hours = [name.split("=")[1] for name in names if name.startswith("trip_start_hour=")]
    assert gated_hours == hours


def _leanline_run(
    config: LeanlineConfig, data: Path, work: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict, list[str]]:
    """`leanline run` of `config` in this process (--verbose keeps the session's logging);
    returns the exit status, the run summary written and leanline's own stderr lines."""
    from pipeline import cli
    from pipeline.config import write_run_config
    from pipeline.layout import SUMMARY_FILE

    argv = ["run", "--config", str(write_run_config(config, work))]
    argv += ["--output-dir", str(config.output_path), "--data", str(data)]
    code = cli.main(["--verbose", *argv])
    written = json.loads((config.output_path / SUMMARY_FILE).read_text())
    stderr = capsys.readouterr().err.splitlines()
    return code, written, [line for line in stderr if line.startswith("leanline")]


def test_rerun_with_nothing_changed_is_cached_and_pushes_nothing_new(taxi_run, tmp_path, capsys):
    """Nothing new to push is success: exit status 0."""
    config, data, _ = taxi_run
    pushed_before = _versions(config)

    code, summary, stderr = _leanline_run(config, data, tmp_path, capsys)

    assert (code, stderr) == (0, [])
    statuses = {component["id"]: component["status"] for component in summary["components"]}
    for cached in ("CsvExampleGen", "Transform", "Trainer", "Compressor", "EvaluateCompression"):
        assert statuses[cached] == "cached", statuses
    assert not summary["pushed"] and summary["already_pushed"]
    assert "already the last pushed" in summary["not_pushed_reason"]
    assert _versions(config) == pushed_before


def test_a_failed_gate_keeps_the_pushed_model(taxi_run, tmp_path, capsys):
    """A refused model is neither success nor an error: exit status 3, the reason in
    one line on stderr."""
    from models.errors import EXIT_REFUSED

    config, data, _ = taxi_run
    pushed_before = _versions(config)

    unmeetable = config.with_overrides(evaluation={"thresholds": {"min_value": 0.99}})
    code, summary, stderr = _leanline_run(unmeetable, data, tmp_path, capsys)

    assert code == EXIT_REFUSED == 3
    statuses = {component["id"]: component["status"] for component in summary["components"]}
    for cached in ("CsvExampleGen", "Transform", "Trainer", "Compressor"):
        assert statuses[cached] == "cached", statuses
    assert summary["blessings"]["EvaluateCompression"] is False
    assert not summary["pushed"] and not summary["already_pushed"]
    assert "did not bless" in summary["not_pushed_reason"]
    assert stderr == [f"leanline: not pushed: {summary['not_pushed_reason']}"]
    assert _versions(config) == pushed_before


def test_the_search_chooses_before_any_eval_row_is_read(taxi_run, tmp_path):
    """Everything the Compressor does before it reads the eval split (its inputs, the
    search, the chosen model), run on a copy of the transformed examples without the
    eval split: a read of it would fail."""
    import shutil

    import tensorflow_transform as tft
    import tf_keras as keras

    from models.common.compress import compress_as_configured
    from models.common.compression import compression_inputs
    from models.common.export import keras_model_path
    from models.custom_config import compression_config

    config, _, _ = taxi_run
    transformed = _latest_artifact(config, "Transform", "transformed_examples")
    train_only = tmp_path / "Split-train"
    shutil.copytree(transformed / "Split-train", train_only)
    model_dir = _latest_artifact(config, "Trainer", "model") / "Format-Serving"
    teacher = keras.models.load_model(keras_model_path(str(model_dir)), compile=False)
    transform = tft.TFTransformOutput(str(_latest_artifact(config, "Transform", "transform_graph")))
    compression = compression_config(custom_config(config))

    inputs = compression_inputs(
        str(train_only / "*"), transform, config.model, config.training, compression
    )
    compressed, recipe, searched = compress_as_configured(
        teacher, config.model, compression, inputs, transform
    )

    assert searched.files and all(Path(f).parent == train_only for f in searched.files)
    train_rows = sum(1 for _ in tf.data.TFRecordDataset(searched.files, "GZIP"))
    assert searched.validation_examples == -(-train_rows // 5)  # 1 in 5 held out
    assert compressed.tflite and recipe.search is None
    # The run's own Compressor records the same: train files only.
    report = json.loads(
        (_latest_artifact(config, "Compressor", "compression_report") / "report.json").read_text()
    )
    assert report["search"]["files"]
    assert all("Split-train" in path for path in report["search"]["files"])


def test_a_search_with_nothing_within_budget_stops_and_keeps_the_pushed_model(taxi_run):
    config, data, _ = taxi_run
    pushed_before = _versions(config)
    # No time for a single trial.
    hopeless = config.with_overrides(compression={"search": {"max_minutes": 0.0001}})

    with pytest.raises(UserError) as error:
        run_local(hopeless, data=str(data))

    message = str(error.value)
    assert "compression.search found no candidate within its budget (accuracy down at most " in (
        message
    )
    assert "in 0 trials (stopped at max_minutes (0.0001))" in message
    assert "Nothing was compressed or pushed" in message
    assert _versions(config) == pushed_before


def test_anomalies_stop_the_run_before_transform(tmp_path):
    data = _csv_head("taxi", 600, tmp_path)
    lines = data.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("trip_start_hour")
    corrupted = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[column] = "99"  # outside the curated 0..23 domain
        corrupted.append(",".join(cells))
    data.write_text("\n".join(corrupted) + "\n")
    config = quick_config("taxi", tmp_path / "output")

    with pytest.raises(UserError) as error:
        run_local(config, data=str(data))

    message = str(error.value)
    assert "trip_start_hour" in message
    assert "nothing downstream ran" in message
    assert "full trace:" in message
    summary = json.loads((config.output_path / "run_summary.json").read_text())
    ids = {component["id"] for component in summary["components"]}
    assert "Transform" not in ids and "Trainer" not in ids
    assert not config.serving_model_dir.exists()


def test_penguins_multiclass_run_pushes(tmp_path):
    # 66 eval rows: one example is 1.5 points, so the drop bound allows a few of them.
    config = quick_config(
        "penguins",
        tmp_path / "output",
        training={"epochs": 10, "batch_size": 16},
        compression={"fine_tune_epochs": 5},
        evaluation={"thresholds": {"max_drop_vs_uncompressed": 0.05}},
    )
    summary = run_local(config)
    assert summary.pushed, summary.not_pushed_reason
    assert summary.eval_metrics["candidate"]["sparse_categorical_accuracy"] >= 0.8
    (version,) = _versions(config)
    penguins = bundled_csv("penguins", config.output_path / "data")
    probabilities = _predict_rows(config.serving_model_dir / version, penguins, 4)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def _served_and_actual(model_dir: Path, csv_path: Path, column: str, count: int):
    predictions = _predict_rows(model_dir, csv_path, count).reshape(-1)
    with csv_path.open(newline="") as handle:
        actual = [float(row[column]) for row in itertools.islice(csv.DictReader(handle), count)]
    return predictions, np.asarray(actual)


def test_taxi_fare_regression_pushes_a_model_that_serves_dollars(tmp_path):
    data = _csv_head("taxi", 2000, tmp_path)
    # Pruning at 80% within one quick fine-tuning epoch costs a regressor too much.
    config = quick_config(
        "taxi_fare",
        tmp_path / "output",
        training={"epochs": 5, "batch_size": 64},
        compression={
            "pruning": {"target_sparsity": 0.5},
            "quantization": "int8_ptq",
            "fine_tune_epochs": 2,
        },
        evaluation={"thresholds": {"max_increase_vs_uncompressed": 0.2}},
    )
    summary = run_local(config, data=str(data))
    assert summary.pushed, summary.not_pushed_reason
    result = summary.result()["shipped_tflite"]
    assert result["quality_metric"] == "mean_absolute_error"
    assert "mean_squared_error" in summary.eval_metrics["candidate"]
    (version,) = _versions(config)
    assert (config.tflite_model_dir / version / "model.tflite").stat().st_size > 0

    predictions, fares = _served_and_actual(config.serving_model_dir / version, data, "fare", 300)
    assert np.isfinite(predictions).all()
    # In dollars, and better than always answering the mean fare.
    baseline_error = np.mean(np.abs(fares - fares.mean()))
    assert np.mean(np.abs(predictions - fares)) < 0.7 * baseline_error
    assert 0.5 * fares.mean() < predictions.mean() < 2 * fares.mean()
    # The shipped TFLite, measured by the Compressor on eval rows, is as good.
    assert result["compressed_quality"] < 0.7 * baseline_error


USER_MODULE = '''
"""A team's own model: a regression over the synthetic columns, written for this test."""
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

FEATURES = {features!r}


def _column(x, default):
    """A CSV column (a SparseTensor: ExampleGen's columns are VarLen) as [batch]."""
    one_per_row = tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1])
    return tf.reshape(tf.sparse.to_dense(one_per_row, default_value=default), [-1])


def preprocessing_fn(inputs, custom_config):
    block = tf.stack([tf.cast(_column(inputs[c], float("nan")), tf.float32) for c in FEATURES], 1)
    scaled = tft.scale_to_z_score(block, elementwise=True)
    label = inputs[custom_config["model"]["label"]["column"]]
    return {{
        "signals_xf": tf.where(tf.math.is_finite(block), scaled, tf.zeros_like(scaled)),
        "label": tf.cast(_column(label, float("nan")), tf.float32),
    }}


def build_model(inputs, model_config):
    signals = keras.Input(shape=inputs["signals_xf"].shape, name="signals_xf")
    hidden = keras.layers.Dense(model_config.params["width"], activation="relu")(signals)
    return keras.Model(signals, keras.layers.Dense(1, name="prediction")(hidden))
'''


def test_a_model_module_in_a_temp_dir_trains_compresses_and_is_served(tmp_path):
    from benchmarks.transform import LABEL, feature_columns, wide_frame

    features = feature_columns(5)
    frame = wide_frame(5, 1500)
    # A number around 50 that the columns explain; the label is never missing.
    frame[LABEL] = (
        50
        + 3
        * frame[features]
        .fillna(0)
        .sub(frame[features].mean())
        .div(frame[features].std())
        .sum(axis=1)
    ).round(3)
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    (tmp_path / "team_model.py").write_text(USER_MODULE.format(features=features))
    raw = {
        "name": "team-regression",
        "data": {"path": "data.csv"},
        "model": {
            "module": "team_model.py",
            "task": "regression",
            "label": {"column": LABEL},
            "params": {"width": 16},
        },
        "training": {"epochs": 8, "batch_size": 32},
        "compression": {
            **QUICK_COMPRESSION,
            "pruning": {"target_sparsity": 0.5},
            "quantization": "int8_ptq",
        },  # fmt: skip
        "evaluation": {"thresholds": {"max_increase_vs_uncompressed": 0.5}},
        "output_dir": str(tmp_path / "output"),
    }
    (tmp_path / "leanline.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "leanline.yaml")

    summary = run_local(config)

    assert summary.pushed, summary.not_pushed_reason
    (version,) = _versions(config)
    # No end-to-end TFLite for a module of one's own: the headline is the model alone.
    shipped = summary.result()["shipped_tflite"]
    assert shipped["what"].startswith("the model alone on transformed features; this run ")
    assert shipped["zipped_bytes"] == _zipped_bytes(
        config.tflite_model_dir / version / "model.tflite"
    )
    assert summary.result()["model_part"] is None
    predictions, labels = _served_and_actual(config.serving_model_dir / version, data, LABEL, 200)
    assert np.isfinite(predictions).all()
    assert np.mean(np.abs(predictions - labels)) < 0.5 * np.mean(np.abs(labels - labels.mean()))
    # The run directory alone names the module it ran, with its path made absolute.
    saved = yaml.safe_load((config.output_path / "leanline.yaml").read_text())
    assert saved["model"]["module"] == str(tmp_path / "team_model.py")
