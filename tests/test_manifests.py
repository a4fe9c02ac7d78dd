"""Kubernetes manifests of TF Serving, checked as a hardened cluster would check them:
against Kubernetes' own schemas (kubernetes-validate's JSON schemas from Kubernetes'
OpenAPI, strict: an unknown field is an error), against the "restricted" Pod Security
Standard, for a NetworkPolicy that selects the server and admits only its clients, and
for TLS from a Secret. No cluster and no pipeline run: configs/taxi.yaml as loaded.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from models.errors import UserError
from pipeline.config import ConfigError, LeanlineConfig, load_config
from serving.configs import SERVING_IMAGE
from serving.manifests import (
    CLIENT_LABEL,
    SSL_CONFIG_FILE,
    SSL_CONFIG_MOUNT,
    serving_manifests,
    write_serving_manifests,
)

REPO = Path(__file__).resolve().parents[1]
# The oldest and the newest Kubernetes whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
DIGEST = "sha256:" + "0123456789abcdef" * 4
TLS = {"secret_name": "taxi-serving-tls"}
GATEWAY = {"pod_labels": {"app": "gateway"}, "namespace_labels": {"team": "web"}}
VARIANTS = {
    "defaults": {},
    "bucket": {"model_base_path": "gs://bucket/serving", "replicas": 2, "max_replicas": 2},
    "tls_digest_clients": {
        "tls": TLS,
        "image": f"{SERVING_IMAGE}@{DIGEST}",
        "network_policy": {"allowed_clients": [GATEWAY]},
    },
    "tls_without_client_verify": {"tls": {**TLS, "client_verify": False}},
}


@pytest.fixture(scope="module")
def taxi() -> LeanlineConfig:
    return load_config(REPO / "configs" / "taxi.yaml")


def by_kind(config: LeanlineConfig) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in serving_manifests(config)}


def pod_of(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return documents["Deployment"]["spec"]["template"]["spec"]


# --- the restricted Pod Security Standard -------------------------------------------------

# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version
# v1.25 onward). Baseline rules first, then restricted's.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
PROFILES = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every rule of the restricted Pod Security Standard the pod spec breaks, as
    `rule: where`; empty when it meets the standard. Checked: host namespaces, host
    process, privileged, host ports, hostPath and other volume types, AppArmor,
    SELinux, /proc mount, sysctls, allowPrivilegeEscalation false, runAsNonRoot,
    runAsUser not 0, seccomp RuntimeDefault or Localhost, capabilities drop ALL and
    add nothing but NET_BIND_SERVICE; in every container, init and ephemeral ones too."""
    found: list[str] = []
    pod_context = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"host namespaces: {field}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume types: {volume['name']} is {sorted(kinds)}")
    for sysctl in pod_context.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctls: {sysctl['name']}")
    _check_context(pod_context, "pod", found)
    containers = [
        container
        for key in ("initContainers", "containers", "ephemeralContainers")
        for container in pod.get(key, [])
    ]
    for container in containers:
        where = f"container {container['name']}"
        context = container.get("securityContext") or {}
        _check_context(context, where, found)
        if context.get("privileged"):
            found.append(f"privileged: {where}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"host ports: {where}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"/proc mount type: {where}")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(
                f"privilege escalation: {where} does not set allowPrivilegeEscalation false"
            )
        if context.get("runAsNonRoot") is False or not (
            context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")
        ):
            found.append(f"running as non-root: {where} does not set runAsNonRoot true")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get(
            "type"
        )
        if seccomp not in PROFILES:
            found.append(f"seccomp: {where} has {seccomp or 'no profile'}")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"capabilities: {where} does not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"capabilities: {where} adds {capabilities['add']}")
    return found


def _check_context(context: dict[str, Any], where: str, found: list[str]) -> None:
    """The rules a pod's and a container's securityContext share."""
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"host process: {where}")
    if context.get("runAsUser") == 0:
        found.append(f"running as non-root user: {where} sets runAsUser 0")
    app_armor = (context.get("appArmorProfile") or {}).get("type")
    if app_armor not in (None, *PROFILES):
        found.append(f"AppArmor: {where} has {app_armor}")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"SELinux: {where} has {selinux}")
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"seccomp: {where} is Unconfined")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_pod_meets_the_restricted_pod_security_standard(taxi, variant):
    pod = pod_of(by_kind(taxi.with_overrides(serving=VARIANTS[variant])))
    assert restricted_violations(pod) == []


