"""Runs a TFX executor on the local copies that Kubeflow Pipelines' launcher makes of a
step's artifacts: the container command of every step when the pipeline root is s3://
or minio:// (kubeflow/runner.py sets it).

Invariant: the executor sees only local paths (/s3/BUCKET/KEY for s3://BUCKET/KEY,
/minio/BUCKET/KEY for minio://BUCKET/KEY) and Kubeflow Pipelines records only the
object-store URIs. Why: TensorFlow 2.21, which every TFX executor reads and writes
through, has no S3 file system (TF dropped its own in 2.6, and tensorflow-io 0.37.1's
plugin does not load into TF 2.21), while KFP v2's launcher, which wraps the step's
command in the same container, downloads every input artifact to exactly that local
path before the command runs and uploads every output artifact from it afterwards
(`LocalPathForURI`, `downloadArtifacts`, `uploadOutputArtifacts` in
kubeflow/pipelines backend/src/v2/component/launcher_v2.go). TFX's own entrypoint hands
executors the artifacts' URIs, so this one rewrites them in the executor input to the
local paths, runs TFX's entrypoint, and rewrites them back in the executor output,
whose URIs the launcher copies onto its records (`mergeRuntimeArtifacts`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# The launcher's local path for each object-store scheme it copies (LocalPathForURI).
LAUNCHER_LOCAL_DIRS = {"s3": "/s3/", "minio": "/minio/"}


def local_path(uri: str, local_root: str = "/") -> str:
    """Where the launcher puts the artifact at `uri`: s3://b/k -> /s3/b/k."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in LAUNCHER_LOCAL_DIRS:
        return uri
    return local_root.rstrip("/") + LAUNCHER_LOCAL_DIRS[scheme] + rest


def remote_uri(path: str, local_root: str = "/") -> str:
    """The object-store URI of a launcher's local path: /s3/b/k -> s3://b/k."""
    for scheme, directory in LAUNCHER_LOCAL_DIRS.items():
        prefix = local_root.rstrip("/") + directory
        if path.startswith(prefix):
            return f"{scheme}://{path.removeprefix(prefix)}"
    return path


def _rewrite_artifact_uris(artifact_lists: dict[str, Any], rewrite: Any) -> None:
    for artifact_list in artifact_lists.values():
        for artifact in artifact_list.get("artifacts", []):
            if "uri" in artifact:
                artifact["uri"] = rewrite(artifact["uri"])


def executor_input_on_local_paths(invocation: str, local_root: str = "/") -> str:
    """The ExecutorInput JSON with every input and output artifact at its local copy."""
    executor_input = json.loads(invocation)
    for side in ("inputs", "outputs"):
        artifacts = executor_input.get(side, {}).get("artifacts", {})
        _rewrite_artifact_uris(artifacts, lambda uri: local_path(uri, local_root))
    return json.dumps(executor_input)


def restore_remote_uris(output_file: str, local_root: str = "/") -> None:
    """Rewrites the ExecutorOutput that TFX wrote at `output_file` to object-store URIs."""
    path = Path(output_file)
    executor_output = json.loads(path.read_text())
    _rewrite_artifact_uris(
        executor_output.get("artifacts", {}), lambda uri: remote_uri(uri, local_root)
    )
    path.write_text(json.dumps(executor_output))


def parse_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """TFX's entrypoint flags and the Beam args after them, split by TFX's own parser."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    return kubeflow_v2_run_executor._parse_flags(argv)  # noqa: SLF001


def run_on_local_copies(
    parsed: tuple[argparse.Namespace, list[str]], local_root: str = "/"
) -> None:
    """TFX's kubeflow_v2_run_executor with the step's artifacts at the launcher's local
    copies under `local_root` (`/` in a pod)."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    args, beam_args = parsed
    remote_invocation = args.json_serialized_invocation_args
    local_args = argparse.Namespace(
        **{
            **vars(args),
            "json_serialized_invocation_args": executor_input_on_local_paths(
                remote_invocation, local_root
            ),
        }
    )
    kubeflow_v2_run_executor.main((local_args, beam_args))
    restore_remote_uris(json.loads(remote_invocation)["outputs"]["outputFile"], local_root)


if __name__ == "__main__":
    from absl import app

    app.run(run_on_local_copies, flags_parser=parse_flags)
