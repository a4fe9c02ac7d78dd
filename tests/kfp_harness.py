"""Test-only: a run of a compiled Kubeflow Pipelines v2 package the way KFP runs it, in
this process, on a stand-in bucket.

For each task of the package's root DAG, in the DAG's order, the harness does what KFP's
driver and launcher do around a pod:

- the task's container command must be TFX's KFP v2 entrypoint
  (`python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`), and its
  arguments are the spec's own, with `{{$}}` replaced by the ExecutorInput the driver
  passes: the upstream tasks' output artifacts (URI and metadata, as the launcher
  recorded them), the runtime-constant parameters, one output artifact per output with
  its URI under the pipeline root, and the output file;
- the entrypoint's flag parser and `main` run those arguments (the parser sees the argv
  `python -m` gives it), and the ExecutorOutput it writes is what the downstream tasks
  receive;
- a trigger policy (TFX compiles "run only if blessed" into one) is evaluated on the
  task's inputs; a task whose condition is false, or whose upstream was skipped, is
  skipped.

The bucket: every `gs://leanline-harness/` in the package is read as
`ram://leanline-harness/`, TensorFlow's in-memory file system, which Beam reads through
tests/ram_bucket.py. TensorFlow's GCS client cannot be pointed at an emulator
(it ignores STORAGE_EMULATOR_HOST), and ram:// lives in one process, so every task runs
here, one after another, and Beam runs in-process (the package's Beam args must say so).

What the harness does not reproduce (kubeflow/README.md says how each is covered):
- KFP's cache: every task runs; `cachingOptions` are not read.
- The cluster's MLMD: artifacts pass from task to task in memory, named by a counter
  where the cluster's MLMD would name them by id.
- Resolver tasks, which KFP's driver executes as MLMD queries: this is a pipeline's first
  run, with no blessed model in any store, so each resolver selects no artifact.
- Pods: one process, the test's environment, not the image.
"""

from __future__ import annotations

import dataclasses
import graphlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ram_bucket  # noqa: F401  (registers ram:// with Beam)
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entrypoint

BUCKET = "leanline-harness"
GCS_BUCKET = f"gs://{BUCKET}/"
STAND_IN_BUCKET = f"ram://{BUCKET}/"
ENTRYPOINT_COMMAND = ["python", "-m", entrypoint.__name__]
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
# The one trigger condition TFX's KFP v2 compiler writes (a conditional on a blessing).
TRIGGER_CONDITION = re.compile(
    r"\(inputs\.artifacts\['(?P<input>[^']+)'\]\.artifacts\[0\]"
    r"\.metadata\['(?P<key>[^']+)'\] == (?P<value>[0-9.]+)\)"
)
# Where the launcher has the entrypoint write its ExecutorOutput: the pod's local disk.
OUTPUT_FILE = "output_metadata.json"


class HarnessError(Exception):
    """The package holds something the harness cannot run as KFP would."""


@dataclasses.dataclass
class TaskRun:
    state: str  # "succeeded", "skipped" or "resolved"
    # Output key -> the artifacts downstream tasks receive (RuntimeArtifact as JSON).
    outputs: dict[str, list[dict[str, Any]]]


def stand_in_uri(uri: str) -> str:
    """`uri` of the harness bucket on gs:// as the harness holds it, on ram://."""
    return uri.replace(GCS_BUCKET, STAND_IN_BUCKET)


def run_package(package: Path, local_dir: Path, run_id: str = "run-1") -> dict[str, TaskRun]:
    """Runs every task of `package` in the DAG's order; returns each task's run.

    Artifacts go under the package's default pipeline root (as `leanline submit` sends
    it), `<root>/<pipeline>/<run_id>/<task>/<output>`; each task's output file under
    `local_dir`. A failing task raises its executor's error."""
    spec = yaml.safe_load(stand_in_uri(package.read_text()))
    root = f"{spec['defaultPipelineRoot'].rstrip('/')}/{spec['pipelineInfo']['name']}/{run_id}"
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {name: _upstream_tasks(task) for name, task in tasks.items()}
    runs: dict[str, TaskRun] = {}
    artifact_names = iter(range(1, 1_000_000))
    for name in graphlib.TopologicalSorter(upstream).static_order():
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if any(runs[other].state == "skipped" for other in upstream[name]):
            runs[name] = TaskRun("skipped", {})
            continue
        if "resolver" in executor:
            runs[name] = TaskRun("resolved", _first_run_resolution(name, executor["resolver"]))
            continue
        if "container" not in executor:
            raise HarnessError(f"task {name}: executor kind {sorted(executor)} is not run here")
        inputs = _input_artifacts(name, task, component, runs)
        if not _triggered(name, task, inputs):
            runs[name] = TaskRun("skipped", {})
            continue
        if component.get("outputDefinitions", {}).get("parameters"):
            raise HarnessError(f"task {name}: output parameters are not run here")
        outputs = {
            key: [
                {
                    "name": str(next(artifact_names)),
                    "type": definition["artifactType"],
                    "uri": f"{root}/{name}/{key}",
                }
            ]
            for key, definition in component.get("outputDefinitions", {})
            .get("artifacts", {})
            .items()
        }
        output_file = local_dir / name / OUTPUT_FILE
        executor_input = {
            "inputs": {
                "artifacts": {key: {"artifacts": list(value)} for key, value in inputs.items()},
                "parameterValues": _parameter_values(name, task),
            },
            "outputs": {
                "artifacts": {key: {"artifacts": value} for key, value in outputs.items()},
                "outputFile": str(output_file),
            },
        }
        _run_container(name, executor["container"], executor_input)
        runs[name] = TaskRun("succeeded", _recorded(outputs, output_file))
    return runs


