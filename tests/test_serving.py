"""Serving: the pusher's atomic versions, warm-up, servable checks, TF Serving configs,
Kubernetes manifests, and the client against a TF Serving test double (loopback only).

The model is the real taxi model of `trained_taxi_model` (tests/fixtures_models.py),
exported by models.common.export; the eval examples are that run's ExampleGen output.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from google.protobuf import text_format
from tensorflow_model_analysis.proto import config_pb2, validation_result_pb2
from tensorflow_serving.config import model_server_config_pb2
from tf_serving_double import serve_models
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts

from components.compressor.spec import (
    END_TO_END_AGREEMENT_PROPERTY,
    TFLITE_INPUTS_PROPERTY,
    tflite_model_path,
)
from components.serving_pusher import executor as pusher
from components.serving_pusher.component import ServingPusher
from models.common.data import read_split_examples
from models.common.export import CLASSES_FILE
from models.errors import UserError
from pipeline.cli import serving as cli
from pipeline.config import LeanlineConfig
from serving import client
from serving.check import check_servable
from serving.configs import BatchingParameters, write_serving_configs
from serving.manifests import write_serving_manifests
from serving.versions import STAGING_PREFIX, existing_versions, publish_version
from serving.warmup import WARMUP_FILE, read_warmup_requests

REPO = Path(__file__).resolve().parents[1]
SERVING_MODEL_SUBDIR = "Format-Serving"  # inside a Model artifact (TFX's layout)
MODEL_NAME = "taxi"
WARMUP_REQUESTS = 4


def leanline(*argv: str) -> int:
    """Runs a serving subcommand the way the `leanline` console script dispatches it."""
    parser = argparse.ArgumentParser(prog="leanline")
    cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def tree_digest(root: Path) -> str:
    """A hash of every file's relative path and bytes under `root`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def hidden_entries(base_dir: Path) -> list[str]:
    return sorted(p.name for p in base_dir.iterdir() if p.name.startswith(STAGING_PREFIX))


def write_tiny_tflite(path: Path) -> None:
    """Stands in for the Compressor's TFLite model: the pusher only copies it and checks
    that the TFLite interpreter loads it."""

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32)])
        def __call__(self, x):
            return 2.0 * x

    module = Doubler()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())


def artifact(artifact_class, uri: Path, **int_properties: int):
    instance = artifact_class()
    instance.uri = str(uri)
    for key, value in int_properties.items():
        instance.set_int_custom_property(key, value)
    return instance


@pytest.fixture(scope="module")
def model_artifacts(trained_taxi_model, tmp_path_factory):
    """A compressed-model-shaped Model dir (Format-Serving + Format-TFLite) and the raw Examples."""
    root = tmp_path_factory.mktemp("artifacts")
    model_dir = root / "model"
    serving_source = Path(trained_taxi_model.model_uri) / SERVING_MODEL_SUBDIR
    shutil.copytree(serving_source, model_dir / SERVING_MODEL_SUBDIR)
    write_tiny_tflite(Path(tflite_model_path(str(model_dir))))
    # fixtures_models runs a local pipeline: <root>/<component>/<output>/<execution id>.
    pipeline_root = Path(trained_taxi_model.model_uri).parents[2]
    (examples_dir,) = (pipeline_root / "CsvExampleGen" / "examples").iterdir()
    return model_dir, examples_dir


def run_executor(
    model_dir: Path,
    examples_dir: Path,
    work: Path,
    *,
    blessings: dict[str, int],
    evaluations: dict[str, Path] | None = None,
    tflite_agreement: float | None = None,
):
    """Calls the executor's Do the way TFX does; returns the PushedModel artifact.
    `tflite_agreement` marks the model's TFLite as end to end, agreeing so much with
    its SavedModel."""
    model = artifact(standard_artifacts.Model, model_dir)
    if tflite_agreement is not None:
        model.set_string_custom_property(TFLITE_INPUTS_PROPERTY, "raw")
        model.set_float_custom_property(END_TO_END_AGREEMENT_PROPERTY, tflite_agreement)
    input_dict = {
        pusher.MODEL_KEY: [model],
        pusher.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, examples_dir)],
    }
    for key, blessed in blessings.items():
        input_dict[key] = [artifact(standard_artifacts.ModelBlessing, work / key, blessed=blessed)]
    for key, uri in (evaluations or {}).items():
        input_dict[key] = [artifact(standard_artifacts.ModelEvaluation, uri)]
    pushed_model = artifact(standard_artifacts.PushedModel, work / "pushed_model")
    Path(pushed_model.uri).mkdir(parents=True)
    pusher.Executor().Do(
        input_dict,
        {pusher.PUSHED_MODEL_KEY: [pushed_model]},
        {
            pusher.SERVING_MODEL_DIR_KEY: str(work / "serving" / MODEL_NAME),
            pusher.TFLITE_MODEL_DIR_KEY: str(work / "tflite" / MODEL_NAME),
            pusher.WARMUP_REQUESTS_KEY: WARMUP_REQUESTS,
            pusher.MODEL_NAME_KEY: MODEL_NAME,
            pusher.MIN_TFLITE_AGREEMENT_KEY: 0.99,
        },
    )
    return pushed_model


