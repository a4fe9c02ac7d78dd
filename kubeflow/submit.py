"""Submits a compiled pipeline package (kubeflow/runner.py's YAML) to Kubeflow Pipelines v2.

Credentials come only from the environment (KFP_TOKEN: a bearer token, KFP_COOKIE:
a Cookie header, e.g. an authservice session) and are never printed or logged; they
travel only over https, or plain http to a loopback address (a port-forward).
kfp.Client's own sources of credentials and settings (~/.config/kfp/context.json, an
OAuth login that prompts on stdin, gcloud, the kube config) are never used.
Everything a user can get wrong (the package, the host, the credentials, the
parameters) ends in a UserError that says what to fix.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kfp
import kfp_server_api
import urllib3
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from models.errors import UserError

TOKEN_ENV = "KFP_TOKEN"
COOKIE_ENV = "KFP_COOKIE"
# The reachability check must fail fast; KFP's own health check retries for 25 s.
HEALTH_CHECK_TIMEOUT_S = 10
YAML_SUFFIXES = (".yaml", ".yml")
# Plain http is only for a port-forward on this machine.
LOOPBACK_NAMES = ("localhost",)
PORT_FORWARD_HINT = (
    "kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80, then --host http://localhost:8080"
)

_ParameterType = pipeline_spec_pb2.ParameterType.ParameterTypeEnum


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    experiment_id: str
    run_name: str
    pipeline_root: str
    url: str


def read_package(path: str | os.PathLike[str]) -> pipeline_spec_pb2.PipelineSpec:
    """The PipelineSpec in a compiled YAML package, parsed strictly."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"pipeline package not found: {path} (create it with `leanline compile kubeflow`)"
        )
    if path.suffix not in YAML_SUFFIXES:
        raise UserError(
            f"{path}: Kubeflow Pipelines takes a .yaml pipeline spec; a Vertex AI PipelineJob "
            "(.json, `--format vertex`) is submitted with Vertex AI instead"
        )
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a pipeline spec (unreadable YAML: {error})") from None
    if not documents or not isinstance(documents[0], dict):
        raise UserError(f"{path}: not a pipeline spec (expected a YAML mapping)")
    spec = pipeline_spec_pb2.PipelineSpec()
    try:
        json_format.ParseDict(documents[0], spec)
    except json_format.ParseError as error:
        raise UserError(f"{path}: not a pipeline spec ({error})") from None
    if not spec.pipeline_info.name or not spec.root.dag.tasks:
        raise UserError(f"{path}: not a pipeline spec (no pipelineInfo.name or no tasks)")
    return spec


def parse_parameters(
    assignments: Iterable[str], spec: pipeline_spec_pb2.PipelineSpec
) -> dict[str, Any]:
    """`name=value` pairs, each converted to the type the pipeline declares for it."""
    declared = spec.root.input_definitions.parameters
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or not name:
            raise UserError(f"--param {assignment!r}: expected NAME=VALUE")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise UserError(
                f"--param {name}: the pipeline has no such parameter (it declares: {known})"
            )
        values[name] = _convert(name, text, declared[name].parameter_type)
    return values


def _convert(name: str, text: str, parameter_type: int) -> Any:
    try:
        if parameter_type == _ParameterType.NUMBER_INTEGER:
            return int(text)
        if parameter_type == _ParameterType.NUMBER_DOUBLE:
            return float(text)
        if parameter_type == _ParameterType.BOOLEAN:
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return text.lower() == "true"
        if parameter_type in (_ParameterType.LIST, _ParameterType.STRUCT):
            return json.loads(text)
    except ValueError as error:
        type_name = _ParameterType.Name(parameter_type)
        raise UserError(f"--param {name}: {text!r} is not a valid {type_name} ({error})") from None
    return text


def submit(
    package: str | os.PathLike[str],
    host: str,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    namespace: str | None = None,
    parameters: Iterable[str] = (),
) -> SubmittedRun:
    """Starts one run of `package` on the KFP API at `host`; the pipeline root is the
    one the package was compiled with."""
    spec = read_package(package)
    arguments = parse_parameters(parameters, spec)
    if not spec.default_pipeline_root:
        raise UserError(
            f"{package}: the package names no pipeline root; recompile it with --pipeline-root"
        )
    host = _api_host(host)
    credentials = _credentials_from_env()
    run_name = run_name or f"{spec.pipeline_info.name} {datetime.now():%Y-%m-%d %H:%M:%S}"
    with _kfp_errors(host):
        _check_endpoint(host, credentials)
        # kfp.Client warns that it needs a v2 backend and prints links; the CLI prints its own.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            client = _EnvironmentCredentialsClient(
                _api_configuration(host, credentials),
                namespace=namespace,
                cookie=credentials.get("cookie"),
            )
            result = client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=run_name,
                experiment_name=experiment,
                namespace=namespace,
                pipeline_root=spec.default_pipeline_root,
            )
    info = result.run_info
    return SubmittedRun(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        run_name=run_name,
        pipeline_root=spec.default_pipeline_root,
        url=f"{host}/#/runs/details/{info.run_id}",
    )


