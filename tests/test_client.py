"""`leanline predict` against the TF Serving test double over TLS on loopback: mutual
TLS, the bearer token, timeouts, bounded retries, batching at TF Serving's
max_batch_size, and every odd reply a readable error.

The model is small but real: a SavedModel with the signatures leanline exports
(models/common/export.py: `serving_default` on serialized tf.Examples, `serving_raw` on
the raw features, outputs `outputs` and `classes`), whose answer for a row is
sigmoid(x), so each of 1,000 rows can be checked in its place without a pipeline run.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tf_serving_double import make_loopback_pki, serve_models

from models.errors import UserError
from pipeline import cli
from serving import client
from serving.config import ServingConfig

MODEL = "scorer"
TOKEN = "leanline-test-token.A1~+/="
QUICK_RETRIES = client.Retries(attempts=3, first_backoff_s=0.01)


class _Scorer(tf.Module):
    """P(class "1") = sigmoid(x) of one float feature `x`."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        spec = {"x": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}
        return self._outputs(tf.io.parse_example(examples, spec)["x"])

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve_raw(self, x):
        return self._outputs(x)

    def _outputs(self, x):
        classes = tf.tile(tf.constant([["0", "1"]]), tf.stack([tf.shape(x)[0], 1]))
        return {"outputs": tf.sigmoid(x), "classes": classes}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_loopback_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def double(tmp_path_factory, pki):
    """The double over TLS only, asking for the client certificate and the token, and
    batching as the batching.config leanline writes does."""
    base = tmp_path_factory.mktemp("serving") / MODEL
    scorer = _Scorer()
    signatures = {
        "serving_default": scorer.serve_examples.get_concrete_function(),
        "serving_raw": scorer.serve_raw.get_concrete_function(),
    }
    tf.saved_model.save(scorer, str(base / "1"), signatures=signatures)
    max_batch_size = ServingConfig().max_batch_size
    with serve_models(
        {MODEL: base}, max_batch_size=max_batch_size, pki=pki, token=TOKEN
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def token_and_no_faults(request, monkeypatch):
    monkeypatch.setenv(client.TOKEN_ENV, TOKEN)
    yield
    if "double" in request.fixturenames:
        request.getfixturevalue("double").faults.reset()


def server(double, transport: str) -> str:
    return double.grpc_url if transport == "grpc" else double.rest_url


def mutual_tls(pki) -> client.TlsFiles:
    return client.TlsFiles(pki.ca_cert, pki.client_cert, pki.client_key)


ROWS = [{"x": f"{(i - 500) / 100:.2f}"} for i in range(1000)]
EXPECTED = 1 / (1 + np.exp(-np.array([float(row["x"]) for row in ROWS], np.float32)))


TRANSPORTS = pytest.mark.parametrize("transport", ["grpc", "rest"])


@TRANSPORTS
def test_1000_rows_over_mutual_tls_go_in_batches_of_max_batch_size_and_answer_in_order(
    transport, double, pki
):
    double.models.predict_batches.clear()
    predictions = client.predict(server(double, transport), MODEL, ROWS, tls_files=mutual_tls(pki))
    assert client.DEFAULT_BATCH_SIZE == ServingConfig().max_batch_size == 128
    assert double.models.predict_batches == [128] * 7 + [104]
    np.testing.assert_allclose(predictions["outputs"][:, 0], EXPECTED, rtol=1e-6)
    names, probabilities = client.class_probabilities(predictions)
    assert names == ["0", "1"] and probabilities.shape == (1000, 2)


@TRANSPORTS
def test_a_batch_over_the_servers_max_batch_size_is_refused_once_with_what_to_do(
    transport, double, pki
):
    with pytest.raises(UserError) as refused:
        client.predict(
            server(double, transport), MODEL, ROWS, tls_files=mutual_tls(pki), batch_size=200
        )
    message = str(refused.value)
    assert "Task size 200 is larger than maximum input batch size 128" in message
    assert "pass --batch-size at most the server's max_batch_size" in message
    assert double.faults.predict_requests == 1  # refused, not retried


@TRANSPORTS
@pytest.mark.parametrize("ca", ["system", "other"])
def test_a_server_certificate_no_trusted_ca_signed_is_refused(transport, ca, double, pki):
    tls_files = client.TlsFiles(
        None if ca == "system" else pki.other_ca_cert, pki.client_cert, pki.client_key
    )
    with pytest.raises(UserError) as refused:
        client.predict(
            server(double, transport), MODEL, ROWS[:3], tls_files=tls_files, retries=QUICK_RETRIES
        )
    message = str(refused.value)
    if transport == "rest":
        assert message.startswith(f"TLS with TF Serving at {double.rest_url} failed:")
        assert "CERTIFICATE_VERIFY_FAILED" in message and "--ca-cert" in message
    else:
        assert message.startswith(f"cannot reach TF Serving over gRPC at {double.grpc}")
        assert "if it is TLS that fails, give the CA that signed its certificate" in message
    assert double.faults.predict_requests == 0


@TRANSPORTS
def test_mutual_tls_without_a_client_certificate_is_refused(transport, double, pki):
    with pytest.raises(UserError) as refused:
        client.predict(
            server(double, transport),
            MODEL,
            ROWS[:3],
            tls_files=client.TlsFiles(pki.ca_cert),
            retries=QUICK_RETRIES,
        )
    assert "a client certificate it accepts (--client-cert, --client-key)" in str(refused.value)
    assert double.faults.predict_requests == 0


def test_half_a_client_certificate_is_refused(double, pki):
    half = client.TlsFiles(pki.ca_cert, client_cert=pki.client_cert)
    with pytest.raises(UserError, match="--client-cert and --client-key go together"):
        client.predict(double.rest_url, MODEL, ROWS[:3], tls_files=half)


@pytest.mark.parametrize(
    "plaintext", ["127.0.0.1:9", "grpc://127.0.0.1:9", "http://127.0.0.1:9"], ids=str
)
def test_a_token_or_tls_files_are_never_sent_in_the_clear(plaintext, pki, monkeypatch):
    with pytest.raises(UserError, match=f"{client.TOKEN_ENV} need TLS") as refused:
        client.predict(plaintext, MODEL, ROWS[:1])
    assert TOKEN not in str(refused.value)
    monkeypatch.delenv(client.TOKEN_ENV)
    with pytest.raises(UserError, match="--ca-cert, --client-cert and --client-key need TLS"):
        client.predict(plaintext, MODEL, ROWS[:1], tls_files=mutual_tls(pki))


@TRANSPORTS
def test_a_wrong_token_is_refused_and_never_shown_even_when_the_server_echoes_it(
    transport, double, pki, monkeypatch
):
    wrong = "not-the-token-8c1f"
    monkeypatch.setenv(client.TOKEN_ENV, wrong)
    with pytest.raises(UserError) as refused:
        client.predict(server(double, transport), MODEL, ROWS[:3], tls_files=mutual_tls(pki))
    message = str(refused.value)
    assert "refused the credentials" in message and f"set {client.TOKEN_ENV}" in message
    # The double's proxy echoes the header; leanline shows the variable's name instead.
    assert f"Authorization: Bearer <{client.TOKEN_ENV}>" in message
    assert wrong not in message


@pytest.mark.parametrize("token", ["abc7\r\nX-Injected: 1", "Bearer abc7f3", "abc7 f3"])
def test_a_token_that_is_no_bearer_token_is_refused_without_being_shown(token, monkeypatch):
    monkeypatch.setenv(client.TOKEN_ENV, token)
    with pytest.raises(UserError, match=f"{client.TOKEN_ENV} is not a bearer token") as refused:
        client.predict("https://127.0.0.1:9", MODEL, ROWS[:1])
    assert token not in str(refused.value)


@TRANSPORTS
def test_a_slow_answer_ends_at_the_timeout_and_is_not_retried(transport, double, pki):
    double.faults.delay_s = 3.0
    started = time.monotonic()
    with pytest.raises(UserError, match=r"gave no answer within 0\.5 s; raise --timeout"):
        client.predict(
            server(double, transport), MODEL, ROWS[:3], tls_files=mutual_tls(pki), timeout_s=0.5
        )
    assert time.monotonic() - started < 2.5
    assert double.faults.predict_requests == 1


@TRANSPORTS
def test_an_unavailable_server_is_retried_with_backoff_a_bounded_number_of_times(
    transport, double, pki
):
    backoff = client.Retries(attempts=3, first_backoff_s=0.2)
    double.faults.unavailable_calls = 2  # the metadata call's first two attempts
    predictions = client.predict(
        server(double, transport), MODEL, ROWS[:3], tls_files=mutual_tls(pki), retries=backoff
    )
    assert len(predictions["outputs"]) == 3

    double.faults.unavailable_calls = 4
    started = time.monotonic()
    with pytest.raises(UserError, match=r"cannot reach TF Serving .*\(3 attempts\)"):
        client.predict(
            server(double, transport), MODEL, ROWS[:3], tls_files=mutual_tls(pki), retries=backoff
        )
    assert time.monotonic() - started >= 0.2 + 0.4  # waited, twice as long the second time
    assert double.faults.unavailable_calls == 1  # three attempts, not four


ODD_REPLIES = [
    ("grpc", "huge_empty_tensor", r"output 'outputs' has shape \[3, 1099511627776\]"),
    ("grpc", "wrong_dtype", "output 'outputs' is DT_STRING; the signature declares DT_FLOAT"),
    ("grpc", "missing_output", r"answered outputs \['classes'\]; the signature declares"),
    ("grpc", "oversize", f"more than {client.MAX_REPLY_BYTES} bytes"),
    ("rest", "wrong_dtype", "output 'outputs' holds <U.* values; the signature declares DT_FLOAT"),
    ("rest", "missing_output", r"does not hold exactly the declared outputs"),
    ("rest", "oversize", f"a body of over {client.MAX_REPLY_BYTES} bytes"),
    ("rest", "not_json", r"not JSON \(Expecting value"),
]


@pytest.mark.parametrize(
    ("transport", "reply", "what"),
    ODD_REPLIES,
    ids=[f"{transport}-{reply}" for transport, reply, _ in ODD_REPLIES],
)
def test_an_odd_reply_is_an_error_naming_the_server_the_model_and_what_is_wrong(
    transport, reply, what, double, pki
):
    double.faults.reply = reply
    double.faults.oversize_bytes = client.MAX_REPLY_BYTES + 1
    with pytest.raises(UserError) as refused:
        client.predict(server(double, transport), MODEL, ROWS[:3], tls_files=mutual_tls(pki))
    message = str(refused.value)
    assert message.startswith(
        f"TF Serving at {server(double, transport)} gave model {MODEL!r} a reply leanline "
        "cannot use: "
    )
    assert message.endswith("and --signature the signature")
    assert re.search(what, message), message


@TRANSPORTS
def test_a_signature_the_server_does_not_declare_is_refused_before_predict(transport, double, pki):
    with pytest.raises(UserError, match=r"has no signature 'nope'; it has \['serving_default', "):
        client.predict(
            server(double, transport), MODEL, ROWS[:3], signature="nope", tls_files=mutual_tls(pki)
        )
    assert double.faults.predict_requests == 0


def test_a_redirect_is_not_followed(double, pki):
    double.faults.reply = "redirect"
    with pytest.raises(UserError, match=r"redirects \(HTTP 307\) to http://127\.0\.0\.1:9/"):
        client.predict(double.rest_url, MODEL, ROWS[:3], tls_files=mutual_tls(pki))


@pytest.mark.parametrize(
    ("server_arg", "transport", "endpoint"),
    [
        ("localhost:8500", None, ("grpc", "localhost", 8500, False)),
        ("localhost:8501", "rest", ("rest", "localhost", 8501, False)),
        ("grpcs://serving.example", None, ("grpc", "serving.example", 443, True)),
        ("https://serving.example:8443", "rest", ("rest", "serving.example", 8443, True)),
        ("http://[::1]:8501", None, ("rest", "[::1]", 8501, False)),
    ],
)
def test_the_server_url_names_the_transport_and_tls(server_arg, transport, endpoint):
    parsed = client.parse_endpoint(server_arg, transport)
    assert (parsed.transport, parsed.host, parsed.port, parsed.tls) == endpoint


@pytest.mark.parametrize(
    ("server_arg", "transport", "error"),
    [
        ("https://https://host:443", None, "must name a host and port only"),
        ("https://host/v1/models/other", None, "must name a host and port only"),
        ("http://host", None, "needs a port"),
        ("ftp://host:21", None, "unknown scheme 'ftp'"),
        ("https://host:443", "grpc", "is a rest address but --grpc was asked for"),
        ("host", None, "must be HOST:PORT"),
        ("http://host:99999", None, "not a number from 1 to 65535"),
    ],
)
def test_a_server_url_of_another_form_is_refused(server_arg, transport, error):
    with pytest.raises(UserError, match=error):
        client.parse_endpoint(server_arg, transport)


def write_rows(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["x"])
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def test_predict_cli_sends_1000_rows_over_tls_with_its_flags(double, pki, tmp_path, capsys):
    double.models.predict_batches.clear()
    argv = ["predict", "--server", double.rest_url, "--model", MODEL, "--json"]
    argv += ["--input", str(write_rows(tmp_path / "rows.csv")), "--batch-size", "100"]
    argv += ["--timeout", "10", "--ca-cert", str(pki.ca_cert)]
    argv += ["--client-cert", str(pki.client_cert), "--client-key", str(pki.client_key)]
    assert cli.main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["row"] for record in records] == list(range(1, 1001))
    np.testing.assert_allclose([r["probabilities"]["1"] for r in records], EXPECTED, rtol=1e-6)
    assert double.models.predict_batches == [100] * 10


