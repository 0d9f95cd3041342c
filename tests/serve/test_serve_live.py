"""The service on a real socket (uvicorn in a thread): the official openai client, inbedder.client, draining."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("uvicorn")
import httpx  # noqa: E402
import openai  # noqa: E402
import uvicorn  # noqa: E402
from test_serve_batcher import ScriptedModel  # noqa: E402

from inbedder.client import Client, ServiceError  # noqa: E402
from inbedder.serve.app import create_app  # noqa: E402
from inbedder.serve.config import ServeConfig  # noqa: E402

TEXTS = ["A cat sat on the mat.", "Stocks fell sharply.", "Rain is expected tomorrow."]
PER_ROW = ["Represent the sentence:", "Represent the finance news:", "Represent the weather report:"]
KEY = "test-key"


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: Any):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True  # what uvicorn's SIGTERM handler does
        self.thread.join(30)
        self.sock.close()


@pytest.fixture(scope="module")
def live(tiny_bert, tiny_t5) -> Iterator[str]:
    app = create_app({"bert": tiny_bert, "t5": tiny_t5}, ServeConfig(api_keys=(KEY,), max_wait_ms=20))
    with LiveServer(app) as server:
        yield server.url


def as_floats(embedding: list[float] | str) -> np.ndarray:
    """The client decodes base64 itself when it chose it (no encoding_format given), not when asked for it."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_openai_client_gets_the_vectors_of_encode(live: str, tiny_t5, encoding_format: str | None) -> None:
    client = openai.OpenAI(base_url=f"{live}/v1", api_key=KEY, max_retries=0)
    extra = {} if encoding_format is None else {"encoding_format": encoding_format}
    for instruction in (PER_ROW, "Represent the sentence:"):
        r = client.embeddings.create(model="t5", input=TEXTS, extra_body={"instruction": instruction}, **extra)
        got = np.array([as_floats(row.embedding) for row in r.data], dtype=np.float32)
        assert np.abs(got - tiny_t5.encode(TEXTS, instruction=instruction)).max() <= 1e-5
        assert r.model == "t5" and r.usage.prompt_tokens > 0
    one = as_floats(client.embeddings.create(model="t5", input="A dog ran.", dimensions=4, **extra).data[0].embedding)
    full = tiny_t5.encode("A dog ran.")[:4]
    assert np.abs(np.array(one) - full / np.linalg.norm(full)).max() <= 1e-5
    assert {m.id for m in client.models.list()} == {"bert", "t5"}


def test_openai_client_errors(live: str) -> None:
    client = openai.OpenAI(base_url=f"{live}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="served models: bert, t5"):
        client.embeddings.create(model="gpt-4", input="x")
    with pytest.raises(openai.BadRequestError, match=r"instruction\[1\]"):
        client.embeddings.create(model="bert", input=["x", "y"], extra_body={"instruction": ["a", 5]})
    with pytest.raises(openai.BadRequestError, match="got 1 instructions for 2 texts"):
        client.embeddings.create(model="bert", input=["x", "y"], extra_body={"instruction": ["a"]})
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live}/v1", api_key="wrong", max_retries=0).embeddings.create(model="bert", input="x")
    with pytest.raises(openai.BadRequestError, match=r"input\[1\] is an empty string"):
        client.embeddings.create(model="bert", input=["x", ""])
    with pytest.raises(openai.BadRequestError, match="token ids are not supported, send strings"):
        client.embeddings.create(model="bert", input=[[1, 2], [3]])
    with pytest.raises(openai.APIStatusError, match="has 3002 tokens") as info:
        client.embeddings.create(model="bert", input="x " * 3000)
    assert info.value.status_code == 413
    r = client.embeddings.create(model="bert", input=["x " * 3000, "y"], extra_body={"truncate": True})
    assert len(r.data) == 2 and (r.usage.model_extra or {}).get("truncated_inputs") == 1


