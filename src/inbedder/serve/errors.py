"""Errors as OpenAI's body, ``{"error": {"message", "type", "param", "code"}}``, for every failure.

Validation errors name the offending field and index (``param: "input[3]"``). Bad input always gets a 4xx;
the catch-all handler turns an unexpected fault into a 500 with the same body, and the server keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InputError, InputTypeError

log = logging.getLogger("inbedder.serve")
_TYPE_TAGS = ("str", "int", "float", "bool", "list", "dict", "none", "literal", "constrained", "function")


class ApiError(Exception):
    """An error answered with ``status`` and the OpenAI error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _param(loc: Sequence[Any]) -> str | None:
    """``("body", "input", "list[str]", 3)`` → ``"input[3]"`` (union member tags are left out)."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i == 0:
            out = str(part)
        elif not str(part).lower().startswith(_TYPE_TAGS):
            out += f".{part}"
    return out or None


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def validation_error(errors: Sequence[dict[str, Any]]) -> ApiError:
    """One 400 for pydantic's errors: the deepest one (inside a list beats 'not a str'), named by field and index."""
    if not errors:
        return ApiError(400, "the request is not valid")
    for err in errors:
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            return ApiError(400, f"the request body is not valid JSON: {detail}".rstrip(": "), code="invalid_json")
    best = max(errors, key=lambda e: (len(e.get("loc", ())), e.get("type") != "missing"))
    loc = best.get("loc", ())
    param = _param(loc)
    if param is None:
        return ApiError(400, "the request body must be a JSON object with an 'input' field", code="invalid_body")
    message = f"{param}: {best.get('msg', 'invalid value')}"
    if best.get("type") not in ("missing", "extra_forbidden") and "input" in best:
        message += f" (got {_describe(best['input'])})"
    if best.get("type") == "extra_forbidden":
        message = f"{param}: unknown field; this endpoint takes the fields in its schema (GET /openapi.json)"
    if len(errors) > 1 and best.get("type") != "extra_forbidden":
        message += f"; {len(errors) - 1} more problem(s) in the request"
    return ApiError(400, message, param=param, code=str(best.get("type", "invalid_value")))


def install(app: FastAPI) -> None:
    """Register the handlers that answer every error with the OpenAI error body."""

    def respond(exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, exc.param, exc.code), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(validation_error(exc.errors()))

    @app.exception_handler(InputError)
    @app.exception_handler(InputTypeError)
    async def input_error(request: Request, exc: Exception) -> JSONResponse:
        return respond(ApiError(400, str(exc), code="invalid_input"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return respond(ApiError(exc.status_code, str(exc.detail), type=kind, code=f"http_{exc.status_code}",
                                headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(ApiError(500, f"internal error: {type(exc).__name__}", type="server_error",
                                code="internal_error"))