def without_security_contexts(pod: dict[str, Any]) -> None:
    """The pod as leanline wrote it before issue 31: no securityContext anywhere."""
    pod.pop("securityContext")
    for container in pod["containers"]:
        container.pop("securityContext")


def set_path(document: Any, path: str, value: Any) -> None:
    """Sets `a.0.b` (keys and list indices) in a manifest."""
    *parents, last = path.split(".")
    for key in parents:
        document = document[int(key)] if isinstance(document, list) else document[key]
    document[int(last) if isinstance(document, list) else last] = value


def set_in(path: str, value: Any):
    return lambda pod: set_path(pod, path, value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            without_security_contexts,
            [
                "privilege escalation: container tf-serving",
                "running as non-root: container tf-serving",
                "seccomp: container tf-serving has no profile",
                "capabilities: container tf-serving does not drop ALL",
            ],
        ),
        (set_in("hostNetwork", True), ["host namespaces: hostNetwork"]),
        (set_in("volumes.0", {"name": "host", "hostPath": {"path": "/"}}), ["volume types: host"]),
        (set_in("containers.0.securityContext.privileged", True), ["privileged: container"]),
        (set_in("securityContext.runAsUser", 0), ["running as non-root user: pod"]),
        (set_in("containers.0.securityContext.runAsNonRoot", False), ["running as non-root:"]),
        (set_in("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}), ["seccomp: container tf-serving is Unconfined"]),
        (set_in("containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]), ["capabilities: container tf-serving adds"]),
        (set_in("containers.0.securityContext.allowPrivilegeEscalation", True), ["privilege escalation:"]),
        (set_in("containers.0.ports.0.hostPort", 8500), ["host ports:"]),
        (set_in("initContainers", [{"name": "setup", "image": "busybox:1"}]), ["privilege escalation: container setup", "capabilities: container setup"]),
    ],
)  # fmt: skip
def test_the_pod_security_check_finds_what_the_standard_forbids(taxi, change, expected):
    """The check can fail: on the manifests before issue 31 and on each forbidden setting."""
    pod = copy.deepcopy(pod_of(by_kind(taxi)))
    change(pod)
    found = restricted_violations(pod)
    for rule in expected:
        assert any(violation.startswith(rule) for violation in found), (rule, found)


def test_the_pod_runs_with_a_read_only_root_and_no_service_account_token(taxi):
    pod = pod_of(by_kind(taxi.with_overrides(serving={"tls": TLS})))
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] != 0
    empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        writable = {m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert writable <= empty_dirs, container["name"]
    (server,) = pod["containers"]
    assert {"name": "tmp", "mountPath": "/tmp"} in server["volumeMounts"]


# --- Kubernetes' schemas ------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_against_kubernetes_schemas(taxi, tmp_path, variant, version):
    path = write_serving_manifests(taxi.with_overrides(serving=VARIANTS[variant]), tmp_path)
    documents = list(yaml.safe_load_all(path.read_text()))
    assert {d["kind"] for d in documents} >= {"ConfigMap", "Deployment", "Service", "NetworkPolicy"}
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", "spec.template.spec.containers.0.readinesProbe", {}),
        ("Deployment", "spec.replicas", "two"),
        ("NetworkPolicy", "spec.ingress.0.from.0.podSelector.matchLabel", {}),
        ("Service", "spec.ports.0.port", "8500"),
    ],
)
def test_the_schema_check_refuses_what_kubernetes_would(taxi, kind, path, value):
    """The check can fail: a misspelt field or a wrong type is refused."""
    document = copy.deepcopy(by_kind(taxi)[kind])
    set_path(document, path, value)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[-1], strict=True)


# --- probes, image, names -----------------------------------------------------------------