@pytest.fixture(scope="module")
def pushed(model_artifacts, tmp_path_factory):
    """One blessed push into <work>/serving/taxi; returns (work dir, PushedModel artifact)."""
    model_dir, examples_dir = model_artifacts
    work = tmp_path_factory.mktemp("push")
    blessed = {pusher.COMPRESSION_BLESSING_KEY: 1, pusher.MODEL_BLESSING_KEY: 1}
    return work, run_executor(model_dir, examples_dir, work, blessings=blessed)


@pytest.fixture(scope="module")
def version_dir(pushed) -> Path:
    work, pushed_model = pushed
    return Path(pushed_model.get_string_custom_property("pushed_destination"))


@pytest.fixture(scope="module")
def taxi_config(trained_taxi_model, pushed) -> LeanlineConfig:
    work, _ = pushed
    return trained_taxi_model.config.with_overrides(output_dir=str(work))


@pytest.fixture(scope="module")
def double(pushed):
    work, _ = pushed
    with serve_models({MODEL_NAME: work / "serving" / MODEL_NAME}) as running:
        yield running


@pytest.fixture(scope="module")
def request_rows(trained_taxi_model) -> list[dict[str, str]]:
    """Raw CSV rows with the model's feature columns (no label), as a user would send them."""
    features = trained_taxi_model.config.model.features.all_columns()
    rows = client.read_rows(trained_taxi_model.csv_path)[:6]
    return [{column: row[column] for column in features} for row in rows]


# --- Push layout and protocol ---------------------------------------------------------------


def test_push_publishes_a_complete_version_with_warmup_and_tflite(
    model_artifacts, pushed, version_dir
):
    model_dir, _ = model_artifacts
    work, pushed_model = pushed
    version = pushed_model.get_string_custom_property("pushed_version")
    assert pushed_model.get_int_custom_property("pushed") == 1
    assert version_dir == work / "serving" / MODEL_NAME / version
    assert existing_versions(work / "serving" / MODEL_NAME) == [int(version)]
    source = model_dir / SERVING_MODEL_SUBDIR
    assert (version_dir / "saved_model.pb").read_bytes() == (source / "saved_model.pb").read_bytes()
    assert (version_dir / "variables" / "variables.index").is_file()
    assert (version_dir / WARMUP_FILE).is_file()
    assert (work / "tflite" / MODEL_NAME / version / "model.tflite").stat().st_size > 0
    assert hidden_entries(work / "serving" / MODEL_NAME) == []
    summary = json.loads((Path(pushed_model.uri) / pusher.PUSH_SUMMARY_FILE).read_text())
    assert summary["version"] == int(version)
    assert summary["warmup_requests"] == WARMUP_REQUESTS
    assert summary["latency_p95_ms"] >= summary["latency_p50_ms"] > 0


def test_warmup_requests_are_eval_examples_that_replay(model_artifacts, version_dir):
    _, examples_dir = model_artifacts
    records = read_warmup_requests(version_dir)
    assert len(records) == WARMUP_REQUESTS
    eval_examples = read_split_examples(str(examples_dir), WARMUP_REQUESTS)
    for record, expected in zip(records, eval_examples, strict=True):
        request = record.predict_log.request
        assert request.model_spec.name == MODEL_NAME
        assert request.model_spec.signature_name == "serving_default"
        (serialized,) = tf.make_ndarray(request.inputs["examples"])
        assert serialized == expected
        assert tf.train.Example.FromString(serialized).features.feature["fare"].float_list.value

    report = check_servable(version_dir)
    assert report.warmup_requests == WARMUP_REQUESTS
    assert {"serving_default", "serving_raw"} <= set(report.signatures)


