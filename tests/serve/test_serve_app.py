"""The service in process (FastAPI's TestClient): OpenAI shapes, parity with ``encode``, errors, auth, metrics."""

from __future__ import annotations

import base64
import json
import re
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from helpers.tiny_lms import build_tiny_roberta_mlm  # noqa: E402
from inbedder import load  # noqa: E402
from inbedder.serve.app import create_app  # noqa: E402
from inbedder.serve.config import ServeConfig  # noqa: E402

TEXTS = ["A cat sat on the mat.", "Stocks fell sharply.", "   ", "A cat sat on the mat.", "Rain is expected tomorrow."]
PER_ROW = ["Represent the sentence:", "Represent the finance news:", None, "Represent the animal:", "Represent:"]


@pytest.fixture(scope="module")
def mlm(tmp_path_factory: pytest.TempPathFactory):
    return load(build_tiny_roberta_mlm(tmp_path_factory.mktemp("serve_mlm")), device="cpu")


@pytest.fixture(scope="module")
def client(tiny_bert, mlm, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("serve_cache") / "cache.sqlite"
    app = create_app({"bert": tiny_bert, "mlm": mlm}, ServeConfig(max_inputs=8, max_input_chars=50), cache=cache)
    with TestClient(app) as c:
        yield c


def vectors(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)


@pytest.mark.parametrize("instruction", ["Represent the sentence:", PER_ROW, None], ids=["one", "per-row", "none"])
def test_embeddings_match_encode(client: TestClient, tiny_bert, instruction) -> None:
    r = client.post("/v1/embeddings", json={"model": "bert", "input": TEXTS, "instruction": instruction})
    body = r.json()
    assert body["object"] == "list" and body["model"] == "bert"
    assert [row["index"] for row in body["data"]] == list(range(len(TEXTS)))
    assert {row["object"] for row in body["data"]} == {"embedding"}
    expected = tiny_bert.encode(TEXTS, instruction=instruction)
    assert np.abs(vectors(r) - expected).max() <= 1e-5
    pairs = list(zip(instruction if isinstance(instruction, list) else [instruction] * len(TEXTS), TEXTS, strict=True))
    tokens = sum(tiny_bert.encoder.token_counts(pairs))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "truncated_inputs": 0}


def test_single_string_base64_and_dimensions(client: TestClient, tiny_bert) -> None:
    expected = tiny_bert.encode("A dog ran.", instruction="Represent the sentence:")
    r = client.post("/v1/embeddings", json={"model": "bert", "input": "A dog ran.", "encoding_format": "base64",
                                            "instruction": "Represent the sentence:"})
    got = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert len(r.json()["data"]) == 1 and np.abs(got - expected).max() <= 1e-5
    r = client.post("/v1/embeddings", json={"model": "bert", "input": ["A dog ran."], "dimensions": 8,
                                            "instruction": ["Represent the sentence:"]})
    short = vectors(r)[0]
    assert short.shape == (8,)
    assert np.abs(short - expected[:8] / np.linalg.norm(expected[:8])).max() <= 1e-5