def test_startup_readiness_and_liveness_probe_the_model_status_endpoint(taxi):
    (container,) = pod_of(by_kind(taxi))["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/v1/models/taxi", "port": 8501}, probe
    startup = container["startupProbe"]
    # A model that loads for minutes is not restarted: ten minutes before the first answer.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_an_image_digest_pins_both_containers_and_a_bad_image_is_refused(taxi):
    image = f"registry.example.com:5000/mirror/tensorflow/serving:2.19.1@{DIGEST}"
    pod = pod_of(by_kind(taxi.with_overrides(serving={"image": image, "tls": TLS})))
    assert [c["image"] for c in pod["initContainers"] + pod["containers"]] == [image, image]
    assert pod_of(by_kind(taxi))["containers"][0]["image"] == SERVING_IMAGE
    for bad in ("tensorflow/serving", "tensorflow/serving@sha256:abc", "Tensorflow/Serving:1"):
        with pytest.raises(ConfigError, match=r"serving\.image: .*with a tag or digest"):
            taxi.with_overrides(serving={"image": bad})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("taxi_v2", "'taxi_v2-serving'.*e.g. 'taxi-v2'"),
        ("t" * 56, f"at most 55 characters.*e.g. '{'t' * 55}'"),
    ],
)
def test_a_name_kubernetes_refuses_is_named_before_anything_is_written(
    taxi, tmp_path, name, message
):
    with pytest.raises(UserError, match=f"name '{name}': the Kubernetes resources.*{message}"):
        write_serving_manifests(taxi.with_overrides(name=name), tmp_path)
    assert not (tmp_path / "serving.yaml").exists()
    assert by_kind(taxi.with_overrides(name="t" * 55))["Service"]["metadata"]["name"] == (
        "t" * 55 + "-serving"
    )


# --- the NetworkPolicy --------------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def admits(policy: dict[str, Any], pod: dict[str, str], namespace: dict[str, str] | None) -> bool:
    """Whether a pod with these labels reaches the policy's pods; `namespace` is its
    namespace's labels, None for the server's own namespace."""
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            namespace_selector = peer.get("namespaceSelector")
            in_namespace = (
                namespace is None
                if namespace_selector is None
                else namespace is not None and selects(namespace_selector, namespace)
            )
            if in_namespace and selects(peer["podSelector"], pod):
                return True
    return False


def test_a_network_policy_selects_the_server_and_admits_only_its_clients(taxi):
    documents = by_kind(
        taxi.with_overrides(serving={"network_policy": {"allowed_clients": [GATEWAY]}})
    )
    policy = documents["NetworkPolicy"]
    pod_labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], pod_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert {port["port"] for port in rule["ports"]} == {8500, 8501}

    client = {CLIENT_LABEL: "taxi-serving"}
    assert admits(policy, client, None)
    assert admits(policy, {"app": "gateway"}, {"team": "web"})
    assert not admits(policy, {"app": "gateway"}, None)  # not in the gateway's namespaces
    assert not admits(policy, {"app": "gateway"}, {"team": "other"})
    assert not admits(policy, {"app": "anything"}, None)
    assert not admits(policy, client, {"team": "web"})  # the default client: same namespace
    assert not admits(policy, pod_labels, None)  # a server replica is no client
    # By default only the labelled clients.
    default_policy = by_kind(taxi)["NetworkPolicy"]
    assert admits(default_policy, client, None) and not admits(
        default_policy, {"app": "gateway"}, {"team": "web"}
    )


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ({"pod_labels": {}}, "an empty selector would admit every pod"),
        ({"pod_labels": {"app": "bad value!"}}, "value 'bad value!' must be"),
        ({"pod_labels": {"Bad_Prefix/app": "x"}}, "its prefix must be a DNS subdomain"),
        ({"pod_labels": {"app": "x"}, "namespace_labels": {}}, "an empty selector"),
    ],
)
def test_a_client_selector_kubernetes_refuses_is_a_config_error(taxi, client, message):
    with pytest.raises(
        ConfigError, match=rf"serving\.network_policy\.allowed_clients\.0\..*{message}"
    ):
        taxi.with_overrides(serving={"network_policy": {"allowed_clients": [client]}})


