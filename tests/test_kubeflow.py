"""Kubeflow Pipelines v2: compile the real pipeline, parse the package strictly, and
submit it to a local test double of the KFP REST API (tests/kfp_api_double.py,
127.0.0.1 only). No cluster, no image build."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import kfp.client.auth
import kfp.components
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_api_double import KfpApiDouble, closed_loopback_port
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.utils import import_utils

from kubeflow import cli
from kubeflow.local_artifacts import parse_flags, run_on_local_copies
from kubeflow.runner import LOCAL_ARTIFACTS_COMMAND, cluster_config, compile_pipeline
from models.errors import UserError
from pipeline.config import ConfigError, LeanlineConfig, custom_config, load_config
from pipeline.layout import LATEST_BLESSED_RESOLVER
from pipeline.pipeline import create_pipeline

REPO = Path(__file__).resolve().parent.parent
IMAGE = "registry.example.com/ml/leanline:test"
BEAM_ARGS = [
    "--runner=DataflowRunner",
    "--project=example-project",
    "--region=europe-west4",
    "--temp_location=gs://bucket/beam-tmp",
]
DATA = {"taxi": "gs://bucket/data/taxi/", "penguins": "gs://bucket/data/penguins.csv"}
INPUT_BASE = {"taxi": "gs://bucket/data/taxi", "penguins": "gs://bucket/data"}
SCHEMA = {"taxi": "/opt/leanline/configs/schemas/taxi/schema.pbtxt", "penguins": None}
MODEL_MODULE = {"taxi": "models.taxi", "penguins": "models.tabular"}
# TFX compiles the latest-blessed-model resolver into two chained resolver tasks: the
# first finds the blessing, the second its model, which downstream tasks consume.
RESOLVER_BLESSING_TASK = f"{LATEST_BLESSED_RESOLVER}-model-blessing-resolver"
RESOLVER_MODEL_TASK = f"{LATEST_BLESSED_RESOLVER}-model-resolver"
TOKEN = "token-of-the-test-double"
COOKIE = "authservice_session=cookie-of-the-test-double"


def leanline(*argv: str) -> int:
    """A `leanline` subcommand of this area, parsed and run as the console script does."""
    parser = argparse.ArgumentParser(prog="leanline")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def config_with_beam_args(name: str) -> LeanlineConfig:
    config = load_config(REPO / "configs" / f"{name}.yaml")
    kubeflow = {**config.kubeflow.model_dump(), "beam_pipeline_args": BEAM_ARGS}
    return config.with_overrides(kubeflow=kubeflow)


def parse_spec(path: Path) -> pipeline_spec_pb2.PipelineSpec:
    return json_format.ParseDict(
        yaml.safe_load(path.read_text()),
        pipeline_spec_pb2.PipelineSpec(),
        ignore_unknown_fields=False,
    )


def constant(task: pipeline_spec_pb2.PipelineTaskSpec, name: str) -> Any:
    return json_format.MessageToDict(task.inputs.parameters[name].runtime_value.constant)


def upstream_tasks(task: pipeline_spec_pb2.PipelineTaskSpec) -> set[str]:
    """Tasks this one waits for: explicit dependencies and producers of its inputs."""
    producers = {
        artifact.task_output_artifact.producer_task
        for artifact in task.inputs.artifacts.values()
        if artifact.HasField("task_output_artifact")
    }
    return set(task.dependent_tasks) | producers


def task_name(component_id: str) -> str:
    return RESOLVER_MODEL_TASK if component_id == LATEST_BLESSED_RESOLVER else component_id


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per config: its package, its local pipeline root, and the config it was compiled from.

    taxi goes through the CLI with image, root and Beam args from its config file;
    penguins through compile_pipeline with explicit arguments."""
    out = tmp_path_factory.mktemp("kubeflow")
    results: dict[str, dict[str, Any]] = {}

    root = out / "taxi-root"
    raw = yaml.safe_load((REPO / "configs" / "taxi.yaml").read_text())
    raw["kubeflow"] = {"image": IMAGE, "pipeline_root": str(root), "beam_pipeline_args": BEAM_ARGS}
    config_file = out / "taxi-cluster.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    package = out / "taxi.yaml"
    exit_code = leanline(
        "compile", "kubeflow", "--config", str(config_file), "--output", str(package),
        "--data", DATA["taxi"], "--schema", SCHEMA["taxi"],
    )  # fmt: skip
    assert exit_code == 0
    results["taxi"] = {
        "package": package,
        "root": root,
        "config": load_config(config_file, check_paths=False),
    }

    root = out / "penguins-root"
    config = config_with_beam_args("penguins")
    package = compile_pipeline(
        config,
        out / "penguins.yaml",
        image=IMAGE,
        pipeline_root=str(root),
        data_path=DATA["penguins"],
    )
    results["penguins"] = {"package": package, "root": root, "config": config}
    return results