def truncated_copy(model_dir: Path, target: Path) -> Path:
    """A copy of a Model artifact whose variables file lost its tail."""
    shutil.copytree(model_dir, target)
    data_file = target / SERVING_MODEL_SUBDIR / "variables" / "variables.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:100])
    return target


def test_a_failed_check_publishes_nothing_and_leaves_no_staging(model_artifacts, tmp_path):
    """A crash between writing and renaming: the staged model fails its load check."""
    model_dir, _ = model_artifacts
    broken = truncated_copy(model_dir, tmp_path / "broken_model")
    serving_dir, tflite_dir = tmp_path / "serving" / MODEL_NAME, tmp_path / "tflite" / MODEL_NAME

    with pytest.raises(UserError, match="variables.data-00000-of-00001 is truncated or corrupt"):
        pusher.push_model(
            broken,
            serving_model_dir=str(serving_dir),
            tflite_model_dir=str(tflite_dir),
            warmup=[],
        )

    for base_dir in (serving_dir, tflite_dir):
        assert existing_versions(base_dir) == []
        assert hidden_entries(base_dir) == []


def test_push_to_an_object_store_uploads_only_a_checked_version(model_artifacts, tmp_path):
    """Object stores (TensorFlow's in-memory ram:// file system standing in for gs://)."""
    model_dir, _ = model_artifacts
    base = "ram://bucket/serving/taxi"
    push = pusher.push_model(model_dir, serving_model_dir=base, tflite_model_dir=None, warmup=[])

    assert existing_versions(base) == [push.version]
    assert push.serving_version_dir == f"{base}/{push.version}"
    staged = Path(model_dir) / SERVING_MODEL_SUBDIR
    # Each file by name: ram:// lists directories whose names share a prefix (assets,
    # assets.extra) as one another's entries.
    for file in (p for p in staged.rglob("*") if p.is_file()):
        uploaded = f"{push.serving_version_dir}/{file.relative_to(staged)}"
        with tf.io.gfile.GFile(uploaded, "rb") as handle:
            assert handle.read() == file.read_bytes(), uploaded
    loaded = tf.saved_model.load(push.serving_version_dir)
    assert "serving_default" in loaded.signatures

    broken = truncated_copy(model_dir, tmp_path / "broken_model")
    with pytest.raises(UserError, match="truncated or corrupt"):
        pusher.push_model(broken, serving_model_dir=base, tflite_model_dir=None, warmup=[])
    assert existing_versions(base) == [push.version]


