"""Kubernetes manifests that run TF Serving on the versions the pusher publishes.

One multi-document YAML file: a ConfigMap with `models.config` and `batching.config`,
a Deployment of `tensorflow/serving`, a Service for gRPC (8500) and REST (8501), and
a HorizontalPodAutoscaler when `serving.max_replicas` exceeds `serving.replicas`.
The model base path (`serving.model_base_path`) is either a bucket URL, which TF
Serving reads itself, or a directory on a PersistentVolumeClaim named
`<name>-models` that the pipeline's pusher writes to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from google.protobuf import text_format

from serving.config import ServedModel
from serving.configs import (
    BATCHING_CONFIG,
    GRPC_PORT,
    MODELS_CONFIG,
    REST_PORT,
    SERVING_IMAGE,
    batching_parameters,
    model_server_args,
    models_config,
)

MANIFEST_FILE = "serving.yaml"
CONFIG_MOUNT = "/etc/tf-serving"
# Pods scale out when their average CPU use passes this share of the request.
TARGET_CPU_UTILIZATION = 70

Manifest = dict[str, Any]


def serving_manifests(config: ServedModel) -> list[Manifest]:
    name = config.name
    app = f"{name}-serving"
    labels = {"app": app}
    documents = [
        _config_map(config, app, labels),
        _deployment(config, app, labels),
        _service(app, labels),
    ]
    if config.serving.max_replicas > config.serving.replicas:
        documents.append(_autoscaler(config, app, labels))
    return documents


def write_serving_manifests(config: ServedModel, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / MANIFEST_FILE
    path.write_text(
        yaml.dump_all(serving_manifests(config), Dumper=_ManifestDumper, sort_keys=False)
    )
    return path


class _ManifestDumper(yaml.SafeDumper):
    """Safe YAML a person can read: no anchors for repeated labels, and the config
    files in the ConfigMap as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def model_base_path(config: ServedModel) -> str:
    """Where the container finds `<name>/<version>/`: in the bucket or on the volume."""
    return f"{config.serving.model_base_path.rstrip('/')}/{config.name}"


def _is_bucket(path: str) -> bool:
    return "://" in path


def _config_map(config: ServedModel, app: str, labels: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{app}-config", "labels": labels},
        "data": {
            MODELS_CONFIG: text_format.MessageToString(
                models_config({config.name: model_base_path(config)})
            ),
            BATCHING_CONFIG: text_format.MessageToString(batching_parameters(config.serving)),
        },
    }


def _deployment(config: ServedModel, app: str, labels: dict[str, str]) -> Manifest:
    serving = config.serving
    resources = {"cpu": serving.cpu, "memory": serving.memory}
    volumes: list[Manifest] = [{"name": "config", "configMap": {"name": f"{app}-config"}}]
    mounts: list[Manifest] = [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True}]
    if not _is_bucket(serving.model_base_path):
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": f"{config.name}-models"}}
        )
        mounts.append({"name": "models", "mountPath": serving.model_base_path, "readOnly": True})
    container = {
        "name": "tf-serving",
        "image": SERVING_IMAGE,
        "args": model_server_args(
            f"{CONFIG_MOUNT}/{MODELS_CONFIG}", f"{CONFIG_MOUNT}/{BATCHING_CONFIG}", serving
        ),
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT},
            {"name": "http", "containerPort": REST_PORT},
        ],
        # Ready once TF Serving answers for the model on its status endpoint.
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{config.name}", "port": REST_PORT},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "tcpSocket": {"port": GRPC_PORT},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
        },
        "resources": {"requests": resources, "limits": resources},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "volumes": volumes},
            },
        },
    }


def _service(app: str, labels: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                {"name": "http", "port": REST_PORT, "targetPort": REST_PORT},
            ],
        },
    }


def _autoscaler(config: ServedModel, app: str, labels: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": config.serving.replicas,
            "maxReplicas": config.serving.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": TARGET_CPU_UTILIZATION,
                        },
                    },
                }
            ],
        },
    }