@pytest.fixture(params=["taxi", "penguins"])
def case(request: pytest.FixtureRequest, compiled: dict[str, dict[str, Any]]) -> dict[str, Any]:
    name = request.param
    spec = parse_spec(compiled[name]["package"])
    return {"name": name, "spec": spec, "tasks": spec.root.dag.tasks, **compiled[name]}


def test_every_local_component_is_a_task_with_the_same_upstream_tasks(case: dict[str, Any]) -> None:
    name, tasks = case["name"], case["tasks"]
    local = create_pipeline(
        cluster_config(case["config"], SCHEMA[name]),
        data_path=DATA[name],
        pipeline_root=str(case["root"]),
        metadata_connection_config=None,
        serving_root=str(case["root"]),
        beam_pipeline_args=BEAM_ARGS,
    )
    component_ids = [component.id for component in local.components]
    # 12, and the SliceGate where the config gates slices (taxi).
    slice_gate = case["config"].evaluation.thresholds.vs_slices is not None
    assert len(component_ids) == 12 + slice_gate
    assert ("SliceGate" in component_ids) == slice_gate
    assert set(tasks) == {task_name(c) for c in component_ids} | {RESOLVER_BLESSING_TASK}
    for component in local.components:
        task = task_name(component.id)
        expected = {task_name(upstream.id) for upstream in component.upstream_nodes}
        if task == RESOLVER_MODEL_TASK:
            expected.add(RESOLVER_BLESSING_TASK)
        assert upstream_tasks(tasks[task]) == expected, task
    assert upstream_tasks(tasks[RESOLVER_BLESSING_TASK]) == set()


def test_every_step_runs_the_image_with_the_beam_args(case: dict[str, Any]) -> None:
    executors = case["spec"].deployment_spec.fields["executors"].struct_value.fields
    containers = {
        name: json_format.MessageToDict(executor.struct_value)["container"]
        for name, executor in executors.items()
        if "container" in executor.struct_value.fields
    }
    # Every task but the two resolver halves runs a container.
    assert len(containers) == len(case["tasks"]) - 2
    for name, container in containers.items():
        assert container["image"] == IMAGE, name
        assert container["command"] == [
            "python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
        ], name  # fmt: skip
        assert container["args"][-len(BEAM_ARGS) :] == BEAM_ARGS, name


def test_model_code_data_and_roots_are_carried(case: dict[str, Any]) -> None:
    name, spec, tasks, root = case["name"], case["spec"], case["tasks"], str(case["root"])
    module = MODEL_MODULE[name]
    assert spec.schema_version == "2.1.0"
    assert spec.pipeline_info.name == name
    assert spec.default_pipeline_root == root
    assert (
        constant(tasks["Transform"], "preprocessing_fn")
        == f"{module}.preprocessing.preprocessing_fn"
    )
    assert constant(tasks["Trainer"], "run_fn") == f"{module}.model.run_fn"
    sections = {
        "Transform": ("model",),
        "Trainer": ("model", "training"),
        "Compressor": ("model", "training", "compression"),
    }
    for task, needed in sections.items():
        expected = custom_config(case["config"], needed)
        assert json.loads(constant(tasks[task], "custom_config")) == expected, task
    assert constant(tasks["CsvExampleGen"], "input_base") == INPUT_BASE[name]
    assert constant(tasks["ServingPusher"], "serving_model_dir") == f"{root}/serving/{name}"
    assert constant(tasks["ServingPusher"], "tflite_model_dir") == f"{root}/tflite/{name}"
    if SCHEMA[name]:
        assert constant(tasks["ImportSchemaGen"], "schema_file") == SCHEMA[name]
    else:
        assert "SchemaGen" in tasks and "ImportSchemaGen" not in tasks