def test_several_instructions_give_every_input_under_each(client: TestClient, tiny_bert) -> None:
    questions, texts = ["What is the animal?", "What is the topic?", "Represent:"], TEXTS[:2]
    r = client.post("/v1/embeddings", json={"model": "bert", "input": texts, "instructions": questions,
                                            "dimensions": 8})
    data = r.json()["data"]
    assert [(d["index"], d["instruction_index"], d["input_index"]) for d in data] == [
        (j * 2 + i, j, i) for j in range(3) for i in range(2)]
    expected = tiny_bert.encode(texts, instructions=questions, dimensions=8).reshape(6, 8)
    assert np.abs(vectors(r) - expected).max() <= 1e-5
    tokens = sum(tiny_bert.encoder.token_counts([(q, t) for q in questions for t in texts]))  # each row as read
    assert r.json()["usage"]["prompt_tokens"] == tokens
    plain = client.post("/v1/embeddings", json={"model": "bert", "input": texts}).json()["data"]
    assert "instruction_index" not in plain[0]  # the OpenAI shape is unchanged without instructions


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_long_text_chunk_matches_encode(tiny_bert) -> None:
    long = "the cat sat on the mat " * 20 + "stocks fell at the bank " * 20
    with TestClient(create_app({"bert": tiny_bert})) as c:
        chunked = vectors(c.post("/v1/embeddings", json={"input": [long, "short"], "long_text": "chunk",
                                                         "chunk_overlap": 3}))
        r = c.post("/v1/embeddings", json={"input": [long, "short"], "truncate": True})
        assert r.json()["usage"]["truncated_inputs"] == 1
        cut = vectors(r)
        assert np.abs(vectors(c.post("/v1/embeddings", json={"input": [long, "short"], "long_text": "truncate"}))
                      - cut).max() <= 1e-6  # long_text 'truncate' says the same as truncate: true
        refused = c.post("/v1/embeddings", json={"input": [long, "short"]})
        assert refused.status_code == 413 and refused.json()["error"]["param"] == "input[0]"
    assert np.abs(chunked - tiny_bert.encode([long, "short"], long_text="chunk", chunk_overlap=3)).max() <= 1e-5
    assert np.abs(cut - tiny_bert.encode([long, "short"])).max() <= 1e-5
    assert np.abs(chunked[0] - cut[0]).max() > 1e-3 and np.abs(chunked[1] - cut[1]).max() <= 1e-5


