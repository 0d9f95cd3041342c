"""Hostile input: schemathesis generates requests from the OpenAPI schema, plus a hand-written malformed suite.
No response may be a 5xx, and the server answers /health afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance  # noqa: E402

from inbedder.serve.app import create_app  # noqa: E402
from inbedder.serve.config import ServeConfig  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
CONFIG = ServeConfig(max_inputs=16, max_input_chars=200, max_body_bytes=20_000)


@pytest.fixture(scope="module")
def app(tiny_bert) -> Iterator:
    application = create_app({"bert": tiny_bert}, CONFIG)
    with TestClient(application):  # runs the lifespan: the model worker starts
        yield application


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schema_driven_requests_never_5xx(app, mode: str) -> None:
    """Requests generated from our OpenAPI schema (valid ones, and ones that break it), sent to the ASGI app."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    strategy = schema.as_strategy(schemathesis.GenerationMode(mode))
    statuses: list[int] = []

    @given(case=strategy)
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        response = case.call_and_validate(checks=CHECKS)
        statuses.append(response.status_code)

    run()
    assert len(statuses) >= 10 and max(statuses) < 500
    assert {200, 400} & set(statuses)


def _post(client: TestClient, content: bytes, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return client.post("/v1/embeddings", content=content, headers=headers)


MALFORMED: list[tuple[str, bytes, str | None]] = [
    ("invalid json", b'{"input": [', "application/json"),
    ("not an object", b"[1, 2, 3]", "application/json"),
    ("a bare string", b'"hello"', "application/json"),
    ("null", b"null", "application/json"),
    ("empty body", b"", "application/json"),
    ("non-utf8", b'{"input": "\xff\xfe\xfd"}', "application/json"),
    ("utf-16 bytes", '{"input": "x"}'.encode("utf-16"), "application/json"),
    ("no content type", b'{"input": "x"}', None),
    ("form data", b"input=x", "application/x-www-form-urlencoded"),
    ("text/plain", b"hello", "text/plain"),
    ("deep nesting", b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
    ("huge number", b'{"input": "x", "dimensions": 1' + b"0" * 5000 + b"}", "application/json"),
    ("lone surrogate", b'{"input": "\\ud800"}', "application/json"),
    ("lone surrogate in a list", b'{"input": ["ok", "\\udfff x"]}', "application/json"),
    ("NaN literal", b'{"input": "x", "dimensions": NaN}', "application/json"),
    ("duplicate keys", b'{"input": "x", "input": 5}', "application/json"),
    ("nul character", b'{"input": "a\\u0000b"}', "application/json"),
]

BODIES: list[tuple[str, object]] = [
    ("token ids", {"input": [1, 2, 3]}),
    ("nested token ids", {"input": [[1, 2], [3]]}),
    ("input number", {"input": 5}),
    ("input object", {"input": {"text": "x"}}),
    ("input null", {"input": None}),
    ("empty list", {"input": []}),
    ("too many inputs", {"input": ["x"] * 17}),
    ("too long input", {"input": ["ok", "x" * 201]}),
    ("instruction list too short", {"input": ["a", "b", "c"], "instruction": ["one"]}),
    ("instruction list too long", {"input": "a", "instruction": ["one", "two"]}),
    ("instruction number", {"input": "a", "instruction": 3}),
    ("instruction nested", {"input": ["a"], "instruction": [["x"]]}),
    ("encoding hex", {"input": "a", "encoding_format": "hex"}),
    ("encoding null", {"input": "a", "encoding_format": None}),
    ("encoding number", {"input": "a", "encoding_format": 64}),
    ("dimensions negative", {"input": "a", "dimensions": -1}),
    ("dimensions float", {"input": "a", "dimensions": 2.5}),
    ("dimensions string", {"input": "a", "dimensions": "8"}),
    ("dimensions too big", {"input": "a", "dimensions": 10**6}),
    ("unknown model", {"input": "a", "model": "text-embedding-3-small"}),
    ("model number", {"input": "a", "model": 1}),
    ("user object", {"input": "a", "user": {"id": 1}}),
    ("unknown field", {"input": "a", "temperature": 0.5}),
    ("emoji and control characters", {"input": ["\u0000\u0007\t🙂" * 10, "\u202e right-to-left"]}),
]


def test_malformed_requests_get_4xx_and_the_server_survives(app) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        statuses = {}
        for name, content, content_type in MALFORMED:
            r = _post(client, content, content_type)
            statuses[name] = r.status_code
            if r.status_code >= 400:
                error = r.json()["error"]
                assert set(error) == {"message", "type", "param", "code"} and error["message"], name
        for name, body in BODIES:
            r = client.post("/v1/embeddings", content=json.dumps(body), headers={"content-type": "application/json"})
            statuses[name] = r.status_code
            if name != "emoji and control characters":
                assert r.status_code in (400, 404), (name, r.text)
                assert r.json()["error"]["message"], name
        too_big = _post(client, json.dumps({"input": ["x" * 150] * 200}).encode())
        statuses["body over the limit"] = too_big.status_code
        assert too_big.status_code == 413
        for path, method in (("/v1/answers", "post"), ("/v1/models", "delete"), ("/nope", "get"),
                             ("/v1/embeddings", "get"), ("/v1/embeddings/../../etc/passwd", "get")):
            r = getattr(client, method)(path)
            statuses[f"{method} {path}"] = r.status_code
            assert r.status_code < 500 and "error" in r.json(), (path, r.text)
        bad_length = client.post("/v1/embeddings", content=b'{"input": "x"}',
                                 headers={"content-type": "application/json", "content-length": "abc"})
        statuses["bad content-length"] = bad_length.status_code
        server_errors = {name: status for name, status in statuses.items() if status >= 500}
        assert not server_errors, server_errors
        assert statuses["emoji and control characters"] == 200
        assert statuses["unknown model"] == 404 and statuses["token ids"] == 400
        assert client.get("/health").json()["status"] == "ok"
        assert client.post("/v1/embeddings", json={"input": "still serving"}).status_code == 200