def test_every_custom_artifact_type_imports_as_its_class_in_the_pods(case: dict[str, Any]) -> None:
    """TFX's entrypoint imports a custom type's schema title as a class path: a title
    that does not import fails the task before its executor runs."""
    titles = {
        yaml.safe_load(definition.artifact_type.instance_schema)["title"]
        for component in case["spec"].components.values()
        for definitions in (component.input_definitions, component.output_definitions)
        for definition in definitions.artifacts.values()
    }
    custom = titles - set(compiler_utils.TITLE_TO_CLASS_PATH)
    assert custom == {"leanline.CompressionReport"}
    for title in custom:
        assert import_utils.import_class_by_path(title).TYPE_NAME == title


def test_compiling_writes_nothing_under_the_pipeline_root(case: dict[str, Any]) -> None:
    assert case["package"].is_file()
    assert not case["root"].exists()


def test_the_kfp_sdk_loads_the_package(case: dict[str, Any]) -> None:
    component = kfp.components.load_component_from_file(str(case["package"]))
    assert component.name == case["name"]
    assert set(component.pipeline_spec.root.dag.tasks) == set(case["tasks"])


def test_vertex_format_writes_a_pipeline_job(
    compiled: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    penguins = compiled["penguins"]
    root = "gs://bucket/vertex-root"
    path = compile_pipeline(
        penguins["config"], tmp_path / "penguins.json", image=IMAGE, pipeline_root=root,
        data_path=DATA["penguins"], fmt="vertex",
    )  # fmt: skip
    job = json_format.ParseDict(
        json.loads(path.read_text()), pipeline_spec_pb2.PipelineJob(), ignore_unknown_fields=False
    )
    assert job.display_name == "penguins"
    assert job.runtime_config.gcs_output_directory == root
    tasks = job.pipeline_spec.fields["root"].struct_value.fields["dag"].struct_value.fields["tasks"]
    assert set(tasks.struct_value.fields) == set(parse_spec(penguins["package"]).root.dag.tasks)
    assert job.pipeline_spec.fields["defaultPipelineRoot"].string_value == root


def test_a_schema_in_a_bucket_is_read_from_there(
    compiled: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    schema = "gs://bucket/schemas/taxi/schema.pbtxt"
    package = compile_pipeline(
        compiled["taxi"]["config"], tmp_path / "taxi.yaml", data_path=DATA["taxi"], schema=schema
    )
    assert constant(parse_spec(package).root.dag.tasks["ImportSchemaGen"], "schema_file") == schema


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data_path": None}, "local-only dataset"),
        ({"schema": None}, "data.schema 'schemas/taxi/schema.pbtxt' is local"),
        ({"pipeline_root": "s3://bucket/root"}, "pusher writes models .* cannot open s3://"),
        ({"pipeline_root": "hdfs://cluster/root"}, "gs://, s3://, minio:// buckets only"),
        ({"data_path": "minio://bucket/taxi.csv"}, "not minio://"),
        ({"fmt": "vertex"}, "writes a .json file"),
    ],
)
def test_inputs_the_pods_cannot_read_are_refused(
    overrides: dict[str, Any], message: str, tmp_path: Path
) -> None:
    arguments = {
        "data_path": DATA["taxi"],
        "schema": SCHEMA["taxi"],
        "pipeline_root": "gs://b/r",
        **overrides,
    }
    config = load_config(REPO / "configs" / "taxi.yaml")
    config = config.with_overrides(
        data={**config.data.model_dump(by_alias=True), "schema": "schemas/taxi/schema.pbtxt"}
    )
    with pytest.raises(UserError, match=message):
        compile_pipeline(config, tmp_path / "taxi.yaml", **arguments)
    assert not (tmp_path / "taxi.yaml").exists()


# --- self-hosted clusters: an s3:// or minio:// root, volumes in every step -----------

