"""TF Serving's config files for the models a pipeline pushed, and the commands that use them.

`write_serving_configs` finds every model under `<output>/serving/*/` that has at
least one version and writes, into one directory:

- `models.config`: a `ModelServerConfig` text proto with host paths, for
  `tensorflow_model_server` run on this machine;
- `models.docker.config`: the same with the container's paths, for the
  `tensorflow/serving` image with the serving directory mounted at /models;
- `batching.config`: `BatchingParameters` from the config's `serving` section;
- `commands.txt`: the exact model server command and the equivalent `docker run`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from models.errors import UserError
from serving.config import ServedModel, ServingConfig
from serving.versions import existing_versions

MODELS_CONFIG = "models.config"
DOCKER_MODELS_CONFIG = "models.docker.config"
BATCHING_CONFIG = "batching.config"
COMMANDS_FILE = "commands.txt"
GRPC_PORT = 8500
REST_PORT = 8501
# The model server release that matches tensorflow-serving-api in requirements/constraints.txt.
SERVING_IMAGE = "tensorflow/serving:2.19.1"
DOCKER_MODELS_DIR = "/models"
DOCKER_CONFIG_DIR = "/config"


def _batching_parameters_class() -> type[Message]:
    """`tensorflow.serving.BatchingParameters` (session_bundle_config.proto).

    The tensorflow-serving-api wheel does not ship that proto, so the fields the
    model server reads are declared here, with upstream's names and numbers, in a
    private descriptor pool; text_format then writes exactly what the server parses.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="leanline/serving/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file_proto.message_type.add(name="BatchingParameters")
    wrapped_fields = [
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
    ]
    for name, number, wrapper in wrapped_fields:
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    message.field.add(
        name="allowed_batch_sizes",
        number=6,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file_proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


BatchingParameters = _batching_parameters_class()


@dataclass(frozen=True)
class ServingConfigFiles:
    models_config: Path
    docker_models_config: Path
    batching_config: Path
    models: dict[str, Path]
    model_server_command: str
    docker_command: str


def find_models(serving_root: Path) -> dict[str, Path]:
    """Model name -> base directory, for each `<serving_root>/<name>/` holding a version."""
    if not serving_root.is_dir():
        return {}
    return {
        entry.name: entry
        for entry in sorted(serving_root.iterdir())
        if entry.is_dir() and existing_versions(entry)
    }


def models_config(
    base_paths: Mapping[str, str], pinned: Mapping[str, int] | None = None
) -> model_server_config_pb2.ModelServerConfig:
    """Serves the latest version of each model, or the pinned version where one is given."""
    pinned = pinned or {}
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in sorted(base_paths.items()):
        model = config.model_config_list.config.add(
            name=name, base_path=base_path, model_platform="tensorflow"
        )
        if name in pinned:
            model.model_version_policy.specific.versions.append(pinned[name])
        else:
            model.model_version_policy.latest.num_versions = 1
    return config


def batching_parameters(serving: ServingConfig) -> Message:
    parameters = BatchingParameters()
    parameters.max_batch_size.value = serving.max_batch_size
    parameters.batch_timeout_micros.value = serving.batch_timeout_micros
    parameters.max_enqueued_batches.value = serving.max_enqueued_batches
    parameters.num_batch_threads.value = serving.num_batch_threads
    return parameters


def model_server_args(
    models_config_file: str, batching_config_file: str, serving: ServingConfig
) -> list[str]:
    """Flags shared by the host command, the docker line and the Kubernetes container.

    With `serving.prefer_tflite`, TF Serving serves each version's `model.tflite` (the
    end-to-end int8 model, signature `serving_raw`) instead of its SavedModel: an
    experimental flag of TF Serving's, builtin TFLite ops only.
    """
    args = [
        f"--port={GRPC_PORT}",
        f"--rest_api_port={REST_PORT}",
        f"--model_config_file={models_config_file}",
        "--enable_batching",
        f"--batching_parameters_file={batching_config_file}",
    ]
    if serving.prefer_tflite:
        args += [
            "--prefer_tflite_model=true",
            f"--num_tflite_pools={serving.num_tflite_pools}",
            f"--num_tflite_interpreters_per_pool={serving.num_tflite_interpreters_per_pool}",
        ]
    return args


def write_serving_configs(
    config: ServedModel, output_dir: Path, pinned: Mapping[str, int] | None = None
) -> ServingConfigFiles:
    serving_root = config.serving_model_dir.parent
    models = find_models(serving_root)
    if not models:
        raise UserError(
            f"no pushed models under {serving_root}; run the pipeline until the pusher "
            "publishes a version, then write the serving configs"
        )
    _check_pins(models, pinned or {})
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {
        MODELS_CONFIG: models_config({n: str(p.resolve()) for n, p in models.items()}, pinned),
        DOCKER_MODELS_CONFIG: models_config(
            {name: f"{DOCKER_MODELS_DIR}/{name}" for name in models}, pinned
        ),
        BATCHING_CONFIG: batching_parameters(config.serving),
    }
    for name, proto in files.items():
        (output_dir / name).write_text(text_format.MessageToString(proto))

    output = output_dir.resolve()
    host_command = shlex.join(
        [
            "tensorflow_model_server",
            *model_server_args(
                str(output / MODELS_CONFIG), str(output / BATCHING_CONFIG), config.serving
            ),
        ]
    )
    docker_command = _docker_command(serving_root.resolve(), output, config.serving)
    (output_dir / COMMANDS_FILE).write_text(
        f"# On this machine:\n{host_command}\n\n# In Docker:\n{docker_command}\n"
    )
    return ServingConfigFiles(
        models_config=output_dir / MODELS_CONFIG,
        docker_models_config=output_dir / DOCKER_MODELS_CONFIG,
        batching_config=output_dir / BATCHING_CONFIG,
        models=models,
        model_server_command=host_command,
        docker_command=docker_command,
    )


def _docker_command(serving_root: Path, config_dir: Path, serving: ServingConfig) -> str:
    """The model server in the tensorflow/serving image, the host's models mounted at /models."""
    publish = [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"]
    mounts = [f"{serving_root}:{DOCKER_MODELS_DIR}:ro", f"{config_dir}:{DOCKER_CONFIG_DIR}:ro"]
    server_args = model_server_args(
        f"{DOCKER_CONFIG_DIR}/{DOCKER_MODELS_CONFIG}",
        f"{DOCKER_CONFIG_DIR}/{BATCHING_CONFIG}",
        serving,
    )
    return shlex.join(
        [
            "docker", "run", "--rm",
            *(arg for port in publish for arg in ("-p", port)),
            *(arg for mount in mounts for arg in ("-v", mount)),
            SERVING_IMAGE,
            *server_args,
        ]
    )  # fmt: skip


def _check_pins(models: Mapping[str, Path], pinned: Mapping[str, int]) -> None:
    for name, version in pinned.items():
        if name not in models:
            raise UserError(f"cannot pin {name!r}: no such pushed model (found {sorted(models)})")
        versions = existing_versions(models[name])
        if version not in versions:
            raise UserError(f"cannot pin {name}={version}: its versions are {versions}")