# --- TLS ----------------------------------------------------------------------------------


def ssl_config_class() -> type:
    """TF Serving's SSLConfig (tensorflow_serving/config/ssl_config.proto), which the
    tensorflow-serving-api wheel does not ship: its four fields, with upstream's numbers."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="test/ssl_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    message = file_proto.message_type.add(name="SSLConfig")
    kinds = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind) in enumerate(
        [("server_key", kinds.TYPE_STRING), ("server_cert", kinds.TYPE_STRING),
         ("custom_ca", kinds.TYPE_STRING), ("client_verify", kinds.TYPE_BOOL)],
        start=1,
    ):  # fmt: skip
        message.field.add(name=name, number=number, type=kind, label=kinds.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.SSLConfig")
    )


def pem(kind: str, body: str) -> str:
    return f"-----BEGIN {kind}-----\n{body}\n{body[::-1]}==\n-----END {kind}-----\n"


def run_ssl_config_container(container: dict[str, Any], secret: Path, output: Path):
    """The init container's own command, with the Secret and the output on this machine."""
    command = list(container["command"])
    command[4:6] = [str(secret), str(output)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_tls_makes_tf_serving_read_an_ssl_config_built_from_the_secret(taxi, tmp_path):
    pod = pod_of(by_kind(taxi.with_overrides(serving={"tls": TLS})))
    (server,) = pod["containers"]
    assert f"--ssl_config_file={SSL_CONFIG_MOUNT}/{SSL_CONFIG_FILE}" in server["args"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["tls-secret"]["secret"]["secretName"] == TLS["secret_name"]
    assert volumes["ssl-config"]["emptyDir"] == {"medium": "Memory"}  # the key stays off disk
    assert "tls-secret" not in {mount["name"] for mount in server["volumeMounts"]}

    secret = tmp_path / "secret"
    secret.mkdir()
    files = {
        "tls.key": pem("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC+/key"),
        "tls.crt": pem("CERTIFICATE", "MIIDazCCAlOgAwIBAgIUe+/cert"),
        "ca.crt": pem("CERTIFICATE", "MIIDbzCCAlegAwIBAgIUca+/ca"),
    }
    for name, text in files.items():
        (secret / name).write_text(text)
    (init,) = pod["initContainers"]
    output = tmp_path / SSL_CONFIG_FILE
    assert run_ssl_config_container(init, secret, output).returncode == 0
    assert output.stat().st_mode & 0o077 == 0  # only the pod's user reads the key
    parsed = text_format.Parse(output.read_text(), ssl_config_class()())
    assert parsed.server_key == files["tls.key"]
    assert parsed.server_cert == files["tls.crt"]
    assert parsed.custom_ca == files["ca.crt"]
    assert parsed.client_verify is True

    # Without client_verify TF Serving asks no client certificate, and needs no ca.crt.
    (secret / "ca.crt").unlink()
    result = run_ssl_config_container(init, secret, output)
    assert result.returncode == 1 and "the TLS secret has no ca.crt" in result.stderr
    one_way = taxi.with_overrides(serving={"tls": {**TLS, "client_verify": False}})
    (init,) = pod_of(by_kind(one_way))["initContainers"]
    assert run_ssl_config_container(init, secret, output).returncode == 0
    parsed = text_format.Parse(output.read_text(), ssl_config_class()())
    assert parsed.server_key == files["tls.key"] and not parsed.custom_ca
    assert parsed.client_verify is False


def test_without_tls_there_is_no_ssl_config_and_a_bad_secret_name_is_refused(taxi):
    pod = pod_of(by_kind(taxi))
    assert "initContainers" not in pod
    assert not any(arg.startswith("--ssl_config_file") for arg in pod["containers"][0]["args"])
    with pytest.raises(
        ConfigError, match=r"serving\.tls\.secret_name: .*no Kubernetes Secret name"
    ):
        taxi.with_overrides(serving={"tls": {"secret_name": "Taxi_TLS"}})