MINIO_ROOT = "minio://mlpipeline/leanline"
# Data and TFLite pushes on one claim; the SavedModel pushes on the claim that leanline's
# TF Serving manifests mount (<name>-models, read at <model_base_path>/<name>).
VOLUMES = [
    {"claim_name": "leanline-data", "mount_path": "/mnt/leanline"},
    {"claim_name": "penguins-models", "mount_path": "/mnt/leanline/serving"},
]
SERVING_ROOT = "/mnt/leanline"
VOLUME_DATA = "/mnt/leanline/data/penguins/"


def penguins_on_volumes(**kubeflow: Any) -> LeanlineConfig:
    config = load_config(REPO / "configs" / "penguins.yaml")
    section = {**config.kubeflow.model_dump(), "pipeline_root": MINIO_ROOT, "volumes": VOLUMES}
    return config.with_overrides(kubeflow={**section, **kubeflow})


@pytest.fixture(scope="module")
def self_hosted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """penguins compiled through the CLI from a YAML config with a minio:// root, its data
    on one volume and its pushed models on another."""
    out = tmp_path_factory.mktemp("self-hosted")
    raw = yaml.safe_load((REPO / "configs" / "penguins.yaml").read_text())
    raw["data"] = {**{k: v for k, v in raw["data"].items() if k != "bundled"}, "path": VOLUME_DATA}
    raw["kubeflow"] = {"image": IMAGE, "pipeline_root": MINIO_ROOT, "volumes": VOLUMES}
    config_file = out / "penguins-self-hosted.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    package = out / "penguins.yaml"
    exit_code = leanline(
        "compile", "kubeflow", "--config", str(config_file), "--output", str(package),
        "--serving-root", SERVING_ROOT,
    )  # fmt: skip
    assert exit_code == 0
    spec_doc, platform_doc = yaml.safe_load_all(package.read_text())
    return {"package": package, "spec_doc": spec_doc, "platform_doc": platform_doc}


def test_every_step_of_a_minio_root_runs_on_the_launcher_copies(
    self_hosted: dict[str, Any],
) -> None:
    spec = json_format.ParseDict(
        self_hosted["spec_doc"], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False
    )
    assert spec.default_pipeline_root == MINIO_ROOT
    executors = self_hosted["spec_doc"]["deploymentSpec"]["executors"]
    containers = {label: e["container"] for label, e in executors.items() if "container" in e}
    assert len(containers) == len(spec.root.dag.tasks) - 2  # all but the resolver halves
    for label, container in containers.items():
        assert container["command"] == LOCAL_ARTIFACTS_COMMAND, label
        assert container["args"][0] == "--executor_class_path", label
    tasks = spec.root.dag.tasks
    assert constant(tasks["CsvExampleGen"], "input_base") == VOLUME_DATA.rstrip("/")
    assert constant(tasks["ServingPusher"], "serving_model_dir") == "/mnt/leanline/serving/penguins"
    assert constant(tasks["ServingPusher"], "tflite_model_dir") == "/mnt/leanline/tflite/penguins"


def test_every_step_mounts_every_volume(self_hosted: dict[str, Any]) -> None:
    platform = json_format.ParseDict(
        self_hosted["platform_doc"], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False
    )
    executors = json_format.MessageToDict(platform.platforms["kubernetes"].deployment_spec)
    executors = executors["executors"]
    labels = self_hosted["spec_doc"]["deploymentSpec"]["executors"]
    assert set(executors) == {label for label, e in labels.items() if "container" in e}
    expected = [
        {
            "constant": volume["claim_name"],
            "pvcNameParameter": {"runtimeValue": {"constant": volume["claim_name"]}},
            "mountPath": volume["mount_path"],
        }
        for volume in VOLUMES
    ]
    for label, config in executors.items():
        assert config == {"pvcMount": expected}, label
    # kfp reads the second YAML document as the package's platform spec.
    component = kfp.components.load_component_from_file(str(self_hosted["package"]))
    assert component.platform_spec == platform


def test_submit_sends_the_platform_spec_with_the_pipeline_spec(
    self_hosted: dict[str, Any],
) -> None:
    with KfpApiDouble() as api:
        assert submit(package=self_hosted["package"], host=api.url) == 0
    [run] = api.runs
    assert run["pipeline_spec"] == {
        "pipeline_spec": self_hosted["spec_doc"],
        "platform_spec": self_hosted["platform_doc"],
    }
    assert run["runtime_config"]["pipeline_root"] == MINIO_ROOT


