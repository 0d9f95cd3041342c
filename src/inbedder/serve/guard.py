"""ASGI middleware in front of every route: the body-size limit and the request metrics.

The body is read here, up to ``max_body_bytes`` (a larger one is refused with 413 before any parsing), so
no request can make the server hold more than that. Every response is counted by path and status, with
its latency; paths outside the served routes count as ``other`` so random paths cannot grow the metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import error_body
from .metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics, paths: frozenset[str]):
        self.app, self.max_body, self.metrics, self.paths = app, max_body_bytes, metrics, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.monotonic(), [500]
        path = scope["path"] if scope["path"] in self.paths else "other"

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            body, problem = await self._read(scope, receive)
            if problem is not None:
                await self._refuse(counted, *problem)
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, counted)
        finally:
            self.metrics.inc("inbedder_requests_total", path=path, status=str(status[0]))
            self.metrics.observe("inbedder_request_seconds", time.monotonic() - start, path=path)

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes, tuple[int, str, str] | None]:
        too_big = (413, f"the request body is larger than the limit of {self.max_body} bytes", "body_too_large")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return b"", (400, "the Content-Length header is not a number", "invalid_content_length")
            if int(declared) > self.max_body:
                return b"", too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", (400, "the client closed the connection before sending the body", "client_closed")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    @staticmethod
    async def _refuse(send: Send, status: int, message: str, code: str) -> None:
        payload = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