def _api_host(host: str) -> str:
    """The API's base URL: https, or http to a loopback address, and no user:password@
    (a credential on the command line shows in `ps` and the shell's history)."""
    if not host.startswith(("http://", "https://")):
        raise UserError(
            f"--host {host!r}: give the full URL, e.g. https://kubeflow.example.com/pipeline"
        )
    url = urlsplit(host)
    if url.username is not None or url.password is not None:
        raise UserError(
            f"--host {url.scheme}://{url.hostname}...: no credentials in the URL; "
            f"set {TOKEN_ENV} or {COOKIE_ENV} in the environment instead"
        )
    if url.scheme == "http" and not _is_loopback(url.hostname or ""):
        raise UserError(
            f"--host {host}: plain http would carry {TOKEN_ENV}, {COOKIE_ENV} and the pipeline "
            "unencrypted across the network; use the https URL of the endpoint, or a "
            f"port-forward to this machine ({PORT_FORWARD_HINT})"
        )
    return host.rstrip("/")


def _is_loopback(hostname: str) -> bool:
    if hostname in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _credentials_from_env() -> dict[str, str]:
    """Token and cookie, left out when unset or empty."""
    values = {"token": os.environ.get(TOKEN_ENV), "cookie": os.environ.get(COOKIE_ENV)}
    return {key: value for key, value in values.items() if value}


def _api_configuration(host: str, credentials: Mapping[str, str]) -> kfp_server_api.Configuration:
    """The API client's settings: the host, and the bearer token if one is set."""
    configuration = kfp_server_api.Configuration(host=host)
    if "token" in credentials:
        configuration.api_key["authorization"] = credentials["token"]
        configuration.api_key_prefix["authorization"] = "Bearer"
    return configuration


class _EnvironmentCredentialsClient(kfp.Client):
    """kfp.Client with only the settings submit gives it.

    kfp.Client on its own also reads ~/.config/kfp/context.json (a cookie, an extra
    header, the namespace) and writes it back; with KF_PIPELINES_*_OAUTH2_* set it runs
    an OAuth login that prompts on stdin, which submit's captured stdout makes a silent
    hang; for a *.googleusercontent.com host it reads gcloud's credentials. The two
    methods that do so are replaced (kfp is pinned in requirements/constraints.txt, and
    tests/test_kubeflow.py fails if an upgrade reads the context file again).
    """

    def __init__(
        self,
        configuration: kfp_server_api.Configuration,
        *,
        namespace: str | None,
        cookie: str | None,
    ) -> None:
        self._configuration = configuration
        self._namespace = namespace
        super().__init__(host=configuration.host, namespace=namespace or "kubeflow", cookies=cookie)

    def _load_config(self, *_kfp_settings: Any) -> kfp_server_api.Configuration:
        return self._configuration

    def _load_context_setting_or_default(self) -> None:
        self._context_setting = {"namespace": self._namespace or ""}

    def set_user_namespace(self, namespace: str) -> None:
        """For this run only: nothing is written to kfp's context file."""
        self._context_setting["namespace"] = namespace


def _check_endpoint(host: str, credentials: Mapping[str, str]) -> None:
    """One health request, with a timeout and the run's credentials: a wrong host or
    a rejected credential shows up here, not after kfp.Client's retries."""
    configuration = _api_configuration(host, credentials)
    # No retries and no redirects: a login redirect is reported, not followed.
    configuration.retries = False
    with kfp_server_api.ApiClient(configuration, cookie=credentials.get("cookie")) as api_client:
        response = kfp_server_api.HealthzServiceApi(api_client).healthz_service_get_healthz(
            _preload_content=False, _request_timeout=HEALTH_CHECK_TIMEOUT_S
        )
    content_type = response.headers.get("Content-Type", "")
    if "json" not in content_type:
        raise UserError(
            f"{host} answered the KFP health check with {content_type or 'no content type'}, "
            "not the pipelines API (a login page?): check --host, and set "
            f"{TOKEN_ENV} or {COOKIE_ENV} if the endpoint needs a login"
        )


@contextlib.contextmanager
def _kfp_errors(host: str) -> Iterator[None]:
    """Turns transport and API errors into UserErrors that name the host, never the credentials."""
    try:
        yield
    except urllib3.exceptions.HTTPError as error:
        reason = getattr(error, "reason", None) or error
        raise UserError(
            f"cannot reach Kubeflow Pipelines at {host}: {reason}\n"
            "check --host (and the port-forward or ingress in front of the ml-pipeline service)"
        ) from None
    except kfp_server_api.ApiException as error:
        raise UserError(_describe_api_error(host, error)) from None


def _describe_api_error(host: str, error: kfp_server_api.ApiException) -> str:
    if not error.status:  # the generated client's wrapper for TLS failures
        return f"cannot reach Kubeflow Pipelines at {host}: {error.reason}"
    if 300 <= error.status < 400:
        location = (error.headers or {}).get("Location", "elsewhere")
        return (
            f"{host} redirects the pipelines API to {location} (a login page?): set "
            f"{TOKEN_ENV} or {COOKIE_ENV}, or point --host at the API itself"
        )
    if error.status in (401, 403):
        return (
            f"Kubeflow Pipelines at {host} refused the request ({error.status} {error.reason}): "
            f"set {TOKEN_ENV} to a valid bearer token or {COOKIE_ENV} to a session cookie, "
            "and check --namespace for multi-user installs"
        )
    detail = _api_message(error.body)
    return f"Kubeflow Pipelines at {host} answered {error.status} {error.reason}" + (
        f": {detail}" if detail else ""
    )


def _api_message(body: Any) -> str:
    """The `message` of a KFP error body, or the body's first line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        return str(json.loads(body).get("message", "")).strip()
    except (ValueError, AttributeError):
        return str(body).strip().splitlines()[0][:200]
