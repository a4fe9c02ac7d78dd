"""Kubernetes manifests that run TF Serving on the versions the pusher publishes.

One multi-document YAML file: a ConfigMap with `models.config` and `batching.config`,
a Deployment of `tensorflow/serving`, a Service for gRPC (8500) and REST (8501), a
NetworkPolicy that admits only the named clients, and a HorizontalPodAutoscaler when
`serving.max_replicas` exceeds `serving.replicas`. The model base path
(`serving.model_base_path`) is either a bucket URL, which TF Serving reads itself, or a
directory on a PersistentVolumeClaim named `<name>-models` that the pipeline's pusher
writes to.

The pod meets Kubernetes' "restricted" Pod Security Standard: a non-root UID, no
privilege escalation, every capability dropped, the RuntimeDefault seccomp profile,
only configMap, secret, emptyDir and PVC volumes; beyond it, a read-only root file
system and no service-account token (TF Serving never calls the Kubernetes API).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from google.protobuf import text_format

from serving.config import ServedModel, ServingConfig, ServingTlsConfig, kubernetes_app_name
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
# The label a pod carries, with the server's app name as value, to be let in by the
# NetworkPolicy (serving.network_policy.allowed_clients adds others).
CLIENT_LABEL = "leanline/client-of"
# Any UID but 0 meets runAsNonRoot; the tensorflow/serving image declares no user, so
# one is set (TF Serving needs none of its own: it only reads the models and configs).
RUN_AS_USER = 1000
# TensorFlow writes temporary files under $TMPDIR or /tmp (e.g. the GCS file system's
# upload buffers); with a read-only root file system that is an emptyDir.
TMP_DIR = "/tmp"
# TF Serving opens its ports only after ServerCore::Create has loaded every model of
# models.config (server.cc), so the startup probe allows this long for a first load
# before the kubelet restarts the container; readiness and liveness take over after.
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 60  # 10 minutes
# TLS: the init container turns the Secret's PEM files into the SSLConfig text proto
# TF Serving's --ssl_config_file reads (ssl_config.proto holds the PEM contents, not
# paths), in a memory-backed emptyDir only the pod's user can read. PEM holds no quote
# or backslash, so each line's end written as the escape \n makes a valid string.
TLS_SECRET_MOUNT = "/etc/tf-serving-tls-secret"
SSL_CONFIG_MOUNT = "/etc/tf-serving-tls"
SSL_CONFIG_FILE = "ssl.config"
SSL_CONFIG_SCRIPT = r"""set -eu
umask 077
secret=$1 out=$2 client_verify=$3
files="tls.key tls.crt"
if [ "$client_verify" = true ]; then files="$files ca.crt"; fi
for file in $files; do
  [ -s "$secret/$file" ] || { echo "the TLS secret has no $file" >&2; exit 1; }
done
pem() { sed 's/$/\\n/' "$secret/$1" | tr -d '\n'; }
{
  printf 'server_key: "%s"\n' "$(pem tls.key)"
  printf 'server_cert: "%s"\n' "$(pem tls.crt)"
  if [ "$client_verify" = true ]; then
    printf 'custom_ca: "%s"\nclient_verify: true\n' "$(pem ca.crt)"
  fi
} > "$out"
"""

Manifest = dict[str, Any]


def serving_manifests(config: ServedModel) -> list[Manifest]:
    app = kubernetes_app_name(config.name)
    labels = {"app": app}
    documents = [
        _config_map(config, app, labels),
        _deployment(config, app, labels),
        _service(app, labels),
        _network_policy(config.serving, app, labels),
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
    volumes: list[Manifest] = [
        {"name": "config", "configMap": {"name": f"{app}-config"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[Manifest] = [
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_DIR},
    ]
    if not _is_bucket(serving.model_base_path):
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": f"{config.name}-models"}}
        )
        mounts.append({"name": "models", "mountPath": serving.model_base_path, "readOnly": True})
    args = model_server_args(
        f"{CONFIG_MOUNT}/{MODELS_CONFIG}", f"{CONFIG_MOUNT}/{BATCHING_CONFIG}", serving
    )
    image = serving.image or SERVING_IMAGE
    init_containers: list[Manifest] = []
    if serving.tls is not None:
        volumes += [
            # 0444 inside the init container alone: the pod's user is not the files' owner.
            {
                "name": "tls-secret",
                "secret": {"secretName": serving.tls.secret_name, "defaultMode": 0o444},
            },
            {"name": "ssl-config", "emptyDir": {"medium": "Memory"}},
        ]
        mounts.append({"name": "ssl-config", "mountPath": SSL_CONFIG_MOUNT, "readOnly": True})
        args.append(f"--ssl_config_file={SSL_CONFIG_MOUNT}/{SSL_CONFIG_FILE}")
        init_containers.append(_ssl_config_container(serving.tls, image))
    status = {"httpGet": {"path": f"/v1/models/{config.name}", "port": REST_PORT}}
    container = {
        "name": "tf-serving",
        "image": image,
        "args": args,
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT},
            {"name": "http", "containerPort": REST_PORT},
        ],
        # TF Serving's model status endpoint answers once the model is loaded; probed on
        # the plaintext REST port, whatever TLS does to gRPC.
        "startupProbe": {
            **status,
            "periodSeconds": STARTUP_PERIOD_S,
            "failureThreshold": STARTUP_FAILURES,
        },
        "readinessProbe": {**status, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**status, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": resources, "limits": resources},
        "securityContext": _container_security_context(),
        "volumeMounts": mounts,
    }
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _container_security_context() -> Manifest:
    """What the restricted Pod Security Standard asks of every container, and a root file
    system nothing can write (the only writable paths are emptyDirs)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _ssl_config_container(tls: ServingTlsConfig, image: str) -> Manifest:
    """Writes ssl.config from the TLS Secret before TF Serving starts (SSL_CONFIG_SCRIPT),
    in the same image, so no other image needs pulling or pinning."""
    return {
        "name": "ssl-config",
        "image": image,
        "command": [
            "/bin/sh",
            "-c",
            SSL_CONFIG_SCRIPT,
            "ssl-config",
            TLS_SECRET_MOUNT,
            f"{SSL_CONFIG_MOUNT}/{SSL_CONFIG_FILE}",
            "true" if tls.client_verify else "false",
        ],
        "securityContext": _container_security_context(),
        "volumeMounts": [
            {"name": "tls-secret", "mountPath": TLS_SECRET_MOUNT, "readOnly": True},
            {"name": "ssl-config", "mountPath": SSL_CONFIG_MOUNT},
        ],
    }


def _network_policy(serving: ServingConfig, app: str, labels: dict[str, str]) -> Manifest:
    """Ingress to the server's pods only from its clients, on its two ports; every other
    pod of the cluster, TF Serving's model-config reload RPC included, is refused. The
    kubelet's probes come from the node, which NetworkPolicies always let through."""
    peers: list[Manifest] = [{"podSelector": {"matchLabels": {CLIENT_LABEL: app}}}]
    for client in serving.network_policy.allowed_clients:
        peer: Manifest = {"podSelector": {"matchLabels": dict(client.pod_labels)}}
        if client.namespace_labels is not None:
            peer["namespaceSelector"] = {"matchLabels": dict(client.namespace_labels)}
        peers.append(peer)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": peers,
                    "ports": [
                        {"protocol": "TCP", "port": GRPC_PORT},
                        {"protocol": "TCP", "port": REST_PORT},
                    ],
                }
            ],
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