def test_a_tfx_executor_runs_on_the_launcher_copies_and_reports_minio_uris(
    self_hosted: dict[str, Any], tmp_path: Path
) -> None:
    """SchemaGen's compiled container args, with the executor input the launcher passes.
    The launcher itself cannot run here: its copies are made by hand where its
    LocalPathForURI puts them (under tmp_path instead of /)."""
    container = self_hosted["spec_doc"]["deploymentSpec"]["executors"]["SchemaGen_executor"]
    container = container["container"]
    stats_uri = f"{MINIO_ROOT}/run-1/StatisticsGen/statistics"
    schema_uri = f"{MINIO_ROOT}/run-1/SchemaGen/schema"
    stats = json_format.ParseDict(
        {"datasets": [{"numExamples": "3", "features": [
            {"path": {"step": ["bill_length_mm"]}, "type": "FLOAT",
             "numStats": {"commonStats": {"numNonMissing": "3", "minNumValues": "1",
                                          "maxNumValues": "1"}}},
        ]}]},
        statistics_pb2.DatasetFeatureStatisticsList(),
    )  # fmt: skip
    stats_copy = tmp_path / "minio" / stats_uri.removeprefix("minio://") / "Split-train"
    stats_copy.mkdir(parents=True)
    (stats_copy / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    output_file = tmp_path / "kfp_outputs" / "output_metadata.json"
    inputs_spec = json.loads(
        container["args"][container["args"].index("--json_serialized_inputs_spec_args") + 1]
    )
    executor_input = {
        "inputs": {
            "parameterValues": {"exclude_splits": "[]", "infer_feature_shape": 1},
            "artifacts": {"statistics": {"artifacts": [{
                "name": "minio-stats", "uri": stats_uri,
                "type": inputs_spec["artifacts"]["statistics"]["artifactType"],
                "metadata": {"split_names": '["train"]', "span": 0},
            }]}},
        },
        "outputs": {
            "artifacts": {"schema": {"artifacts": [{
                "name": "minio-schema", "uri": schema_uri,
                "type": {"instanceSchema": "title: tfx.Schema\ntype: object\n"},
            }]}},
            "outputFile": str(output_file),
        },
    }  # fmt: skip
    args = [json.dumps(executor_input) if arg == "{{$}}" else arg for arg in container["args"]]
    run_on_local_copies(parse_flags([sys.argv[0], *args]), local_root=str(tmp_path))

    schema_copy = tmp_path / "minio" / schema_uri.removeprefix("minio://") / "schema.pbtxt"
    assert 'name: "bill_length_mm"' in schema_copy.read_text()
    output = json.loads(output_file.read_text())
    [schema] = output["artifacts"]["schema"]["artifacts"]
    assert schema["uri"] == schema_uri


@pytest.mark.parametrize(
    ("kubeflow", "arguments", "message"),
    [
        ({}, {"serving_root": None}, r"pusher writes models through TensorFlow, which cannot open minio://.*--serving-root"),
        ({}, {"serving_root": "/srv/models"},
         r"--serving-root '/srv/models': the pusher would write /srv/models/serving/penguins on no volume"),
        ({"volumes": [{"claim_name": "penguins-models", "mount_path": "/mnt/models/serving"}]},
         {"serving_root": "/mnt/models"}, r"would write /mnt/models/tflite/penguins on no volume"),
        ({}, {"serving_root": "s3://models/leanline"}, r"not s3:// .*kubeflow.volumes"),
        ({"beam_pipeline_args": ["--runner", "FlinkRunner"]}, {},
         r"--runner=FlinkRunner: with a minio:// pipeline root .* workers cannot see"),
        ({}, {"data_path": "s3://data/penguins.csv"}, r"--data 's3://data/penguins.csv'.*not s3://"),
        ({}, {"fmt": "vertex"}, r"Vertex AI Pipelines mounts no Kubernetes volumes"),
        ({"volumes": []}, {"fmt": "vertex"}, r"Vertex AI Pipelines keeps artifacts in gs:// only"),
        ({"volumes": [{"claim_name": "c", "mount_path": "/minio/data"}]}, {},
         r"mount_path '/minio/data' overlaps /gcs, /s3, /minio"),
    ],
)  # fmt: skip
def test_what_a_self_hosted_cluster_cannot_run_is_refused(
    kubeflow: dict[str, Any], arguments: dict[str, Any], message: str, tmp_path: Path
) -> None:
    config = penguins_on_volumes(**kubeflow)
    output = tmp_path / ("p.json" if arguments.get("fmt") == "vertex" else "p.yaml")
    arguments = {"data_path": VOLUME_DATA, "serving_root": SERVING_ROOT, **arguments}
    with pytest.raises(UserError, match=message):
        compile_pipeline(config, output, **arguments)
    assert not output.exists()


def test_a_schema_and_a_module_file_on_a_volume_are_read_from_there() -> None:
    config = load_config(REPO / "examples" / "custom_model" / "penguins.yaml")
    config = config.with_overrides(
        data={**config.data.model_dump(by_alias=True), "schema": "/mnt/leanline/schema.pbtxt"},
        model={**config.model.model_dump(), "module": "/mnt/leanline/modules/penguins_v1.py"},
    )
    with pytest.raises(UserError, match="data.schema '/mnt/leanline/schema.pbtxt' is local"):
        cluster_config(config)
    on_volumes = config.with_overrides(
        kubeflow={**config.kubeflow.model_dump(), "volumes": VOLUMES}
    )
    assert cluster_config(on_volumes) == on_volumes


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ([{"claim_name": "Data_Claim", "mount_path": "/mnt/d"}],
         r"kubeflow.volumes.0: claim_name 'Data_Claim': a PersistentVolumeClaim's name"),
        ([{"claim_name": "data", "mount_path": "mnt/d/"}], r"kubeflow.volumes.0: mount_path 'mnt/d/'"),
        ([{"claim_name": "a", "mount_path": "/mnt/d"}, {"claim_name": "b", "mount_path": "/mnt/d"}],
         r"two volumes are mounted at /mnt/d"),
    ],
)  # fmt: skip
def test_a_volume_kubernetes_cannot_mount_is_refused_on_load(
    volumes: list[dict[str, str]], message: str, tmp_path: Path
) -> None:
    raw = yaml.safe_load((REPO / "configs" / "penguins.yaml").read_text())
    raw["kubeflow"] = {"pipeline_root": MINIO_ROOT, "volumes": volumes}
    config_file = tmp_path / "penguins.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, check_paths=False)


