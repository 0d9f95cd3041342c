"""What the routes share: the served models' workers, the checks every request passes before it is queued, and
the wait for its result. Knows nothing of routes or of how the app is built.

Every row is counted in tokens as the model reads it (instruction and prompt included) before it is queued: a
row over the model's limit is refused with 413 unless the request asked to cut it (``truncate``) or to embed
it in windows (``long_text: "chunk"``). The same count, made once per request, gives ``usage``.

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
from .batcher import PLAIN, Counted, CountingCache, ModelWorker, Options, QueueFull, Result, ShuttingDown
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
        questions), no empty text (a string of spaces is a text: it is embedded as it is), characters per text
        before any tokenizer sees it, valid Unicode."""
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
        for name, values in (("input", texts), ("instruction", instruction), ("instructions", questions)):
            for where, value in _named(name, values):
                if name == "input" and value == "":
                    raise ApiError(400, f"{where} is an empty string; every input needs at least one character",
                                   param=where, code="empty_string")
                _check_text(where, value, self.config.max_input_chars)
        try:
            return to_pairs(rows, instruction)[0]
        except InputError as exc:  # the types are checked by the schema: only the count can be wrong
            raise ApiError(400, f"instruction: {exc}", param="instruction", code="instruction_count") from None

    async def run(self, worker: ModelWorker, pairs: list[Pair], answers: bool, options: Options = PLAIN, *,
                  truncate: bool = False, single: bool = False) -> tuple[Result, dict[str, int]]:
        """Count the rows' tokens (413 for a row over the model's limit unless ``truncate`` or chunk mode), queue
        them on ``worker`` and wait (429 when the queue is full, 408 past the timeout); the result and the
        request's ``usage``. ``single``: the input was one string (errors then name ``input``, not ``input[0]``)."""
        config, metrics, start = self.config, self.metrics, time.monotonic()
        rows: list[Pair] = pairs if options.questions is None else [(q, text) for q in options.questions
                                                                    for _, text in pairs]
        counted = await anyio.to_thread.run_sync(worker.count_tokens, rows)
        chunk = options.long_text == "chunk"
        over = [] if counted.limit is None or chunk else [r for r, n in enumerate(counted.tokens) if n > counted.limit]
        if over and not truncate:
            raise _too_long(worker.name, counted, over, len(pairs), options.questions, single, chunk_ok=not answers)
        tokens = sum(counted.tokens if chunk or counted.limit is None else
                     (min(n, counted.limit) for n in counted.tokens))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens, "truncated_inputs": len(over)}
        try:
            future = worker.submit(pairs, answers, tokens, options, truncated=len(over))
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
            return await asyncio.wait_for(asyncio.wrap_future(future), max(remaining, 0.001)), usage
        except asyncio.TimeoutError:  # not the built-in TimeoutError before Python 3.11
            future.cancel()
            metrics.inc("inbedder_rejected_total", reason="timeout", model=worker.name)
            raise ApiError(408, f"the request took longer than the limit of {config.request_timeout} s",
                           type="timeout_error", code="timeout") from None


def _too_long(model: str, counted: Counted, over: list[int], n: int, questions: tuple[str, ...] | None,
              single: bool, chunk_ok: bool) -> ApiError:
    """The 413 for rows over the model's limit: the first one by index, its tokens and the limit, and the ways out."""
    asked, i = divmod(over[0], n)
    where = "input" if single else f"input[{i}]"
    under = "" if questions is None else f" under instructions[{asked}]"
    ways = '"truncate": true to cut it (usage.truncated_inputs counts the inputs cut)'
    ways += ', "long_text": "chunk" to embed it in overlapping windows,' if chunk_ok else ""
    more = f"; {len(over) - 1} more row(s) of this request are over the limit too" if len(over) > 1 else ""
    return ApiError(413, f"{where}{under} has {counted.tokens[over[0]]} tokens (its instruction and the model's "
                    f"prompt included); model {model!r} reads at most {counted.limit}. Send {ways} or shorten it"
                    f"{more}", param=where, code="context_length_exceeded")


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
