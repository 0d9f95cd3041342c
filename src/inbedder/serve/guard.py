"""ASGI middleware in front of every route: the body-size limit and the request metrics.

The body is read here, up to ``max_body_bytes`` (a larger one is refused with 413 before any parsing), so
no request can make the server hold more than that. The rest of a refused body, up to ``DRAIN_BYTES`` more,
is read and dropped before the answer: a server that closes a socket with unread data in it makes the kernel
reset the connection, and the client would see that reset instead of the 413. A body declared larger still
(or sent with ``Expect: 100-continue``) is refused without being read, and the connection closed.

Every response is counted by path and status, with its latency; paths outside the served routes count as
``other`` so random paths cannot grow the metrics.
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
DRAIN_BYTES = 64 * 1024 * 1024


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

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes, tuple[int, str, str, bool] | None]:
        """The body, or why it is refused (status, message, code, whether the connection must close)."""
        too_big = (413, f"the request body is larger than the limit of {self.max_body} bytes", "body_too_large")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return b"", (400, "the Content-Length header is not a number", "invalid_content_length", True)
            if int(declared) > self.max_body and (int(declared) > self.max_body + DRAIN_BYTES
                                                  or headers.get(b"expect", b"").lower() == b"100-continue"):
                return b"", (*too_big, True)  # never read; a 100-continue client has not sent it
        chunks: list[bytes] | None = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", (400, "the client closed the connection before sending the body", "client_closed", True)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                chunks = None  # over the limit: hold nothing more, and drop what was held
            elif chunks is not None:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return (b"".join(chunks), None) if chunks is not None else (b"", (*too_big, False))
            if size > self.max_body + DRAIN_BYTES:
                return b"", (*too_big, True)

    @staticmethod
    async def _refuse(send: Send, status: int, message: str, code: str, close: bool) -> None:
        payload = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"connection", b"close")] if close else headers})
        await send({"type": "http.response.body", "body": payload})
