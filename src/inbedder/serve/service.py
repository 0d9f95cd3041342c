"""What the routes share: the served models' workers, the checks every request passes before it is queued, and
the wait for its result. Knows nothing of routes or of how the app is built.

>>> service = Service({"minilm": load("minilm")}, ServeConfig())            # doctest: +SKIP
>>> pairs = service.pairs(["a cat"], "Represent the sentence:")              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import anyio.to_thread

from ..errors import InputError, did_you_mean
from ..inputs import Pair, to_pairs
from .batcher import PLAIN, CountingCache, ModelWorker, Options, QueueFull, Result, ShuttingDown
from .config import ServeConfig
from .errors import ApiError
from .metrics import Metrics


class Service:
    """The models a server runs (served id → worker), its limits and its metrics."""

    def __init__(self, models: dict[str, Any], config: ServeConfig, cache: Any = None):
        if not models:
            raise InputError("create_app needs at least one model: {served id: loaded model}")
        self.config, self.metrics, self.created = config, Metrics(), int(time.time())
        use_cache, path = cache is not None and cache is not False, None if cache is True else cache
        self.workers = {name: ModelWorker(name, model, config, self.metrics,
                                          CountingCache(path, self.metrics, name) if use_cache else None)
                        for name, model in models.items()}

    def authorize(self, given: str) -> None:
        """Raise 401 unless the server takes no keys or ``given`` is one of them (compared in constant time)."""
        keys = self.config.api_keys
        if keys and not any(secrets.compare_digest(given.encode(), key.encode()) for key in keys):
            what = "no API key was given" if not given else "the API key is not valid"
            raise ApiError(401, f"{what}; send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    def pick(self, model: str | None) -> ModelWorker:
        """The worker of ``model``; with one model served, ``model`` may be left out."""
        served = sorted(self.workers)
        if model is None:
            if len(self.workers) == 1:
                return self.workers[served[0]]
            raise ApiError(400, f"model is required when several models are served: {', '.join(served)}",
                           param="model", code="model_required")
        if model not in self.workers:
            raise ApiError(404, f"model {model!r} is not served here; served models: {', '.join(served)}."
                           f"{did_you_mean(model, served)}", param="model", code="model_not_found")
        return self.workers[model]

    def pairs(self, texts: str | list[str], instruction: str | list[str | None] | None,
              questions: list[str] | None = None) -> list[Pair]:
        """The request's (instruction, text) rows after the server's own limits: inputs per request (times the
        questions), characters per text before any tokenizer sees it, valid Unicode."""
        rows = [texts] if isinstance(texts, str) else texts
        limit = self.config.max_inputs
        if not rows:
            raise ApiError(400, "input must not be empty: give a text or a list of texts", param="input",
                           code="empty_input")
        if questions is not None and instruction is not None:
            raise ApiError(400, "give instruction (one, or one per input) or instructions (several, each asked of "
                           "every input), not both", param="instructions", code="instruction_and_instructions")
        asked = len(questions) if questions is not None else 1
        if len(rows) * asked > limit:
            what = f"{len(rows)} texts" if asked == 1 else f"{len(rows)} texts × {asked} instructions"
            raise ApiError(400, f"input has {what}; the limit is {limit} rows per request",
                           param="input", code="too_many_inputs")
        for name, values in (("input", rows), ("instruction", instruction), ("instructions", questions)):
            for where, value in _named(name, values):
                _check_text(where, value, self.config.max_input_chars)
        try:
            return to_pairs(rows, instruction)[0]
        except InputError as exc:  # the types are checked by the schema: only the count can be wrong
            raise ApiError(400, f"instruction: {exc}", param="instruction", code="instruction_count") from None

    async def run(self, worker: ModelWorker, pairs: list[Pair], answers: bool, options: Options = PLAIN
                  ) -> tuple[Result, int]:
        """Queue the rows on ``worker`` and wait for them (429 when the queue is full, 408 past the timeout);
        the result and the request's token count."""
        config, metrics, start = self.config, self.metrics, time.monotonic()
        tokens = sum(await anyio.to_thread.run_sync(worker.count_tokens, pairs))
        if options.questions is not None:
            tokens *= len(options.questions)
        try:
            future = worker.submit(pairs, answers, tokens, options)
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


def _named(name: str, values: str | list[str | None] | list[str] | None) -> list[tuple[str, str | None]]:
    """``(param, value)`` of a field: ``input[3]`` in a list, the field's name for one string."""
    if values is None:
        return []
    if isinstance(values, str):
        return [(name, values)]
    return [(f"{name}[{i}]", value) for i, value in enumerate(values)]


def _check_text(where: str, value: str | None, max_chars: int) -> None:
    if value is None:
        return
    if len(value) > max_chars:  # before any tokenizer sees it
        raise ApiError(413, f"{where} has {len(value)} characters; the limit is {max_chars}", param=where,
                       code="input_too_long")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(400, f"{where} is not valid Unicode text: {exc.reason} at character {exc.start} "
                           "(a lone surrogate escape?)", param=where, code="invalid_text") from None