# --- leanline submit -----------------------------------------------------------------


def submit(*extra: str, package: Path, host: str) -> int:
    return leanline("submit", "--host", host, "--package", str(package), *extra)


def test_submit_sends_the_spec_the_pipeline_root_and_the_credentials(
    compiled: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    taxi = compiled["taxi"]
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    monkeypatch.setenv("KFP_COOKIE", COOKIE)
    with KfpApiDouble(token=TOKEN) as api:
        assert submit("--experiment", "leanline-test", package=taxi["package"], host=api.url) == 0

    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api.requests)
    assert all(r.headers.get("cookie") == COOKIE for r in api.requests)
    assert api.requests_to("GET", "/healthz")
    [experiment] = api.experiments
    assert experiment["display_name"] == "leanline-test"
    [run] = api.runs
    assert run["experiment_id"] == experiment["experiment_id"]
    assert run["display_name"].startswith("taxi ")
    assert run["pipeline_spec"] == yaml.safe_load(taxi["package"].read_text())
    assert run["runtime_config"] == {"pipeline_root": str(taxi["root"]), "parameters": {}}
    printed = capsys.readouterr()
    assert run["run_id"] in printed.out
    assert (
        TOKEN not in printed.out + printed.err
        and "cookie-of-the-test-double" not in printed.out + printed.err
    )


