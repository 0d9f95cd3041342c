"""The FastAPI application: OpenAI-style ``/v1/embeddings``, ``/v1/answers``, ``/v1/models``, plus
``/health`` and ``/metrics``. Routes only check input and shape output; the batcher runs the models.

>>> app = create_app({"minilm": load("minilm")}, ServeConfig(api_keys=("secret",)))   # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8080)                                    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import torch
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..batching import keep_dimensions
from ..encoders.base import Pair
from ..errors import InputError, did_you_mean
from ..version import __version__
from .batcher import CountingCache, ModelWorker, QueueFull, Result, ShuttingDown
from .config import ServeConfig
from .errors import ApiError, install
from .guard import Guard
from .metrics import Metrics
from .openapi import document
from .schemas import (
    AnswerRequest,
    AnswerResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    Health,
    ModelList,
)

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse, "description": text} for code, text in (
    (400, "Invalid request (the error's param names the field and index)"), (401, "Missing or wrong API key"),
    (404, "Unknown model"), (408, "Request timed out"), (413, "Body, or an input or instruction, over the size limit"),
    (429, "Queue full; retry later"))}


def create_app(models: dict[str, Any], config: ServeConfig | None = None, cache: Any = None) -> FastAPI:
    """An app serving ``models`` (served id → loaded :class:`~inbedder.Embedder`).

    ``cache``: None (no cache), True (the default file) or a path of the shared SQLite cache.
    """
    if not models:
        raise InputError("create_app needs at least one model: {served id: loaded model}")
    config = config or ServeConfig()
    metrics = Metrics()
    use_cache, path = cache is not None and cache is not False, None if cache is True else cache
    workers = {name: ModelWorker(name, model, config, metrics,
                                 CountingCache(path, metrics, name) if use_cache else None)
               for name, model in models.items()}
    created = int(time.time())

    running = [0]  # lifespans entered and not left (test clients may nest them)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running[0] += 1
        for worker in workers.values():
            worker.start()
        try:
            yield
        finally:
            running[0] -= 1
            if not running[0]:
                for worker in workers.values():  # uvicorn has finished the in-flight requests; drain the rest
                    # (what is still queued after request_timeout has timed out: no reason to wait longer)
                    await anyio.to_thread.run_sync(worker.stop, config.request_timeout)

    app = FastAPI(title="inbedder", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible instruction-following embeddings. `instruction` is the one "
                              "field OpenAI does not have: one string for every input, or one per input.")
    install(app)
    app.state.workers, app.state.metrics, app.state.config = workers, metrics, config
    bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with --api-key.")

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not config.api_keys:
            return
        given = credentials.credentials if credentials is not None else ""
        if not any(secrets.compare_digest(given.encode(), key.encode()) for key in config.api_keys):
            what = "no API key was given" if not given else "the API key is not valid"
            raise ApiError(401, f"{what}; send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    def pick(model: str | None) -> ModelWorker:
        served = sorted(workers)
        if model is None:
            if len(workers) == 1:
                return workers[served[0]]
            raise ApiError(400, f"model is required when several models are served: {', '.join(served)}",
                           param="model", code="model_required")
        if model not in workers:
            raise ApiError(404, f"model {model!r} is not served here; served models: {', '.join(served)}."
                           f"{did_you_mean(model, served)}", param="model", code="model_not_found")
        return workers[model]

    def pairs_of(texts: str | list[str], instruction: str | list[str | None] | None) -> list[Pair]:
        rows = [texts] if isinstance(texts, str) else texts
        if not rows:
            raise ApiError(400, "input must not be empty: give a text or a list of texts", param="input",
                           code="empty_input")
        if len(rows) > config.max_inputs:
            raise ApiError(400, f"input has {len(rows)} texts; the limit is {config.max_inputs} per request",
                           param="input", code="too_many_inputs")
        if isinstance(instruction, list):
            if len(instruction) != len(rows):
                raise ApiError(400, f"instruction has {len(instruction)} entries for {len(rows)} inputs; give one "
                               "string for all, or a list with one entry per input", param="instruction",
                               code="instruction_count")
            instructions = instruction
        else:
            instructions = [instruction] * len(rows)
        for name, values in (("input", rows), ("instruction", instructions)):
            for i, value in enumerate(values):
                if value is None:
                    continue
                where = f"{name}[{i}]" if name == "input" or isinstance(instruction, list) else name
                if len(value) > config.max_input_chars:  # before any tokenizer sees it
                    raise ApiError(413, f"{where} has {len(value)} characters; the limit is "
                                   f"{config.max_input_chars}", param=where, code="input_too_long")
                if not value.isascii():
                    try:
                        value.encode("utf-8")
                    except UnicodeEncodeError as exc:
                        raise ApiError(400, f"{where} is not valid Unicode text: {exc.reason} at character "
                                       f"{exc.start} (a lone surrogate escape?)", param=where,
                                       code="invalid_text") from None
        return list(zip(instructions, rows, strict=True))

    async def run(worker: ModelWorker, pairs: list[Pair], answers: bool) -> tuple[Result, int]:
        start = time.monotonic()
        tokens = sum(await anyio.to_thread.run_sync(worker.count_tokens, pairs))
        try:
            future = worker.submit(pairs, answers, tokens)
        except QueueFull:
            metrics.inc("inbedder_rejected_total", reason="queue_full", model=worker.name)
            raise ApiError(429, f"the queue of model {worker.name!r} is full; retry after {config.retry_after} s",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(config.retry_after)}) from None
        except ShuttingDown:
            metrics.inc("inbedder_rejected_total", reason="shutting_down", model=worker.name)
            raise ApiError(503, "the server is shutting down", type="server_error", code="shutting_down",
                           headers={"Retry-After": str(config.retry_after)}) from None
        remaining = config.request_timeout - (time.monotonic() - start)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(remaining, 0.001)), tokens
        except asyncio.TimeoutError:  # not the built-in TimeoutError before Python 3.11
            future.cancel()
            metrics.inc("inbedder_rejected_total", reason="timeout", model=worker.name)
            raise ApiError(408, f"the request took longer than the limit of {config.request_timeout} s",
                           type="timeout_error", code="timeout") from None

    @app.post("/v1/embeddings", response_model=None, responses={200: {"model": EmbeddingResponse}, **ERRORS},
              dependencies=[Depends(authorized)], summary="Embed texts (OpenAI-compatible, plus `instruction`)")
    async def embeddings(body: EmbeddingRequest) -> JSONResponse:
        worker = pick(body.model)
        pairs = pairs_of(body.input, body.instruction)
        if body.dimensions is not None and body.dimensions > worker.model.dim:
            raise ApiError(400, f"dimensions={body.dimensions} is more than model {worker.name!r} has "
                           f"({worker.model.dim})", param="dimensions", code="invalid_dimensions")
        result, tokens = await run(worker, pairs, answers=False)
        vectors = result.vectors
        if body.dimensions is not None:
            vectors = keep_dimensions(torch.from_numpy(vectors), body.dimensions).numpy()
        if body.encoding_format == "base64":
            values: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            values = vectors.tolist()
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(values)]
        return JSONResponse({"object": "list", "data": data, "model": worker.name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/v1/answers", response_model=None, responses={200: {"model": AnswerResponse}, **ERRORS},
              dependencies=[Depends(authorized)], summary="Generate the answers an answer-family model embeds")
    async def answers(body: AnswerRequest) -> JSONResponse:
        worker = pick(body.model)
        if not worker.model.encoder.answers:
            answer_models = [n for n, w in workers.items() if w.model.encoder.answers]
            raise ApiError(400, f"model {worker.name!r} ({worker.model.family}) does not generate answers; answer "
                           f"models served: {', '.join(answer_models) or 'none'}", param="model",
                           code="not_an_answer_model")
        pairs = pairs_of(body.input, body.instruction)
        result, tokens = await run(worker, pairs, answers=True)
        data = [{"object": "answer", "index": i, "answer": a,
                 "embedding": result.vectors[i].tolist() if body.include_embeddings else None}
                for i, a in enumerate(result.answers or [])]
        return JSONResponse({"object": "list", "data": data, "model": worker.name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.get("/v1/models", response_model=ModelList, dependencies=[Depends(authorized)],
             responses={401: ERRORS[401]}, summary="The models this server was started with")
    async def list_models() -> ModelList:
        return ModelList.model_validate({"data": [
            {"id": name, "created": created, "family": w.model.family, "dimensions": w.model.dim,
             "answers": bool(w.model.encoder.answers)} for name, w in workers.items()]})

    @app.get("/health", response_model=Health, summary="Liveness: answers while the server runs")
    async def health() -> Health:
        return Health(models=list(workers), queued_rows={n: w.queued_rows for n, w in workers.items()})

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(authorized)],
             responses={401: ERRORS[401]}, summary="Prometheus metrics (text format 0.0.4)")
    async def prometheus() -> PlainTextResponse:
        for name, worker in workers.items():
            metrics.set("inbedder_queue_rows", worker.queued_rows, model=name)
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    document(app, config, {name: w.model.dim for name, w in workers.items()})
    paths = frozenset({"/v1/embeddings", "/v1/answers", "/v1/models", "/health", "/metrics", "/openapi.json",
                       "/docs"})
    app.add_middleware(Guard, max_body_bytes=config.max_body_bytes, metrics=metrics, paths=paths)  # type: ignore[arg-type]
    return app