def _upstream_tasks(task: Mapping[str, Any]) -> set[str]:
    producers = {
        spec["taskOutputArtifact"]["producerTask"]
        for spec in task.get("inputs", {}).get("artifacts", {}).values()
        if "taskOutputArtifact" in spec
    }
    return set(task.get("dependentTasks", [])) | producers


def _first_run_resolution(name: str, resolver: Mapping[str, Any]) -> dict[str, list]:
    """What a resolver's MLMD queries select on a pipeline's first run: nothing."""
    queries = resolver.get("outputArtifactQueries", {})
    if not queries:
        raise HarnessError(f"task {name}: a resolver without output artifact queries")
    return {key: [] for key in queries}


def _input_artifacts(
    name: str, task: Mapping[str, Any], component: Mapping[str, Any], runs: Mapping[str, TaskRun]
) -> dict[str, list[dict[str, Any]]]:
    """Each input's artifacts as the driver passes them: the producer's recorded output,
    typed as this component's input definition."""
    definitions = component.get("inputDefinitions", {}).get("artifacts", {})
    inputs = {}
    for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in spec:
            raise HarnessError(f"task {name}: input {key} is not an upstream task's output")
        source = spec["taskOutputArtifact"]
        produced = runs[source["producerTask"]].outputs[source["outputArtifactKey"]]
        artifact_type = definitions[key]["artifactType"]
        inputs[key] = [{**artifact, "type": artifact_type} for artifact in produced]
    return inputs


def _parameter_values(name: str, task: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for key, spec in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" not in spec:
            raise HarnessError(f"task {name}: parameter {key} is not a runtime constant")
        values[key] = spec["runtimeValue"]["constant"]
    return values


def _triggered(name: str, task: Mapping[str, Any], inputs: Mapping[str, list]) -> bool:
    condition = task.get("triggerPolicy", {}).get("condition")
    if condition is None:
        return True
    match = TRIGGER_CONDITION.fullmatch(condition)
    if match is None:
        raise HarnessError(f"task {name}: trigger condition {condition!r} is not one run here")
    artifacts = inputs[match["input"]]
    if not artifacts:
        return False  # KFP evaluates a condition on a missing artifact as false
    return artifacts[0].get("metadata", {}).get(match["key"]) == float(match["value"])


def _run_container(name: str, container: Mapping[str, Any], executor_input: dict) -> None:
    if container["command"] != ENTRYPOINT_COMMAND:
        raise HarnessError(f"task {name}: command {container['command']} is not TFX's entrypoint")
    # Parsed strictly: what the driver would pass must be a valid ExecutorInput.
    message = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
    serialized = json_format.MessageToJson(message)
    args = [serialized if arg == EXECUTOR_INPUT_PLACEHOLDER else arg for arg in container["args"]]
    unresolved = [arg for arg in args if "{{$" in arg]
    if unresolved:
        raise HarnessError(f"task {name}: placeholders the harness does not fill: {unresolved}")
    # `python -m` gives the module's file as argv[0], and absl's app.run passes all of argv.
    entrypoint.main(entrypoint._parse_flags([entrypoint.__file__, *args]))


def _recorded(
    outputs: Mapping[str, list[dict[str, Any]]], output_file: Path
) -> dict[str, list[dict[str, Any]]]:
    """The output artifacts as the launcher records them: the provisioned name, type and
    URI, with the metadata of the entrypoint's ExecutorOutput."""
    executor_output = json.loads(output_file.read_text())
    written = executor_output.get("artifacts", {})
    recorded = {}
    for key, provisioned in outputs.items():
        produced = written.get(key, {}).get("artifacts", [])
        if len(produced) != len(provisioned):
            raise HarnessError(f"output {key}: {len(produced)} artifacts written, 1 provisioned")
        recorded[key] = [
            {**artifact, "metadata": result.get("metadata", {})}
            for artifact, result in zip(provisioned, produced, strict=True)
        ]
    return recorded