def test_predict_cli_exits_2_on_an_odd_reply_without_a_traceback(double, pki, tmp_path, capsys):
    double.faults.reply = "huge_empty_tensor"
    # --verbose keeps the test session's stderr (else native writes go to /dev/null).
    argv = ["--verbose", "predict", "--server", double.grpc_url, "--model", MODEL]
    argv += ["--ca-cert", str(pki.ca_cert)]
    argv += ["--input", str(write_rows(tmp_path / "rows.csv"))]
    argv += ["--client-cert", str(pki.client_cert), "--client-key", str(pki.client_key)]
    assert cli.main(argv) == 2
    stderr = capsys.readouterr().err
    assert "a reply leanline cannot use: output 'outputs' has shape [128, 1099511627776]" in stderr
    assert "Traceback" not in stderr and TOKEN not in stderr


@pytest.mark.parametrize(("flag", "value"), [("--timeout", "0"), ("--batch-size", "-5")])
def test_predict_cli_refuses_a_timeout_or_batch_size_that_is_not_above_zero(
    flag, value, tmp_path, capsys
):
    argv = ["predict", "--server", "grpcs://127.0.0.1:9", "--model", MODEL, flag, value]
    with pytest.raises(SystemExit) as usage_error:
        cli.main([*argv, "--input", str(write_rows(tmp_path / "rows.csv"))])
    assert usage_error.value.code == 2
    assert f"argument {flag}: '{value}': must be above 0" in capsys.readouterr().err