def test_api_key_401_without_200_with(live: str) -> None:
    assert httpx.post(f"{live}/v1/embeddings", json={"model": "bert", "input": "x"}).status_code == 401
    r = httpx.post(f"{live}/v1/embeddings", json={"model": "bert", "input": "x"},
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200


def test_inbedder_client(live: str, tiny_bert) -> None:
    with Client(live, api_key=KEY) as client:
        got = client.embed(TEXTS, instruction=PER_ROW, model="bert")
        assert got.dtype == np.float32 and np.abs(got - tiny_bert.encode(TEXTS, instruction=PER_ROW)).max() <= 1e-5
        one = client.embed("A dog ran.", model="bert")
        assert one.shape == (32,) and np.abs(one - tiny_bert.encode("A dog ran.")).max() <= 1e-5
        assert client.health()["status"] == "ok" and len(client.models()) == 2
        with pytest.raises(ServiceError, match="not served") as info:
            client.embed("x", model="nope")
        assert info.value.status == 404 and info.value.param == "model"
        with pytest.raises(ServiceError, match="reads at most 48") as info:
            client.embed(["a cat", "x " * 100], model="bert")
        assert info.value.status == 413 and info.value.param == "input[1]"
        with pytest.warns(UserWarning, match="were truncated"):
            expected = tiny_bert.encode(["a cat", "x " * 100])
        assert np.abs(client.embed(["a cat", "x " * 100], model="bert", truncate=True) - expected).max() <= 1e-5
    with Client(live) as anonymous, pytest.raises(ServiceError) as info:
        anonymous.embed("x", model="bert")
    assert info.value.status == 401


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_concurrent_requests_are_batched_and_each_gets_its_rows(live: str, tiny_bert) -> None:
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'markets'}" * (1 + i % 4) for i in range(24)]
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        with Client(live, api_key=KEY) as client:
            results[i] = client.embed(texts[i:i + 3], instruction=f"Represent {i}:", model="bert",
                                      truncate=True)  # the longest are over the tiny model's 48 tokens

    threads = [threading.Thread(target=call, args=(i,)) for i in range(0, 24, 3)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    for i, got in results.items():
        assert np.abs(got - tiny_bert.encode(texts[i:i + 3], instruction=f"Represent {i}:")).max() <= 1e-5
    assert len(results) == 8
    metrics = httpx.get(f"{live}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    count = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith('inbedder_batch_requests_count{model="bert"}')))
    total = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith('inbedder_batch_requests_sum{model="bert"}')))
    assert total > count  # some batch merged more than one request


def test_shutdown_drains_in_flight_requests() -> None:
    model = ScriptedModel()
    model.release.clear()
    statuses: list[int] = []
    with LiveServer(create_app({"m": model}, ServeConfig(max_wait_ms=0))) as server:
        def call(text: str) -> None:
            statuses.append(httpx.post(f"{server.url}/v1/embeddings", json={"input": text}, timeout=30).status_code)

        threads = [threading.Thread(target=call, args=(t,)) for t in ("a", "bb", "ccc")]
        [t.start() for t in threads]
        assert model.started.wait(10)
        time.sleep(0.2)  # the other two are queued
        server.server.should_exit = True
        time.sleep(0.2)
        model.release.set()
        [t.join(30) for t in threads]
    assert statuses == [200, 200, 200]
    assert sorted(t for texts, _, _ in model.calls for t in texts) == ["a", "bb", "ccc"]  # all computed, once


@pytest.mark.slow  # a fresh process imports torch: tens of seconds on a busy machine
def test_sigterm_drains_a_request_in_flight(tiny_bert_dir: Path) -> None:
    """``inbedder serve`` in its own process: SIGTERM while a request waits in the batcher; it still gets 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "inbedder", "serve", "-m", f"tiny={tiny_bert_dir}", "--port",
                                str(port), "--no-cache", "--max-wait-ms", "1500", "--log-level", "warning"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        result: dict[str, Any] = {}
        caller = threading.Thread(target=lambda: result.setdefault(
            "r", httpx.post(f"{url}/v1/embeddings", json={"input": ["a cat", "a dog"]}, timeout=30)))
        caller.start()
        time.sleep(0.5)  # the request is waiting for others to join its batch
        process.send_signal(signal.SIGTERM)
        caller.join(30)
        assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its clean shutdown
        assert result["r"].status_code == 200 and len(result["r"].json()["data"]) == 2
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
