"""Huge requests are refused fast, before any tokenizer sees them, and without the server holding the body:
20 texts of 1,000,000 characters, through the ASGI app and through uvicorn on a real socket."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from test_serve_live import LiveServer  # noqa: E402

from inbedder.serve.app import create_app  # noqa: E402
from inbedder.serve.config import ServeConfig  # noqa: E402

HUGE = json.dumps({"input": ["x" * 1_000_000] * 20}).encode()  # 20 MB: over the default 8 MiB body limit
ROOMY = ServeConfig(max_body_bytes=64 * 1024 * 1024)  # lets the body through: the character limit refuses it
MiB = 1024 * 1024


class Measured:
    """Wall time, the peak of Python allocations (every thread) and the growth of the process's peak RSS."""

    def __enter__(self) -> Measured:
        self.rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        tracemalloc.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        self.rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.rss


def no_tokenizer(app: Any) -> None:
    """Make any token count fail loudly: a refused request must never reach the tokenizer."""
    def refuse(*args: object) -> None:
        raise AssertionError("the tokenizer was called")

    for worker in app.state.service.workers.values():
        worker.count_tokens = refuse


def asgi_post(app: Any, body: bytes, declared: bool, chunk: int = MiB,
              headers: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[int, dict[str, Any], int, list[Any]]:
    """POST ``body`` to the ASGI app in ``chunk``-sized messages: status, JSON answer, body bytes the app read,
    response headers."""
    sent = [0]
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        piece = body[sent[0]:sent[0] + chunk]
        sent[0] += len(piece)
        return {"type": "http.request", "body": piece, "more_body": sent[0] < len(body)}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    sent_headers = [(b"content-type", b"application/json"), *headers]
    if declared and not any(name == b"content-length" for name, _ in headers):
        sent_headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/embeddings", "raw_path": b"/v1/embeddings", "query_string": b"", "root_path": "",
             "headers": sent_headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in out if m["type"] == "http.response.start")
    answer = json.loads(b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body"))
    return start["status"], answer, sent[0], start["headers"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_is_refused_without_being_held(tiny_bert, declared: bool) -> None:
    """The body past the limit is read and dropped (so that a real client gets the answer, not a reset)."""
    app = create_app({"bert": tiny_bert})
    no_tokenizer(app)
    with Measured() as m:
        status, answer, read, headers = asgi_post(app, HUGE, declared)
    assert status == 413 and answer["error"]["code"] == "body_too_large"
    assert read == len(HUGE) and (b"connection", b"close") not in headers  # all read: the connection can stay
    assert m.seconds < 1.0 and m.peak < 16 * MiB, (m.seconds, m.peak)  # the 20 MB body was never held


@pytest.mark.parametrize("headers", [((b"content-length", b"1000000000"),), ((b"expect", b"100-continue"),)],
                         ids=["declared 1 GB", "expect 100-continue"])
def test_a_body_declared_too_large_is_refused_unread(tiny_bert, headers: tuple[tuple[bytes, bytes], ...]) -> None:
    status, answer, read, sent = asgi_post(create_app({"bert": tiny_bert}), HUGE, True, headers=headers)
    assert status == 413 and answer["error"]["code"] == "body_too_large"
    assert read == 0 and (b"connection", b"close") in sent


def test_huge_texts_in_a_body_within_its_limit_are_refused_by_characters(tiny_bert) -> None:
    app = create_app({"bert": tiny_bert}, ROOMY)
    no_tokenizer(app)
    with Measured() as m:
        status, answer, read, _ = asgi_post(app, HUGE, declared=True)
    assert status == 413 and answer["error"]["code"] == "input_too_long" and answer["error"]["param"] == "input[0]"
    assert "1000000 characters; the limit is 32768" in answer["error"]["message"]
    assert read == len(HUGE)
    assert m.seconds < 1.0 and m.peak < 200 * MiB, (m.seconds, m.peak)  # the parsed body, a small multiple of it


def test_a_text_over_the_models_token_limit_is_refused_with_its_count(tiny_bert) -> None:
    """30,000 characters fit the character limit; the model reads 48 tokens: 413 with both numbers, at once, unless
    the request asks for the cut (then usage counts it)."""
    app = create_app({"bert": tiny_bert})
    text = "x " * 15_000
    with Measured() as m:
        status, answer, _, _ = asgi_post(app, json.dumps({"input": ["a cat", text]}).encode(), declared=True)
    assert status == 413 and answer["error"]["code"] == "context_length_exceeded", answer
    assert answer["error"]["param"] == "input[1]" and "has 15002 tokens" in answer["error"]["message"]
    assert "reads at most 48" in answer["error"]["message"] and '"truncate": true' in answer["error"]["message"]
    assert m.seconds < 2.0, m.seconds  # one tokenizer pass; the model never ran
    assert app.state.service.metrics.value("inbedder_inputs_total", model="bert") == 0
    status, answer, _, _ = asgi_post(app, json.dumps({"input": ["a cat", text], "truncate": True}).encode(), True)
    assert status == 200 and answer["usage"]["truncated_inputs"] == 1 and len(answer["data"]) == 2


@pytest.fixture(scope="module", params=["default", "roomy"])
def live(request: pytest.FixtureRequest, tiny_bert) -> Iterator[tuple[str, str]]:
    app = create_app({"bert": tiny_bert}, ServeConfig() if request.param == "default" else ROOMY)
    no_tokenizer(app)
    with LiveServer(app) as server:
        yield server.url, "body_too_large" if request.param == "default" else "input_too_long"


def socket_post(url: str, body: bytes, declared: bool) -> tuple[int, dict[str, Any]]:
    """POST ``body`` over a plain socket, sent from the one buffer (so the client allocates nothing), with a
    Content-Length or chunked; the status and the JSON answer."""
    host, port = url.removeprefix("http://").split(":")
    framing = f"Content-Length: {len(body)}" if declared else "Transfer-Encoding: chunked"
    view = memoryview(body)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"{framing}\r\n\r\n".encode())
        for i in range(0, len(body), MiB):
            piece = view[i:i + MiB]
            if declared:
                sock.sendall(piece)
            else:
                sock.sendall(f"{len(piece):x}\r\n".encode())
                sock.sendall(piece)
                sock.sendall(b"\r\n")
        if not declared:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            more = sock.recv(65536)
            assert more, f"the server closed the connection; got {answer!r}"
            answer += more
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def _length(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].decode().lower()
    return next(int(line.split(":")[1]) for line in head.splitlines() if line.startswith("content-length:"))


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_huge_request_over_a_socket_gets_413_fast(live: tuple[str, str], declared: bool) -> None:
    url, code = live
    httpx.get(f"{url}/health")  # started, warm
    with Measured() as m:
        status, answer = socket_post(url, HUGE, declared)
    assert status == 413 and answer["error"]["code"] == code, answer
    assert m.seconds < 1.0, m.seconds
    # the server's allocations: none of the body beyond the limit, or (under a roomier limit) its parsed texts
    assert m.rss_growth < 300 * MiB and m.peak < (16 if code == "body_too_large" else 200) * MiB, (m.rss_growth, m.peak)
    content: Any = HUGE if declared else (HUGE[i:i + MiB] for i in range(0, len(HUGE), MiB))
    r = httpx.post(f"{url}/v1/embeddings", content=content, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == code  # what the openai client would get
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
