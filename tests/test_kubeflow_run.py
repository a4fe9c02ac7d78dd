"""The compiled taxi package run the way Kubeflow runs it (tests/kfp_harness.py): each
task's container command and arguments from the spec, TFX's KFP v2 entrypoint, the
ExecutorInput KFP's driver would pass, in the DAG's order, on a bucket that is not a
local disk (TensorFlow's ram://, which Beam reads through tests/ram_bucket.py),
to a version pushed into that bucket. Real TFX, TF, Beam; no cluster, no image."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
from fixtures_models import QUICK_TAXI_RUN, REPO_ROOT, quick_config, write_head
from kfp_harness import GCS_BUCKET, STAND_IN_BUCKET, run_package, stand_in_uri
from ram_bucket import behave_like_gcs

from components.serving_pusher.spec import PUSHED_PROPERTY
from kubeflow.runner import compile_pipeline
from pipeline.inputs.datasets import bundled_csv
from serving.versions import existing_versions

pytestmark = pytest.mark.slow
ROWS = 2000
# Beam inside each task's process: ram:// is one process's store.
IN_PROCESS_BEAM = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]  # fmt: skip
# What TF Serving reads of a version (and the TFLite model beside it, in its own base dir).
SERVED_FILES = (
    "saved_model.pb",
    "variables/variables.index",
    "variables/variables.data-00000-of-00001",
    "assets.extra/tf_serving_warmup_requests",
)
# First run: the resolvers' MLMD queries select no blessed model, so no baseline.
FIRST_RUN_RESOLUTIONS = {
    "LatestBlessedModelResolver-model-blessing-resolver": {"model_blessing": []},
    "LatestBlessedModelResolver-model-resolver": {"model": []},
}


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch):
    """The stand-in bucket, empty before and after, listed, deleted and renamed in as
    GCS does it (tests/ram_bucket.py)."""
    behave_like_gcs(monkeypatch)
    root = STAND_IN_BUCKET.rstrip("/")
    if tf.io.gfile.exists(root):
        tf.io.gfile.rmtree(root)
    yield root
    tf.io.gfile.rmtree(root)
    assert not tf.io.gfile.exists(root) or tf.io.gfile.listdir(root) == []


def upload(local: Path, uri: str) -> None:
    tf.io.gfile.makedirs(uri.rsplit("/", 1)[0])
    tf.io.gfile.copy(str(local), uri, overwrite=True)


def test_the_taxi_package_runs_task_by_task_on_a_bucket_to_a_pushed_version(bucket, tmp_path):
    rows = write_head(bundled_csv("taxi", tmp_path / "bundled"), tmp_path / "taxi.csv", ROWS)
    upload(rows, stand_in_uri(f"{GCS_BUCKET}data/taxi/taxi.csv"))
    schema = REPO_ROOT / "configs" / "schemas" / "taxi" / "schema.pbtxt"
    upload(schema, stand_in_uri(f"{GCS_BUCKET}schemas/taxi/schema.pbtxt"))
    config = quick_config("taxi", tmp_path / "unused-local-output", **QUICK_TAXI_RUN)
    config = config.with_overrides(
        kubeflow={
            "image": "leanline:harness",
            "pipeline_root": f"{GCS_BUCKET}root",
            "beam_pipeline_args": IN_PROCESS_BEAM,
        }
    )
    package = compile_pipeline(
        config,
        tmp_path / "taxi.yaml",
        data_path=f"{GCS_BUCKET}data/taxi/",
        schema=f"{GCS_BUCKET}schemas/taxi/schema.pbtxt",
        serving_root=f"{GCS_BUCKET}models",
    )

    runs = run_package(package, tmp_path / "pods")

    states = {name: run.state for name, run in runs.items()}
    assert {name for name, state in states.items() if state != "succeeded"} == set(
        FIRST_RUN_RESOLUTIONS
    )
    assert {name: runs[name].outputs for name in FIRST_RUN_RESOLUTIONS} == FIRST_RUN_RESOLUTIONS
    every_uri = [
        artifact["uri"]
        for run in runs.values()
        for artifacts in run.outputs.values()
        for artifact in artifacts
    ]
    assert every_uri and all(uri.startswith(f"{bucket}/root/taxi/run-1/") for uri in every_uri)

    (pushed,) = runs["ServingPusher"].outputs["pushed_model"]
    assert pushed["metadata"][PUSHED_PROPERTY] == 1
    serving_dir, tflite_dir = f"{bucket}/models/serving/taxi", f"{bucket}/models/tflite/taxi"
    (version,) = existing_versions(serving_dir)
    assert existing_versions(tflite_dir) == [version]
    version_dir = f"{serving_dir}/{version}"
    for name in SERVED_FILES:
        assert tf.io.gfile.stat(f"{version_dir}/{name}").length > 0, name
    assert tf.io.gfile.stat(f"{tflite_dir}/{version}/model.tflite").length > 0
    assert "serving_default" in tf.saved_model.load(version_dir).signatures
    assert tf.io.gfile.exists(f"{pushed['uri']}/push.json")
