"""TEST DOUBLE of the Kubeflow Pipelines v2beta1 REST API, for `leanline submit` tests.

It listens on 127.0.0.1 only (an ephemeral port), records every request kfp.Client
makes, and answers with the smallest JSON the client accepts: health, experiments
(list by name, create) and run creation. It runs nothing; it is not a KFP server.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class KfpApiDouble:
    """Use as a context manager; `url` is the base URL to pass as --host.

    With `token` set, every request must carry `Authorization: Bearer <token>`
    or it gets 401, as behind an authenticating proxy.
    """

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self.requests: list[RecordedRequest] = []
        self.experiments: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> KfpApiDouble:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == API + path]

    def respond(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(request)
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return 401, _error(16, "request is not authenticated")
            route = (request.method, request.path.removeprefix(API))
            if route == ("GET", "/healthz"):
                return 200, {"multi_user": False, "pipeline_store": "test-double"}
            if route == ("GET", "/experiments"):
                return 200, {"experiments": self._matching_experiments(request.query)}
            if route == ("POST", "/experiments"):
                experiment = {**request.body, "experiment_id": f"experiment-{next(self._ids)}"}
                self.experiments.append(experiment)
                return 200, experiment
            if route == ("POST", "/runs"):
                run = {**request.body, "run_id": f"run-{next(self._ids)}", "state": "PENDING"}
                self.runs.append(run)
                return 200, run
            return 404, _error(5, f"test double has no route {request.method} {request.path}")

    def _matching_experiments(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Honours the one filter kfp.Client sends: display_name EQUALS <name>."""
        names = {
            predicate["stringValue"]
            for text in query.get("filter", [])
            for predicate in json.loads(text).get("predicates", [])
            if predicate.get("key") == "display_name"
        }
        return [e for e in self.experiments if not names or e.get("display_name") in names]


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": message, "code": code, "message": message}


def _handler_for(double: KfpApiDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
            )
            status, payload = double.respond(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *_args: Any) -> None:  # keep test output quiet
            pass

    return Handler


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]