PUSH_IN_SUBPROCESS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from serving.versions import publish_version

    def populate(staging):
        (staging / "first").write_text("1")
        print("staged", flush=True)
        time.sleep(float(sys.argv[2]))
        (staging / "second").write_text("2")

    print(publish_version({Path(sys.argv[1]): populate}), flush=True)
    """
)


def start_push(base_dir: Path, sleep_s: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PUSH_IN_SUBPROCESS, str(base_dir), str(sleep_s)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_pusher_killed_mid_push_leaves_no_visible_version(tmp_path):
    base_dir = tmp_path / "serving" / MODEL_NAME
    process = start_push(base_dir, sleep_s=60)
    assert process.stdout.readline().strip() == "staged"
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert existing_versions(base_dir) == []
    (leftover,) = hidden_entries(base_dir)  # TF Serving ignores it: not a number
    assert (base_dir / leftover / "first").exists()

    version = publish_version({base_dir: lambda staging: (staging / "model").write_text("m")})
    assert existing_versions(base_dir) == [version]
    assert hidden_entries(base_dir) == []  # the next push cleaned up


def test_concurrent_pushers_publish_whole_distinct_versions(tmp_path):
    base_dir = tmp_path / "serving" / MODEL_NAME
    # Above any clock value, so both pushers number by "highest + 1", which only the
    # lock keeps apart: the second must see the first one's version.
    existing = 99_999_999_999_999
    (base_dir / str(existing)).mkdir(parents=True)
    processes = [start_push(base_dir, sleep_s=0.5) for _ in range(2)]
    versions = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        versions.append(int(out.split()[-1]))

    assert sorted(versions) == [existing + 1, existing + 2]
    assert existing_versions(base_dir) == [existing, existing + 1, existing + 2]
    for version in versions:
        assert sorted(p.name for p in (base_dir / str(version)).iterdir()) == ["first", "second"]
    assert hidden_entries(base_dir) == []


def test_versions_exceed_existing_ones_which_stay_untouched(tmp_path):
    base_dir = tmp_path / "serving" / MODEL_NAME
    far_future = 99_999_999_999_999
    (base_dir / str(far_future)).mkdir(parents=True)
    (base_dir / str(far_future) / "model").write_text("old")
    before = tree_digest(base_dir / str(far_future))

    version = publish_version({base_dir: lambda staging: (staging / "model").write_text("new")})

    assert version == far_future + 1
    assert tree_digest(base_dir / str(far_future)) == before


def write_validation_result(uri: Path, metric: str, change: float, allowed: float) -> Path:
    """A failed change threshold, written where and how TFMA writes `validations`."""
    result = validation_result_pb2.ValidationResult(validation_ok=False)
    failure = result.metric_validations_per_slice.add().failures.add()
    failure.metric_key.name = metric
    failure.metric_key.is_diff = True
    failure.metric_value.double_value.value = change
    failure.metric_threshold.change_threshold.absolute.value = allowed
    failure.metric_threshold.change_threshold.direction = (
        config_pb2.MetricDirection.HIGHER_IS_BETTER
    )
    uri.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(uri / "validations.tfrecord")) as writer:
        writer.write(result.SerializeToString())
    return uri


def test_not_blessed_pushes_nothing_and_records_why(model_artifacts, tmp_path):
    model_dir, examples_dir = model_artifacts
    evaluation = write_validation_result(
        tmp_path / "evaluation", "binary_accuracy", change=-0.012, allowed=-0.005
    )
    pushed_model = run_executor(
        model_dir,
        examples_dir,
        tmp_path,
        blessings={pusher.COMPRESSION_BLESSING_KEY: 0, pusher.MODEL_BLESSING_KEY: 0},
        evaluations={pusher.COMPRESSION_EVALUATION_KEY: evaluation},
    )

    assert pushed_model.get_int_custom_property("pushed") == 0
    reason = pushed_model.get_string_custom_property("not_pushed_reason")
    assert reason.startswith("EvaluateCompression did not bless the model: binary_accuracy")
    assert "-0.0120 vs the baseline (allowed down to -0.0050) on the overall slice" in reason
    assert "EvaluateVsBlessed did not bless the model" in reason
    assert not (tmp_path / "serving").exists()


def test_a_model_whose_classes_differ_from_the_last_pushed_ones_is_not_pushed(
    model_artifacts, trained_penguins_model, tmp_path
):
    """The last pushed version answers three species, the new (taxi) model ids 0 and 1:
    clients reading positions would read other classes. Both are real SavedModels."""
    model_dir, examples_dir = model_artifacts
    base = tmp_path / "serving" / MODEL_NAME
    shutil.copytree(Path(trained_penguins_model.model_uri) / SERVING_MODEL_SUBDIR, base / "7")

    refusal = pusher.class_list_refusal(str(model_dir), str(base))
    assert refusal is not None
    assert "classes ['0', '1'] differ from ['Adelie', 'Chinstrap', 'Gentoo']" in refusal
    assert "last pushed version 7" in refusal
    blessed = {pusher.COMPRESSION_BLESSING_KEY: 1, pusher.MODEL_BLESSING_KEY: 1}
    pushed_model = run_executor(model_dir, examples_dir, tmp_path, blessings=blessed)
    assert pushed_model.get_int_custom_property("pushed") == 0
    assert pushed_model.get_string_custom_property("not_pushed_reason") == refusal
    assert existing_versions(base) == [7]

    # The same classes as the last pushed version pass, as does a version pushed before
    # versions recorded their classes.
    shutil.copytree(model_dir / SERVING_MODEL_SUBDIR, base / "8")
    assert pusher.class_list_refusal(str(model_dir), str(base)) is None
    shutil.copytree(base / "7", base / "9")
    (base / "9" / CLASSES_FILE).unlink()
    assert pusher.class_list_refusal(str(model_dir), str(base)) is None


# --- Checking a version --------------------------------------------------------------------


def test_check_servable_cli_reports_a_pushed_version(version_dir, capsys):
    assert leanline("check-servable", str(version_dir)) == 0
    output = capsys.readouterr().out
    assert f"warm-up requests replayed: {WARMUP_REQUESTS}" in output
    assert "p95" in output


def test_check_servable_names_a_truncated_variables_file(version_dir, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(version_dir, copy)
    data_file = copy / "variables" / "variables.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(UserError, match=f"{data_file} is truncated or corrupt"):
        check_servable(copy)


def test_check_servable_names_a_corrupt_saved_model_proto(version_dir, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(version_dir, copy)
    (copy / "saved_model.pb").write_bytes(b"\x0a\xff\xff not a proto")
    with pytest.raises(UserError, match="saved_model.pb is corrupt"):
        check_servable(copy)


def test_serving_commands_name_the_run_with_run_dir_or_config(tmp_path):
    """--run-dir reads the config the run saved there, --config a config file whose
    output_dir is the run (or --run-dir's directory, given both); no run, no answer."""
    from pipeline.config import load_config, write_run_config

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = load_config(REPO / "configs" / "taxi.yaml").with_overrides(name="cabs")
    saved = write_run_config(config, run_dir)
    serving = run_dir / "serving" / "cabs"
    out = str(tmp_path / "out")

    for run in (["--run-dir", str(run_dir)], ["--config", str(saved)]):
        with pytest.raises(UserError, match=f"no pushed models under {run_dir / 'serving'}"):
            leanline("serving-config", *run, "--output-dir", out)
        with pytest.raises(UserError, match=f"no pushed version under {serving}$"):
            leanline("check-servable", *run)
    other = tmp_path / "other"
    with pytest.raises(UserError, match=f"no pushed version under {other / 'serving' / 'cabs'}"):
        leanline("check-servable", "--config", str(saved), "--run-dir", str(other))
    assert leanline("serving-manifests", "--run-dir", str(run_dir), "--output-dir", out) == 0
    assert "name: cabs" in (tmp_path / "out" / "serving.yaml").read_text()

    # check-servable takes the latest pushed version, or the one asked for.
    for version in ("7", "12"):
        (serving / version).mkdir(parents=True)
    with pytest.raises(UserError, match=f"{serving / '12'} is not a SavedModel version"):
        leanline("check-servable", "--run-dir", str(run_dir))
    with pytest.raises(UserError, match=f"{serving / '7'} is not a SavedModel version"):
        leanline("check-servable", "--run-dir", str(run_dir), "--version", "7")
    with pytest.raises(UserError, match=r"--version 8: .* holds versions \[7, 12\]"):
        leanline("check-servable", "--run-dir", str(run_dir), "--version", "8")
    with pytest.raises(UserError, match="a version directory or the run"):
        leanline("check-servable", str(serving / "7"), "--run-dir", str(run_dir))
    with pytest.raises(UserError, match="name a version directory, or the run"):
        leanline("check-servable")
    with pytest.raises(UserError, match="name the run: --run-dir DIR"):
        leanline("serving-config", "--output-dir", out)


# --- TF Serving configs and Kubernetes manifests -------------------------------------------


def write_config_file(config: LeanlineConfig, path: Path) -> Path:
    """`config` as a YAML file for the CLI, with its relative paths made absolute."""
    raw = config.model_dump(by_alias=True, mode="json")
    if raw["data"]["schema"]:
        raw["data"]["schema"] = config.resolve(raw["data"]["schema"])
    path.write_text(yaml.safe_dump(raw))
    return path


def test_serving_config_files_parse_as_tf_serving_protos(
    taxi_config, version_dir, tmp_path, capsys
):
    config_path = write_config_file(taxi_config, tmp_path / "taxi.yaml")
    out = tmp_path / "tf_serving"
    assert leanline("serving-config", "--config", str(config_path), "--output-dir", str(out)) == 0

    models = text_format.Parse(
        (out / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (model,) = models.model_config_list.config
    assert model.name == MODEL_NAME
    assert model.base_path == str(version_dir.parent)
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.latest.num_versions == 1
    docker_models = text_format.Parse(
        (out / "models.docker.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert docker_models.model_config_list.config[0].base_path == f"/models/{MODEL_NAME}"

    batching = text_format.Parse((out / "batching.config").read_text(), BatchingParameters())
    assert batching.max_batch_size.value == taxi_config.serving.max_batch_size
    assert batching.batch_timeout_micros.value == taxi_config.serving.batch_timeout_micros
    assert batching.num_batch_threads.value == taxi_config.serving.num_batch_threads

    printed = capsys.readouterr().out
    command = (
        f"tensorflow_model_server --port=8500 --rest_api_port=8501 "
        f"--model_config_file={out.resolve()}/models.config --enable_batching "
        f"--batching_parameters_file={out.resolve()}/batching.config"
    )
    assert command in printed
    assert f"-v {version_dir.parent.parent}:/models:ro" in printed
    assert "--model_config_file=/config/models.docker.config" in printed


def test_serving_config_pins_a_version_and_rejects_unknown_ones(taxi_config, version_dir, tmp_path):
    version = int(version_dir.name)
    files = write_serving_configs(taxi_config, tmp_path, pinned={MODEL_NAME: version})
    models = text_format.Parse(
        files.models_config.read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert list(models.model_config_list.config[0].model_version_policy.specific.versions) == [
        version
    ]
    with pytest.raises(UserError, match=f"cannot pin {MODEL_NAME}=7: its versions are"):
        write_serving_configs(taxi_config, tmp_path, pinned={MODEL_NAME: 7})
    nothing_pushed = taxi_config.with_overrides(output_dir=str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no pushed models under"):
        write_serving_configs(nothing_pushed, tmp_path)


def test_manifests_run_tf_serving_from_the_volume_with_autoscaling(taxi_config, tmp_path):
    path = write_serving_manifests(taxi_config, tmp_path)
    documents = list(yaml.safe_load_all(path.read_text()))
    by_kind = {document["kind"]: document for document in documents}
    assert list(by_kind) == [
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    ]

    serving = taxi_config.serving
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/taxi", "port": 8501}
    assert container["resources"]["limits"] == {"cpu": serving.cpu, "memory": serving.memory}
    assert "--model_config_file=/etc/tf-serving/models.config" in container["args"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["taxi-models"]
    assert {"name": "models", "mountPath": serving.model_base_path, "readOnly": True} in container[
        "volumeMounts"
    ]
    assert by_kind["Deployment"]["spec"]["replicas"] == serving.replicas
    assert by_kind["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == serving.max_replicas
    assert {p["port"] for p in by_kind["Service"]["spec"]["ports"]} == {8500, 8501}
    models = text_format.Parse(
        by_kind["ConfigMap"]["data"]["models.config"], model_server_config_pb2.ModelServerConfig()
    )
    assert models.model_config_list.config[0].base_path == f"{serving.model_base_path}/taxi"


def test_manifests_read_a_bucket_directly_and_skip_the_autoscaler_without_headroom(
    taxi_config, tmp_path
):
    serving = {**taxi_config.serving.model_dump(), "replicas": 2, "max_replicas": 2}
    config_path = write_config_file(
        taxi_config.with_overrides(serving=serving), tmp_path / "taxi.yaml"
    )
    argv = ["serving-manifests", "--config", str(config_path), "--output-dir", str(tmp_path)]
    assert leanline(*argv, "--model-base-path", "gs://bucket/leanline/serving") == 0

    documents = list(yaml.safe_load_all((tmp_path / "serving.yaml").read_text()))
    assert [document["kind"] for document in documents] == [
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ]
    pod = documents[1]["spec"]["template"]["spec"]
    # No models volume: only the configs and the emptyDir for /tmp.
    assert [volume["name"] for volume in pod["volumes"]] == ["config", "tmp"]
    models = text_format.Parse(
        documents[0]["data"]["models.config"], model_server_config_pb2.ModelServerConfig()
    )
    assert models.model_config_list.config[0].base_path == "gs://bucket/leanline/serving/taxi"


# --- Client against the TF Serving test double ---------------------------------------------


def in_process_outputs(version_dir: Path, rows, kinds) -> np.ndarray:
    model = tf.saved_model.load(str(version_dir))
    examples = tf.constant(client.rows_to_examples(rows, kinds))
    return model.signatures["serving_default"](examples=examples)["outputs"].numpy()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_client_predictions_match_the_model_in_process(
    transport, double, request_rows, version_dir
):
    server = double.grpc if transport == "grpc" else double.rest
    predictions = client.predict(server, MODEL_NAME, request_rows, transport=transport)

    kinds = client.feature_kinds_from_signatures(
        double.models.get(MODEL_NAME).signature_defs.signature_def, MODEL_NAME
    )
    expected = in_process_outputs(version_dir, request_rows, kinds)
    assert predictions["outputs"].shape == (len(request_rows), 1)
    np.testing.assert_allclose(predictions["outputs"], expected, rtol=1e-5)
    # The classes output (strings: bytes over gRPC, JSON strings over REST) names them.
    names, probabilities = client.class_probabilities(predictions)
    assert names == ["0", "1"]
    np.testing.assert_allclose(probabilities[:, 1], expected[:, 0], rtol=1e-5)


def test_predict_cli_prints_a_table_for_csv_over_grpc(double, request_rows, tmp_path, capsys):
    rows_file = tmp_path / "rows.csv"
    with rows_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(request_rows[0]))
        writer.writeheader()
        writer.writerows(request_rows[:3])
    argv = ["predict", "--server", double.grpc, "--model", MODEL_NAME, "--grpc"]
    assert leanline(*argv, "--input", str(rows_file)) == 0
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["row", "class", "p(0)", "p(1)"]
    cells = [line.split() for line in lines]
    assert [row for row, *_ in cells] == ["1", "2", "3"]
    for _, name, p0, p1 in cells:  # the most likely class, its probabilities summing to 1
        assert name == ("1" if float(p1) > float(p0) else "0")
        assert float(p0) + float(p1) == pytest.approx(1, abs=1e-5)


def test_predict_cli_reads_jsonl_and_prints_json_over_rest(double, request_rows, tmp_path, capsys):
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in request_rows[:2]))
    argv = ["predict", "--server", double.rest, "--model", MODEL_NAME, "--rest"]
    assert leanline(*argv, "--input", str(rows_file), "--json") == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["row"] for record in records] == [1, 2]
    for record in records:
        probabilities = record["probabilities"]
        assert list(probabilities) == ["0", "1"]
        assert record["class"] == max(probabilities, key=probabilities.get)


def test_a_schema_file_types_rows_like_the_servers_signature(
    double, request_rows, trained_taxi_model
):
    config = trained_taxi_model.config
    schema = Path(config.resolve(config.data.schema_path))  # the curated schema the run used
    from_schema = client.predict(double.grpc, MODEL_NAME, request_rows, schema_path=schema)
    from_server = client.predict(double.grpc, MODEL_NAME, request_rows)
    np.testing.assert_array_equal(from_schema["outputs"], from_server["outputs"])


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_client_rejects_bad_rows_before_sending(transport, double, request_rows):
    server = double.grpc if transport == "grpc" else double.rest
    calls = len(double.models.predict_batches)
    bad_number = [request_rows[0], {**request_rows[1], "fare": "twelve"}]
    with pytest.raises(UserError, match="row 2, column 'fare': 'twelve' is not a number"):
        client.predict(server, MODEL_NAME, bad_number, transport=transport)
    with pytest.raises(UserError, match="row 1: unknown column 'tip_percent'"):
        client.predict(server, MODEL_NAME, [{"tip_percent": "3"}], transport=transport)
    assert len(double.models.predict_batches) == calls


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_client_reports_an_unknown_model(transport, double, request_rows):
    server = double.grpc if transport == "grpc" else double.rest
    with pytest.raises(UserError, match="has no model 'chicago'"):
        client.predict(server, "chicago", request_rows, transport=transport)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_client_reports_an_unreachable_server(transport, request_rows):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = {"grpc": "gRPC", "rest": "REST"}[transport]
    with pytest.raises(UserError, match=f"cannot reach TF Serving over {name} at 127.0.0.1:{port}"):
        client.predict(f"127.0.0.1:{port}", MODEL_NAME, request_rows, transport=transport)


def test_rest_status_endpoint_of_the_double_reports_the_pushed_version(double, version_dir):
    import urllib.request

    with urllib.request.urlopen(f"http://{double.rest}/v1/models/{MODEL_NAME}") as response:
        (status,) = json.loads(response.read())["model_version_status"]
    assert status == {
        "version": version_dir.name,
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }


# --- One real TFX run of the component -----------------------------------------------------


def test_serving_pusher_in_a_tfx_pipeline_pushes_past_existing_versions(
    model_artifacts, version_dir, tmp_path
):
    model_dir, examples_dir = model_artifacts
    serving_dir = tmp_path / "serving" / MODEL_NAME
    existing = serving_dir / "99999999999999"
    shutil.copytree(version_dir, existing)
    before = tree_digest(existing)

    def importer(name: str, uri: Path, artifact_type, **custom_properties):
        return tfx.dsl.Importer(
            source_uri=str(uri),
            artifact_type=artifact_type,
            custom_properties=custom_properties,
        ).with_id(name)

    model = importer("model", model_dir, standard_artifacts.Model)
    examples = tfx.dsl.Importer(
        source_uri=str(examples_dir),
        artifact_type=standard_artifacts.Examples,
        properties={"split_names": artifact_utils.encode_split_names(["train", "eval"])},
    ).with_id("examples")
    blessings = [
        importer(name, tmp_path / name, standard_artifacts.ModelBlessing, blessed=1)
        for name in ("compression_blessing", "model_blessing")
    ]
    for blessing in blessings:
        (tmp_path / blessing.id).mkdir()
    serving_pusher = ServingPusher(
        model=model.outputs["result"],
        compression_blessing=blessings[0].outputs["result"],
        model_blessing=blessings[1].outputs["result"],
        examples=examples.outputs["result"],
        serving_model_dir=str(serving_dir),
        tflite_model_dir=str(tmp_path / "tflite" / MODEL_NAME),
        warmup_requests=2,
        model_name=MODEL_NAME,
    )
    metadata_path = tmp_path / "metadata.sqlite"
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="serving-pusher",
            pipeline_root=str(tmp_path / "root"),
            components=[model, examples, *blessings, serving_pusher],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                str(metadata_path)
            ),
            enable_cache=False,
        )
    )

    assert existing_versions(serving_dir) == [99999999999999, 100000000000000]
    assert tree_digest(existing) == before
    assert len(read_warmup_requests(serving_dir / "100000000000000")) == 2

    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata_path)
    store = metadata_store.MetadataStore(connection)
    (pushed_model,) = store.get_artifacts_by_type(standard_artifacts.PushedModel.TYPE_NAME)
    properties = pushed_model.custom_properties
    assert properties["pushed"].int_value == 1
    assert properties["pushed_version"].string_value == "100000000000000"
    assert properties["pushed_destination"].string_value == str(serving_dir / "100000000000000")


def test_serving_the_tflite_adds_tf_servings_flags_everywhere(
    taxi_config, version_dir, tmp_path, capsys
):
    config_path = write_config_file(taxi_config, tmp_path / "taxi.yaml")
    out = tmp_path / "tf_serving"
    assert (
        leanline(
            "serving-config",
            "--config",
            str(config_path),
            "--output-dir",
            str(out),
            "--prefer-tflite",
        )
        == 0
    )
    flags = "--prefer_tflite_model=true --num_tflite_pools=1 --num_tflite_interpreters_per_pool=1"
    host, docker = [line for line in capsys.readouterr().out.splitlines() if flags in line]
    assert host.strip().startswith("tensorflow_model_server ")
    assert "docker run" in docker
    # models.config is the same as for the SavedModel: TF Serving picks the file per version.
    models = text_format.Parse(
        (out / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert models.model_config_list.config[0].model_platform == "tensorflow"

    tflite = taxi_config.with_overrides(serving={"prefer_tflite": True, "num_tflite_pools": 2})
    path = write_serving_manifests(tflite, tmp_path / "k8s")
    deployment = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"--prefer_tflite_model=true", "--num_tflite_pools=2"} <= set(container["args"])
    without = write_serving_manifests(taxi_config, tmp_path / "k8s-saved-model")
    assert "--prefer_tflite_model=true" not in without.read_text()


def test_a_version_whose_two_formats_disagree_is_not_pushed(model_artifacts, tmp_path):
    model_dir, examples_dir = model_artifacts
    blessed = {pusher.COMPRESSION_BLESSING_KEY: 1, pusher.MODEL_BLESSING_KEY: 1}
    pushed_model = run_executor(
        model_dir, examples_dir, tmp_path, blessings=blessed, tflite_agreement=0.95
    )
    assert pushed_model.get_int_custom_property("pushed") == 0
    reason = pushed_model.get_string_custom_property("not_pushed_reason")
    assert "predict different classes on 5.00% of the compression report's eval rows" in reason
    assert "allowed 1.00%, evaluation.thresholds.min_tflite_agreement" in reason
    assert not (tmp_path / "serving").exists()