def test_submit_reuses_an_existing_experiment_and_converts_parameters(
    compiled: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    # The compiled pipeline declares no runtime parameters; give a copy two.
    spec = yaml.safe_load(compiled["taxi"]["package"].read_text())
    spec["root"]["inputDefinitions"] = {
        "parameters": {
            "epochs": {"parameterType": "NUMBER_INTEGER"},
            "note": {"parameterType": "STRING"},
        }
    }
    package = tmp_path / "with-parameters.yaml"
    package.write_text(yaml.safe_dump(spec))
    with KfpApiDouble() as api:
        for _ in range(2):
            submit(
                "--experiment",
                "e",
                "--param",
                "epochs=3",
                "--param",
                "note=a=b",
                package=package,
                host=api.url,
            )
        with pytest.raises(UserError, match="not a valid NUMBER_INTEGER"):
            submit("--param", "epochs=three", package=package, host=api.url)
    assert len(api.experiments) == 1 and len(api.runs) == 2
    assert [run["runtime_config"]["parameters"] for run in api.runs] == [
        {"epochs": 3, "note": "a=b"}
    ] * 2


def test_submit_refuses_parameters_the_pipeline_does_not_declare(
    compiled: dict[str, dict[str, Any]],
) -> None:
    with (
        KfpApiDouble() as api,
        pytest.raises(UserError, match="no such parameter .* declares: none"),
    ):
        submit("--param", "epochs=3", package=compiled["taxi"]["package"], host=api.url)
    assert api.requests == []


def test_a_rejected_token_is_reported_without_the_token(
    compiled: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TOKEN", "a-wrong-token")
    with KfpApiDouble(token=TOKEN) as api, pytest.raises(UserError) as error:
        submit(package=compiled["taxi"]["package"], host=api.url)
    assert "refused the request (401" in str(error.value) and "KFP_TOKEN" in str(error.value)
    assert "a-wrong-token" not in str(error.value)
    assert api.runs == []


def test_an_unreachable_host_is_a_user_error(compiled: dict[str, dict[str, Any]]) -> None:
    host = f"http://127.0.0.1:{closed_loopback_port()}"
    with pytest.raises(
        UserError, match=f"cannot reach Kubeflow Pipelines at {host}.*Connection refused"
    ):
        submit(package=compiled["taxi"]["package"], host=host)


@pytest.mark.parametrize(
    "host",
    ["http://kubeflow.example.com/pipeline", "http://10.0.0.7:8080", "http://127.0.0.1.nip.io"],
)
def test_plain_http_to_another_machine_is_refused_before_any_request(
    compiled: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    with pytest.raises(
        UserError, match=r"plain http would carry KFP_TOKEN.*unencrypted.*https.*port-forward"
    ):
        submit(package=compiled["taxi"]["package"], host=host)


def test_plain_http_to_a_loopback_port_forward_is_allowed(
    compiled: dict[str, dict[str, Any]],
) -> None:
    with KfpApiDouble() as api:
        localhost = api.url.replace("127.0.0.1", "localhost")
        assert submit(package=compiled["taxi"]["package"], host=localhost) == 0
    assert len(api.runs) == 1
    # Any loopback address passes the check (and reaches no server here).
    for address in ("[::1]", "127.8.9.10"):
        host = f"http://{address}:{closed_loopback_port()}"
        with pytest.raises(UserError, match="cannot reach Kubeflow Pipelines"):
            submit(package=compiled["taxi"]["package"], host=host)


def test_credentials_in_the_host_url_are_refused_without_echoing_them(
    compiled: dict[str, dict[str, Any]],
) -> None:
    with pytest.raises(UserError, match="no credentials in the URL.*KFP_TOKEN") as error:
        submit(package=compiled["taxi"]["package"], host="https://admin:hunter2@kfp.example.com")
    assert "hunter2" not in str(error.value)


def test_submit_reads_no_credentials_from_kfp_files_or_prompts(
    compiled: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """kfp.Client alone would send the context file's cookie and header, use its
    namespace, and with KF_PIPELINES_*_OAUTH2_* set run an OAuth login that prompts on
    stdin (behind submit's captured stdout, a silent hang)."""
    context = tmp_path / "context.json"
    context.write_text(
        json.dumps(
            {
                "namespace": "namespace-from-the-file",
                "client_authentication_cookie": "session=cookie-from-the-file",
                "client_authentication_header_name": "X-Header-From-The-File",
                "client_authentication_header_value": "1",
            }
        )
    )
    written = context.read_text()
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(context))
    for variable in (
        "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID",
        "KF_PIPELINES_APP_OAUTH2_CLIENT_ID",
        "KF_PIPELINES_APP_OAUTH2_CLIENT_SECRET",
    ):
        monkeypatch.setenv(variable, "set-by-someone-else")

    def login(*_args: object) -> None:
        raise AssertionError("kfp's OAuth login ran")

    monkeypatch.setattr(kfp.client.auth, "get_auth_token", login)
    monkeypatch.setattr("builtins.input", login)
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    with KfpApiDouble(token=TOKEN) as api:
        assert submit(package=compiled["taxi"]["package"], host=api.url) == 0

    assert len(api.runs) == 1
    for request in api.requests:
        assert "cookie" not in request.headers
        assert "x-header-from-the-file" not in request.headers
    assert "from-the-file" not in json.dumps([[r.query, r.body] for r in api.requests])
    assert context.read_text() == written


@pytest.mark.parametrize(
    ("package", "message"),
    [
        ("missing.yaml", "pipeline package not found"),
        ("configs/taxi.yaml", "not a pipeline spec"),
        ("pipeline.json", "Vertex AI PipelineJob"),
    ],
)
def test_a_bad_package_is_refused_before_contacting_the_host(
    package: str, message: str, tmp_path: Path
) -> None:
    path = REPO / package if package.startswith("configs/") else tmp_path / package
    if path.suffix == ".json":
        path.write_text("{}")
    with pytest.raises(UserError, match=message):
        submit(package=path, host=f"http://127.0.0.1:{closed_loopback_port()}")


def test_a_model_module_reaches_the_pods_from_a_bucket_or_the_image(tmp_path):
    config = load_config(REPO / "examples" / "custom_model" / "penguins.yaml")
    # A local module file is refused: a pod cannot import a file on this machine.
    with pytest.raises(
        UserError, match=r"model.module 'penguins_model.py' is a local file.*--module"
    ):
        compile_pipeline(config, tmp_path / "local.yaml", pipeline_root="gs://bucket/root",
                         data_path=DATA["penguins"])  # fmt: skip

    module = "gs://bucket/modules/penguins_model_v1.py"
    # Given, as no bucket is readable here (tests/test_push_safety.py reads one on ram://).
    module_sha256 = "5" * 64
    package = compile_pipeline(
        config.with_overrides(model={"module_sha256": module_sha256}), tmp_path / "custom.yaml",
        image=IMAGE, pipeline_root="gs://bucket/root", data_path=DATA["penguins"], module=module,
    )  # fmt: skip
    tasks = parse_spec(package).root.dag.tasks
    assert (
        constant(tasks["Transform"], "preprocessing_fn")
        == "models.custom.preprocessing.preprocessing_fn"
    )
    assert constant(tasks["Trainer"], "run_fn") == "models.custom.model.run_fn"
    for task in ("Transform", "Trainer", "Compressor"):
        model = json.loads(constant(tasks[task], "custom_config"))["model"]
        assert model["module"] == module, task
        assert model["module_sha256"] == module_sha256, task  # each pod checks it

    with pytest.raises(UserError, match=r"--module 's3://bucket/m.py'.*opens gs://"):
        compile_pipeline(config, tmp_path / "s3.yaml", pipeline_root="gs://bucket/root",
                         data_path=DATA["penguins"], module="s3://bucket/m.py")  # fmt: skip


def test_a_name_kubeflow_refuses_is_named_before_compiling(tmp_path):
    config = load_config(REPO / "configs" / "penguins.yaml").with_overrides(name="penguins_v2")
    with pytest.raises(
        UserError, match=r"name 'penguins_v2': Kubeflow Pipelines names.*'penguins-v2'"
    ):
        compile_pipeline(config, tmp_path / "p.yaml", pipeline_root="gs://bucket/root",
                         data_path=DATA["penguins"])  # fmt: skip


@pytest.mark.parametrize(
    ("config_name", "module", "expected"),
    [
        ("examples/custom_model/penguins.yaml", "models/mine.py", "a relative path names a file on this machine"),
        ("configs/penguins.yaml", "gs://bucket/m.py", "the config uses model.family 'tabular'"),
    ],
)  # fmt: skip
def test_a_module_the_pods_cannot_import_is_refused(tmp_path, config_name, module, expected):
    config = load_config(REPO / config_name)
    with pytest.raises(UserError, match=expected):
        compile_pipeline(config, tmp_path / "p.yaml", pipeline_root="gs://bucket/root",
                         data_path=DATA["penguins"], module=module)  # fmt: skip
