"""Hostile input: schemathesis generates requests for every operation of ``/openapi.json`` (valid ones and ones
that break the schema), plus a hand-written malformed suite. No response may be a 5xx, every response must match
the schema, and the server answers /health and embeds afterwards."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from test_serve_live import LiveServer  # noqa: E402

from helpers.tiny_lms import build_tiny_roberta_mlm  # noqa: E402
from inbedder import load  # noqa: E402
from inbedder.serve.app import create_app  # noqa: E402
from inbedder.serve.config import ServeConfig  # noqa: E402

KEY = "fuzz-key"
CONFIG = ServeConfig(max_inputs=16, max_input_chars=200, max_body_bytes=20_000, api_keys=(KEY,))
ROUTES = {("POST", "/v1/embeddings"), ("POST", "/v1/answers"), ("GET", "/v1/models"), ("GET", "/health"),
          ("GET", "/metrics")}
FUZZ = {
    # the key goes where the schema asks for it (the HTTPBearer scheme); negative cases also break it
    "auth": {"openapi": {"HTTPBearer": {"bearer": KEY}}},
    # a request that fits the schema may still be refused with 400: one instruction per input is a rule that a
    # schema cannot say
    "checks": {"positive_data_acceptance": {"enabled": False},
               # a request that breaks the schema gets a 4xx of ours: 413 for a text over the character limit,
               # 415 for a body that is not JSON
               "negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 413, 415]}},
}


@pytest.fixture(scope="module")
def app(tiny_bert, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    mlm = load(build_tiny_roberta_mlm(tmp_path_factory.mktemp("fuzz_mlm")), device="cpu")
    application = create_app({"bert": tiny_bert, "mlm": mlm}, CONFIG)  # an encoder and an answer model
    with TestClient(application):  # runs the lifespan: the model workers start
        yield application


def _fuzz(op, mode: str) -> Counter[int]:
    """The statuses of one operation's generated requests."""
    seen: Counter[int] = Counter()

    @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        seen[case.call_and_validate().status_code] += 1

    try:
        run()
    except Unsatisfiable:  # nothing in the operation can be made invalid: no body, no parameters, no key
        assert mode == "negative" and op.path == "/health", op.path
    return seen


@pytest.fixture(scope="module")
def socket_url(app) -> Iterator[str]:
    """The same app behind uvicorn on a loopback port (real HTTP parsing of what the fuzzer sends)."""
    with LiveServer(app) as server:
        yield server.url


@pytest.mark.filterwarnings("ignore:.*were truncated")  # long generated texts
@pytest.mark.parametrize("target", ["asgi", "socket"])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_of_the_schema_never_5xx(app, request: pytest.FixtureRequest, mode: str, target: str) -> None:
    """Each operation of /openapi.json fuzzed on its own, with schemathesis' checks (all but one, see FUZZ), sent
    to the ASGI app and over a socket to uvicorn."""
    config = schemathesis.Config.from_dict(FUZZ)
    if target == "asgi":
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    else:
        schema = schemathesis.openapi.from_url(f"{request.getfixturevalue('socket_url')}/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == ROUTES
    statuses = {(op.method.upper(), op.path): _fuzz(op, mode) for op in operations}
    assert all(status < 500 for seen in statuses.values() for status in seen), statuses
    fuzzed = {route for route, seen in statuses.items() if sum(seen.values()) >= (1 if route[1] == "/health" else 10)}
    assert fuzzed == (ROUTES if mode == "positive" else ROUTES - {("GET", "/health")}), statuses
    if mode == "positive":  # valid requests reach the models, not only the validation
        assert statuses[("POST", "/v1/embeddings")][200] >= 3 and statuses[("POST", "/v1/answers")][200] >= 3, statuses
    else:
        assert all(seen[200] < sum(seen.values()) for route, seen in statuses.items() if route[1] != "/health")
    with TestClient(app) as client:
        assert client.get("/health").json()["status"] == "ok"
        r = client.post("/v1/embeddings", json={"model": "bert", "input": "still serving"},
                        headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200


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
    ("multipart", b'--b\r\nContent-Disposition: form-data; name="input"\r\n\r\nx\r\n--b--\r\n',
     "multipart/form-data; boundary=b"),
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
    ("empty string", {"input": ""}),
    ("empty string in a list", {"input": ["ok", ""]}),
    ("over the token limit", {"input": ["ok", "x " * 99]}),  # 198 characters, 101 tokens: the model reads 48
    ("over the token limit with its instruction", {"input": ["ok", "x " * 40], "instruction": [None, "y " * 10]}),
    ("truncate not a bool", {"input": "a", "truncate": "yes"}),
    ("truncate and chunk", {"input": "a", "truncate": True, "long_text": "chunk"}),
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


def test_the_schema_carries_the_server_limits_and_models(app) -> None:
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
    body = schema["components"]["schemas"]["EmbeddingRequest"]
    text, texts = body["properties"]["input"]["anyOf"]
    assert text["maxLength"] == texts["items"]["maxLength"] == CONFIG.max_input_chars
    assert text["minLength"] == texts["items"]["minLength"] == 1  # "" is refused
    assert texts["maxItems"] == CONFIG.max_inputs and texts["minItems"] == 1
    assert body["properties"]["model"]["enum"] == ["bert", "mlm"] and "model" in body["required"]
    assert body["properties"]["dimensions"]["anyOf"][0]["maximum"] == 32
    assert "422" not in schema["paths"]["/v1/embeddings"]["post"]["responses"]
    assert set(schema["paths"]["/metrics"]["get"]["responses"]["401"]["content"]) == {"application/json"}


@pytest.fixture(scope="module")
def one_model(tiny_bert) -> Iterator:
    """One model and no key: the bodies below reach the validation, not the model choice or the key check."""
    application = create_app({"bert": tiny_bert}, replace(CONFIG, api_keys=()))
    with TestClient(application):
        yield application


def test_every_path_with_every_method(one_model) -> None:
    """Every method on every path: never a 5xx; PUT, PATCH, DELETE and TRACE, which no route has, get a 405
    with the methods the path has in ``Allow``."""
    with TestClient(one_model, raise_server_exceptions=False) as client:
        for path in sorted({path for _, path in ROUTES} | {"/openapi.json", "/docs"}):
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"):
                r = client.request(method, path, content=b"{}", headers={"content-type": "application/json"})
                assert r.status_code < 500, (method, path, r.text)
                if (method, path) not in ROUTES and method in ("PUT", "PATCH", "DELETE", "TRACE"):
                    assert r.status_code == 405 and r.headers["allow"], (method, path)
        assert client.get("/health").json()["status"] == "ok"


def test_malformed_requests_get_4xx_and_the_server_survives(one_model) -> None:
    with TestClient(one_model, raise_server_exceptions=False) as client:
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
                assert r.status_code in (400, 404, 413), (name, r.text)
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
        assert statuses["unknown model"] == 404 and statuses["token ids"] == 400 and statuses["too long input"] == 413
        assert statuses["empty string"] == statuses["empty string in a list"] == 400
        assert statuses["over the token limit"] == statuses["over the token limit with its instruction"] == 413
        for name in ("form data", "multipart", "text/plain", "no content type"):
            assert statuses[name] == 415, name
        assert client.get("/health").json()["status"] == "ok"
        assert client.post("/v1/embeddings", json={"input": "still serving"}).status_code == 200