def test_answers(client: TestClient, mlm) -> None:
    texts, question = ["I love cat!", "I dislike dog!"], "What is the animal mentioned here?"
    r = client.post("/v1/answers", json={"model": "mlm", "input": texts, "instruction": question,
                                         "include_embeddings": True})
    assert r.status_code == 200, r.text
    expected_vectors, expected_answers = mlm.encode(texts, instruction=question, return_generations=True)
    data = r.json()["data"]
    assert [row["answer"] for row in data] == expected_answers
    assert np.abs(np.array([row["embedding"] for row in data]) - expected_vectors).max() <= 1e-5
    r = client.post("/v1/answers", json={"model": "bert", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and "mlm" in r.json()["error"]["message"]


def test_models_health_metrics_openapi(client: TestClient) -> None:
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["bert"]["dimensions"] == 32 and models["mlm"]["answers"] is True
    assert client.get("/health").json()["status"] == "ok"
    client.post("/v1/embeddings", json={"model": "bert", "input": ["cache me"]})
    client.post("/v1/embeddings", json={"model": "bert", "input": ["cache me"]})
    text = client.get("/metrics").text
    assert 'inbedder_requests_total{path="/v1/embeddings",status="200"}' in text
    for name in ("inbedder_batch_rows_count", "inbedder_request_seconds_bucket", "inbedder_queue_rows",
                 "inbedder_cache_hits_total", "inbedder_cache_misses_total"):
        assert name in text, name
    hits = [line for line in text.splitlines() if line.startswith('inbedder_cache_hits_total{model="bert"}')]
    assert hits and float(hits[0].split()[-1]) >= 1
    schema = client.get("/openapi.json").json()
    assert {"/v1/embeddings", "/v1/answers", "/v1/models", "/health", "/metrics"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["EmbeddingRequest"]["properties"]
    assert {"input", "model", "encoding_format", "dimensions", "user", "instruction"} <= set(request)
    assert "422" not in schema["paths"]["/v1/embeddings"]["post"]["responses"]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"input": ["a", 3]}, 400, "input[1]"),
    ({"input": []}, 400, "input"),
    ({"input": ["a"] * 9}, 400, "input"),
    ({"input": ["ok", "x" * 51]}, 413, "input[1]"),
    ({"input": ["a", "b"], "instruction": ["only one"]}, 400, "instruction"),
    ({"input": ["ok", "\udfff"]}, 400, "input[1]"),
    ({"input": ["ok"], "instruction": ["\ud800"]}, 400, "instruction[0]"),
    ({"input": ["a", "b"], "instruction": ["fine", 7]}, 400, "instruction[1]"),
    ({"input": ["a", "b"], "instruction": ["fine", "y" * 51]}, 413, "instruction[1]"),
    ({"input": "a", "encoding_format": "hex"}, 400, "encoding_format"),
    ({"input": "a", "dimensions": 0}, 400, "dimensions"),
    ({"input": "a", "dimensions": 33}, 400, "dimensions"),
    ({"input": "a", "dimensions": True}, 400, "dimensions"),
    ({"input": "a", "instructions": "typo"}, 400, "instructions"),
    ({"input": "a", "instructions": []}, 400, "instructions"),
    ({"input": "a", "instructions": ["q"], "instruction": "q"}, 400, "instructions"),
    ({"input": ["a"] * 5, "instructions": ["q", "r"]}, 400, "input"),  # 10 rows over the limit of 8
    ({"input": "a", "instructions": ["q", "y" * 51]}, 413, "instructions[1]"),
    ({"input": "a", "long_text": "split"}, 400, "long_text"),
    ({"input": "a", "long_text": "chunk", "chunk_overlap": -1}, 400, "chunk_overlap"),
    ({"input": ""}, 400, "input"),
    ({"input": ["a", "", "b"]}, 400, "input[1]"),
    ({"input": [1, 2, 3]}, 400, "input"),
    ({"input": [[1, 2], [3]]}, 400, "input"),
    ({"input": "a", "truncate": "yes"}, 400, "truncate"),
    ({"input": "a", "truncate": True, "long_text": "chunk"}, 400, "truncate"),
    ({"input": ["ok", "x " * 25], "instruction": ["a", "y " * 25]}, 413, "input[1]"),  # 52 tokens with the
    # instruction, over the tiny model's 48; each alone fits
    ({"input": "a", "model": "nope"}, 404, "model"),
    ({"input": "a"}, 400, "model"),  # two models served: model is required
])
def test_errors_name_the_field(client: TestClient, body: dict, status: int, param: str) -> None:
    body = {"model": "bert", **body} if param != "model" else body
    r = client.post("/v1/embeddings", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"


@pytest.fixture(scope="module")
def strict(tiny_bert, mlm, llama) -> Iterator[TestClient]:
    """The default limits over an encoder (48 tokens), an answer model (masks in its row) and a causal model (an
    answer prompt around each text, room left for the answer's tokens)."""
    with TestClient(create_app({"bert": tiny_bert, "mlm": mlm, "llama": llama}), raise_server_exceptions=False) as c:
        yield c


BAD_INPUTS = [  # (path, body, status, param, what the message says)
    ("/v1/embeddings", {"input": ""}, 400, "input", "input is an empty string"),
    ("/v1/embeddings", {"input": ["a cat", ""]}, 400, "input[1]", "input[1] is an empty string"),
    ("/v1/answers", {"model": "mlm", "input": ["a cat", ""]}, 400, "input[1]", "input[1] is an empty string"),
    ("/v1/embeddings", {"input": "x " * 15_000}, 413, "input",  # 30,000 characters
     "input has 15002 tokens (its instruction and the model's prompt included); model 'bert' reads at most 48"),
    ("/v1/embeddings", {"input": ["a cat", "x " * 100]}, 413, "input[1]", "input[1] has 102 tokens"),
    ("/v1/answers", {"model": "mlm", "input": ["a cat", "x " * 300]}, 413, "input[1]", "model 'mlm' reads at most"),
    ("/v1/embeddings", {"input": [1, 2, 3]}, 400, "input", "token ids are not supported, send strings"),
    ("/v1/embeddings", {"input": [[1, 2], [3]]}, 400, "input", "token ids are not supported, send strings"),
    ("/v1/answers", {"model": "mlm", "input": [7]}, 400, "input", "token ids are not supported, send strings"),
]


@pytest.mark.parametrize(("path", "body", "status", "param", "says"), BAD_INPUTS)
def test_bad_inputs_are_refused_with_a_reason(strict: TestClient, path: str, body: dict, status: int, param: str,
                                              says: str) -> None:
    r = strict.post(path, json={"model": "bert", **body})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and says in error["message"], error


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/answers"])
def test_a_body_that_is_not_json_gets_415(strict: TestClient, path: str) -> None:
    for sent in ({"data": {"input": "a cat", "model": "mlm"}},  # a form, as curl -d sends it
                 {"files": {"input": ("a.txt", b"a cat")}},  # multipart
                 {"content": b'{"input": "a cat", "model": "mlm"}', "headers": {"content-type": "text/plain"}},
        {"content": b'{"input": "a cat", "model": "mlm"}'}):  # none
        r = strict.post(path, **sent)  # type: ignore[arg-type]
        assert r.status_code == 415, r.text
        assert r.json()["error"]["message"].startswith("Content-Type must be application/json; "), r.text
    for content_type in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"):
        r = strict.post(path, content=b'{"input": "a cat", "model": "mlm"}', headers={"content-type": content_type})
        assert r.status_code == 200, (content_type, r.text)


def test_whitespace_is_a_text(strict: TestClient, tiny_bert) -> None:
    """Only the empty string is refused: spaces are embedded as they are (OpenAI and TEI accept them too)."""
    assert np.abs(vectors(strict.post("/v1/embeddings", json={"model": "bert", "input": ["   "]}))[0]
                  - tiny_bert.encode("   ")).max() <= 1e-5


def _engine_cuts(model, text: str, instruction: str, answers: bool) -> bool:
    """Whether ``encode`` itself cuts the text (it warns when it does)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.encode([text], instruction=instruction, return_generations=answers)
    return any("were truncated" in str(w.message) for w in caught)


@pytest.mark.parametrize("name", ["bert", "llama", "mlm"])
def test_413_comes_exactly_where_the_engine_would_cut(strict: TestClient, request: pytest.FixtureRequest,
                                                      name: str) -> None:
    """The longest text each model takes under an instruction, found by the server's 413s: the engine cuts the next
    longer one and not it; with truncate: true the next one gets the engine's own (cut) vector or answer."""
    model = request.getfixturevalue({"bert": "tiny_bert", "mlm": "mlm", "llama": "llama"}[name])
    path, answers, instruction = ("/v1/answers", True, "Which animal?") if name == "mlm" else \
        ("/v1/embeddings", False, "Represent the animal:")

    def post(k: int, **extra: object):
        return strict.post(path, json={"model": name, "input": ["a cat " * k], "instruction": instruction, **extra})

    low, high = 0, 200  # the longest accepted, the shortest refused
    assert post(high).status_code == 413
    while high - low > 1:
        mid = (low + high) // 2
        status = post(mid).status_code
        assert status in (200, 413)
        low, high = (mid, high) if status == 200 else (low, mid)
    assert low > 0
    assert not _engine_cuts(model, "a cat " * low, instruction, answers)
    assert _engine_cuts(model, "a cat " * high, instruction, answers)
    found = re.search(r"has (\d+) tokens .* reads at most (\d+)\.", post(high).json()["error"]["message"])
    assert found and int(found[1]) > int(found[2]) >= post(low).json()["usage"]["prompt_tokens"]
    r = post(high, truncate=True)
    assert r.status_code == 200 and r.json()["usage"]["truncated_inputs"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.encode(["a cat " * high], instruction=instruction, return_generations=answers)
    if answers:
        assert r.json()["data"][0]["answer"] == expected[1][0]
    else:
        assert np.abs(vectors(r) - expected).max() <= 1e-5


def test_truncation_asked_for_is_reported_in_usage_not_in_the_log(strict: TestClient, tiny_bert,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    long = "x " * 100
    before, metrics = list(warnings.filters), strict.app.state.service.metrics  # type: ignore[attr-defined]
    counted = metrics.value("inbedder_truncated_inputs_total", model="bert")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_bert.encode([long])  # the engine warns when it cuts a text...
        assert [w for w in caught if "were truncated" in str(w.message)]
        caught.clear()
        r = strict.post("/v1/embeddings", json={"model": "bert", "input": [long, "short", long], "truncate": True})
        assert r.status_code == 200 and r.json()["usage"]["truncated_inputs"] == 2
        assert r.json()["usage"]["prompt_tokens"] == 48 + 48 + sum(tiny_bert.encoder.token_counts([(None, "short")]))
        assert not [w for w in caught if "were truncated" in str(w.message)]  # ...not when the request asked
    assert not [rec for rec in caplog.records if "truncated" in rec.getMessage()]
    assert warnings.filters == before
    assert metrics.value("inbedder_truncated_inputs_total", model="bert") == counted + 2
    assert 'inbedder_truncated_inputs_total{model="bert"}' in strict.get("/metrics").text


def test_unknown_model_lists_served_and_nothing_loads_from_a_request(client: TestClient, tiny_t5_dir) -> None:
    error = client.post("/v1/embeddings", json={"input": "a", "model": "bertt"}).json()["error"]
    assert "bert, mlm" in error["message"] and "Did you mean 'bert'" in error["message"]
    for name in (str(tiny_t5_dir), "minilm"):  # a loadable directory or alias is still not served
        r = client.post("/v1/embeddings", json={"input": "a", "model": name})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["bert", "mlm"]


def test_api_key(tiny_bert) -> None:
    app = create_app({"bert": tiny_bert}, ServeConfig(api_keys=("k1", "k2")))
    with TestClient(app) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k1"}):
            r = c.post("/v1/embeddings", json={"input": "a"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/models").status_code == 401 and c.get("/metrics").status_code == 401
        for key in ("k1", "k2"):
            assert c.post("/v1/embeddings", json={"input": "a"}, headers={"Authorization": f"Bearer {key}"}) \
                .status_code == 200
        assert c.get("/health").status_code == 200


def test_body_limit(tiny_bert) -> None:
    with TestClient(create_app({"bert": tiny_bert}, ServeConfig(max_body_bytes=100))) as c:
        r = c.post("/v1/embeddings", json={"input": ["x" * 200]})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert c.post("/v1/embeddings", json={"input": "fits"}).status_code == 200


def test_cli_registers_serve_and_refuses_public_host_without_key() -> None:
    from click.testing import CliRunner

    from inbedder.cli import main

    runner = CliRunner()
    assert "serve" in runner.invoke(main, ["--help"]).output
    result = runner.invoke(main, ["serve", "-m", "minilm", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "--api-key" in result.output and "--allow-public" in result.output
    result = runner.invoke(main, ["serve", "-m", "a=x", "-m", "a=y"])
    assert result.exit_code == 1 and "twice" in result.output
    result = runner.invoke(main, ["serve", "-m", "minilm"], env={"INBEDDER_MAX_INPUTS": "0"})
    assert result.exit_code == 1 and "max_inputs must be a positive int" in result.output
    result = runner.invoke(main, ["serve", "-m", "/no/such/model", "--host", "0.0.0.0"],
                           env={"INBEDDER_API_KEY": "k"})  # a key from the environment allows a public host
    assert result.exit_code == 1 and "/no/such/model" in result.output and "--allow-public" not in result.output


def test_serve_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from inbedder.cli import main

    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the extra were not installed
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    result = runner.invoke(main, ["serve", "-m", "minilm"])
    assert result.exit_code == 1 and 'pip install "inbedder[serve]"' in result.output


def test_served_names_and_loopback() -> None:
    from inbedder.cli.serve import served_names
    from inbedder.serve.config import is_loopback

    assert served_names(("minilm", "mine=/models/x")) == {"minilm": "minilm", "mine": "/models/x"}
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")


def test_config_is_checked() -> None:
    from inbedder.errors import InputError

    with pytest.raises(InputError, match="max_inputs"):
        ServeConfig(max_inputs=0)
    with pytest.raises(InputError, match="max_queue_rows"):
        ServeConfig(max_inputs=10, max_queue_rows=5)

