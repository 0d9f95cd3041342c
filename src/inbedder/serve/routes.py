"""The routes: OpenAI-style ``/v1/embeddings``, ``/v1/answers``, ``/v1/models``, plus ``/health`` and
``/metrics``. They only check input and shape output; the :class:`~.service.Service` on ``app.state`` queues the
rows and its workers run the models."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..batching import keep_dimensions
from .batcher import Options
from .errors import ApiError
from .schemas import (
    AnswerRequest,
    AnswerResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorResponse,
    Health,
    ModelList,
)
from .service import Service

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse, "description": text} for code, text in (
    (400, "Invalid request (the error's param names the field and index)"), (401, "Missing or wrong API key"),
    (404, "Unknown model"), (408, "Request timed out"),
    (413, "Body, or an input or instruction, over the size limit; or an input over the model's token limit without "
          "`truncate: true`"),
    (415, "The body is not JSON (Content-Type must be application/json)"), (429, "Queue full; retry later"))}
PATHS = frozenset({"/v1/embeddings", "/v1/answers", "/v1/models", "/health", "/metrics", "/openapi.json", "/docs"})

bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with --api-key.")
router = APIRouter()


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


async def authorized(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    service(request).authorize(credentials.credentials if credentials is not None else "")


async def json_only(request: Request) -> None:
    """415 for a body sent as a form (``curl -d`` sends one), multipart, any other type than JSON, or no
    Content-Type at all (as text-embeddings-inference answers)."""
    given = request.headers.get("content-type", "")
    media = given.partition(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        got = f"got {given[:100]!r}" if given.strip() else "the request has none"
        raise ApiError(415, f"Content-Type must be application/json; {got}", code="unsupported_media_type")


def listing(model: str, data: list[dict[str, Any]], usage: dict[str, int]) -> JSONResponse:
    """The OpenAI list body: the data, the model that made it and the tokens it read (and the rows it cut)."""
    return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})


@router.post("/v1/embeddings", response_model=None, responses={200: {"model": EmbeddingResponse}, **ERRORS},
             dependencies=[Depends(authorized), Depends(json_only)],
             summary="Embed texts (OpenAI-compatible, plus `instruction`)")
async def embeddings(body: EmbeddingRequest, request: Request) -> JSONResponse:
    served = service(request)
    worker = served.pick(body.model)
    pairs = served.pairs(body.input, body.instruction, body.instructions)
    if body.dimensions is not None and body.dimensions > worker.model.dim:
        raise ApiError(400, f"dimensions={body.dimensions} is more than model {worker.name!r} has "
                       f"({worker.model.dim})", param="dimensions", code="invalid_dimensions")
    if body.truncate and body.long_text == "chunk":
        raise ApiError(400, "truncate: true cuts a long input and long_text 'chunk' embeds it in windows; give one",
                       param="truncate", code="truncate_and_chunk")
    questions = None if body.instructions is None else tuple(body.instructions)
    options = Options(body.long_text or "truncate", body.chunk_overlap, questions)
    result, usage = await served.run(worker, pairs, answers=False, options=options,
                                     truncate=body.truncate or body.long_text == "truncate",
                                     single=isinstance(body.input, str))
    vectors = result.vectors.reshape(-1, result.vectors.shape[-1])  # several questions: question by question
    if body.dimensions is not None:
        vectors = keep_dimensions(torch.from_numpy(np.ascontiguousarray(vectors)), body.dimensions).numpy()
    if body.encoding_format == "base64":
        values: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    else:
        values = vectors.tolist()
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(values)]
    if questions is not None:
        for item in data:
            item["instruction_index"], item["input_index"] = divmod(item["index"], len(pairs))
    return listing(worker.name, data, usage)


@router.post("/v1/answers", response_model=None, responses={200: {"model": AnswerResponse}, **ERRORS},
             dependencies=[Depends(authorized), Depends(json_only)],
             summary="Generate the answers an answer-family model embeds")
async def answers(body: AnswerRequest, request: Request) -> JSONResponse:
    served = service(request)
    worker = served.pick(body.model)
    if not worker.model.encoder.answers:
        answer_models = [n for n, w in served.workers.items() if w.model.encoder.answers]
        raise ApiError(400, f"model {worker.name!r} ({worker.model.family}) does not generate answers; answer "
                       f"models served: {', '.join(answer_models) or 'none'}", param="model",
                       code="not_an_answer_model")
    pairs = served.pairs(body.input, body.instruction)
    result, usage = await served.run(worker, pairs, answers=True, truncate=body.truncate,
                                     single=isinstance(body.input, str))
    data = [{"object": "answer", "index": i, "answer": a,
             "embedding": result.vectors[i].tolist() if body.include_embeddings else None}
            for i, a in enumerate(result.answers or [])]
    return listing(worker.name, data, usage)


@router.get("/v1/models", response_model=ModelList, dependencies=[Depends(authorized)],
            responses={401: ERRORS[401]}, summary="The models this server was started with")
async def list_models(request: Request) -> ModelList:
    served = service(request)
    return ModelList.model_validate({"data": [
        {"id": name, "created": served.created, "family": w.model.family, "dimensions": w.model.dim,
         "answers": bool(w.model.encoder.answers)} for name, w in served.workers.items()]})


@router.get("/health", response_model=Health, summary="Liveness: answers while the server runs")
async def health(request: Request) -> Health:
    workers = service(request).workers
    return Health(models=list(workers), queued_rows={n: w.queued_rows for n, w in workers.items()})


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(authorized)],
            responses={401: ERRORS[401]}, summary="Prometheus metrics (text format 0.0.4)")
async def prometheus(request: Request) -> PlainTextResponse:
    served = service(request)
    for name, worker in served.workers.items():
        served.metrics.set("inbedder_queue_rows", worker.queued_rows, model=name)
    return PlainTextResponse(served.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
