"""The `serving` section of a leanline config: TF Serving's batching and TFLite options
and the Kubernetes deployment. Floor 2 (serving/) owns it, so serving code reads its
own type and pipeline.config only composes it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from pydantic import field_validator

from models.config import NonNegativeInt, PositiveInt, StrictSection
from models.errors import UserError

# Kubernetes' name rules (apimachinery's validation): a Service is named by an RFC 1035
# label, a label value is at most 63 characters, a Secret by an RFC 1123 subdomain.
KUBERNETES_LABEL_MAX = 63
KUBERNETES_SUBDOMAIN_MAX = 253
_RFC1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_RFC1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# registry[:port]/path[:tag][@sha256:digest]; a tag or a digest is required, so an image
# never silently means :latest.
_IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?P<digest>@sha256:[a-f0-9]{64})?$"
)
# What every name leanline gives the TF Serving resources ends with.
SERVING_SUFFIX = "-serving"


def _label_problem(key: str, value: str) -> str | None:
    """What is wrong with one `key: value` label, by Kubernetes' rules, or None."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > KUBERNETES_SUBDOMAIN_MAX or not _RFC1123_SUBDOMAIN.match(prefix)):
        return f"label key {key!r}: its prefix must be a DNS subdomain (e.g. example.com/)"
    if len(name) > KUBERNETES_LABEL_MAX or not _LABEL_NAME.match(name):
        return (
            f"label key {key!r}: its name must be 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    if value and (len(value) > KUBERNETES_LABEL_MAX or not _LABEL_NAME.match(value)):
        return (
            f"label {key}: value {value!r} must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def _checked_labels(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        raise ValueError(
            "name the clients by at least one label: an empty selector would admit every pod"
        )
    problems = [p for key, value in labels.items() if (p := _label_problem(key, value))]
    if problems:
        raise ValueError("; ".join(problems))
    return labels


class ServingClient(StrictSection):
    """Pods the NetworkPolicy lets reach TF Serving: those carrying every one of
    `pod_labels`, in the server's namespace, or with `namespace_labels` in every
    namespace that carries all of those (`kubernetes.io/metadata.name: NAME` names one)."""

    pod_labels: dict[str, str]
    namespace_labels: dict[str, str] | None = None

    @field_validator("pod_labels", "namespace_labels")
    @classmethod
    def _valid_selector(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        return None if labels is None else _checked_labels(labels)


class NetworkPolicyConfig(StrictSection):
    # Clients admitted besides the pods labelled `leanline/client-of: <name>-serving`,
    # which always are; no other pod reaches the gRPC or REST port.
    allowed_clients: list[ServingClient] = []


class ServingTlsConfig(StrictSection):
    # A kubernetes.io/tls Secret in the server's namespace (e.g. cert-manager's):
    # tls.crt and tls.key, and ca.crt when client_verify is on.
    secret_name: str
    # Mutual TLS: TF Serving accepts only gRPC clients whose certificate ca.crt signed.
    client_verify: bool = True

    @field_validator("secret_name")
    @classmethod
    def _valid_secret_name(cls, name: str) -> str:
        if len(name) > KUBERNETES_SUBDOMAIN_MAX or not _RFC1123_SUBDOMAIN.match(name):
            raise ValueError(
                f"{name!r} is no Kubernetes Secret name: lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit, at most 253 characters"
            )
        return name


class ServingConfig(StrictSection):
    # TF Serving's batching parameters (batching.config).
    max_batch_size: PositiveInt = 128
    batch_timeout_micros: NonNegativeInt = 2000
    max_enqueued_batches: PositiveInt = 100
    num_batch_threads: PositiveInt = 4
    # Eval examples written as warm-up requests into assets.extra.
    warmup_requests: NonNegativeInt = 16
    # Serve each version's end-to-end int8 model.tflite instead of its SavedModel
    # (TF Serving's experimental --prefer_tflite_model), with these interpreter pools.
    prefer_tflite: bool = False
    num_tflite_pools: PositiveInt = 1
    num_tflite_interpreters_per_pool: PositiveInt = 1
    # Kubernetes.
    replicas: PositiveInt = 1
    max_replicas: PositiveInt = 4
    cpu: str = "1"
    memory: str = "2Gi"
    model_base_path: str = "/models"
    # The Deployment's TF Serving image, with a tag, a digest or both
    # (`registry.example.com/tensorflow/serving:2.19.1@sha256:<64 hex>`: the digest pins
    # the bytes); unset: serving.configs.SERVING_IMAGE.
    image: str | None = None
    # Who may connect: a NetworkPolicy admits only these clients.
    network_policy: NetworkPolicyConfig = NetworkPolicyConfig()
    # gRPC over TLS (TF Serving's --ssl_config_file) from a Secret; unset: plaintext.
    tls: ServingTlsConfig | None = None

    @field_validator("image")
    @classmethod
    def _valid_image(cls, image: str | None) -> str | None:
        if image is None:
            return None
        match = _IMAGE_REFERENCE.match(image)
        if not match or not (match["tag"] or match["digest"]):
            raise ValueError(
                f"{image!r} is no image reference with a tag or digest: write "
                "REPOSITORY:TAG, REPOSITORY@sha256:<64 hex digits> or both, "
                "e.g. tensorflow/serving:2.19.1@sha256:..."
            )
        return image


def kubernetes_app_name(name: str) -> str:
    """`<name>-serving`, the name of every TF Serving resource and its `app` label, checked
    against Kubernetes' rules before anything is written: a Service name is an RFC 1035
    label (at most 63 lowercase letters, digits and '-'), and leanline names allow '_'
    and up to 63 characters, which would make `kubectl apply` refuse the file."""
    app = f"{name}{SERVING_SUFFIX}"
    if len(app) <= KUBERNETES_LABEL_MAX and _RFC1035_LABEL.match(app):
        return app
    longest = KUBERNETES_LABEL_MAX - len(SERVING_SUFFIX)
    suggestion = name.replace("_", "-")[:longest].rstrip("-")
    raise UserError(
        f"name {name!r}: the Kubernetes resources would be named {app!r}, and Kubernetes "
        f"allows at most {KUBERNETES_LABEL_MAX} lowercase letters, digits and '-' "
        f"(an RFC 1035 label); set a name of at most {longest} characters without '_', "
        f"e.g. {suggestion!r}"
    )


class ServedModel(Protocol):
    """What serving reads of a run's config: its name, its `serving` section and where
    pushed versions go. pipeline.config.LeanlineConfig is one; serving names this shape
    rather than importing it from the floor above."""

    @property
    def name(self) -> str: ...

    @property
    def serving(self) -> ServingConfig: ...

    @property
    def serving_model_dir(self) -> Path: ...
