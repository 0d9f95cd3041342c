"""Dynamic batching: requests to one model wait briefly in a queue and run together in one ``encode`` call.

One :class:`ModelWorker` per served model owns one worker thread (the event loop never runs the model).
The thread takes the oldest waiting request, waits up to ``max_wait_ms`` for others to join, and merges
waiting requests of the same kind (embeddings or answers) while the batch stays within ``max_batch_rows``
and ``max_batch_tokens``; ``Embedder.encode`` then dedups and sorts the merged rows by length. Each request
gets exactly its own rows back, in order. The queue is bounded in rows: a request that does not fit is
refused at once (:class:`QueueFull` → 429), so memory stays bounded. ``stop()`` finishes every queued
request before the thread ends.

The service refuses a row longer than the model's limit unless its request asked to cut it; a batch holding such
rows runs without the engine's warning about them (``usage.truncated_inputs`` reports them to the client, and
``inbedder_truncated_inputs_total`` to the operator).

>>> worker = ModelWorker("tiny", model, ServeConfig(), Metrics())      # doctest: +SKIP
>>> worker.start(); future = worker.submit([(None, "a cat")], answers=False, tokens=3)   # doctest: +SKIP
>>> future.result().vectors.shape                                      # doctest: +SKIP
(1, 32)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..cache.store import EmbeddingCache
from ..encoders.base import Pair
from .config import ServeConfig
from .metrics import Metrics

log = logging.getLogger("inbedder.serve")
TRUNCATED = r"\d+ of \d+ texts were longer than the model's maximum length and were truncated"
_WARNINGS = threading.Lock()  # warnings.catch_warnings swaps a process-wide list: one worker at a time


class Counted(NamedTuple):
    """Tokens of each row before any cut (instruction and prompt included), and the most a row may hold (None:
    the family cannot tell, and ``tokens`` are then its count after the cut, or an estimate)."""

    tokens: list[int]
    limit: int | None


class QueueFull(Exception):
    """The model's queue has no room for the request's rows."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work."""


class Options(NamedTuple):
    """How a request's rows are embedded; only requests with equal options run in one batch."""

    long_text: str = "truncate"
    chunk_overlap: int | None = None
    questions: tuple[str, ...] | None = None  # several instructions, each asked of every input

    def encode_options(self) -> dict[str, Any]:
        """The ``encode`` keywords these options need (none for the defaults)."""
        given = {"long_text": self.long_text if self.long_text != "truncate" else None,
                 "chunk_overlap": self.chunk_overlap,
                 "instructions": None if self.questions is None else list(self.questions)}
        return {k: v for k, v in given.items() if v is not None}


PLAIN = Options()


@dataclass
class Result:
    vectors: np.ndarray  # (n, d) float32, the request's rows in order; (k, n, d) with several questions
    answers: list[str] | None


@dataclass(eq=False)
class Job:
    pairs: list[Pair]
    answers: bool  # wants generated answers (``return_generations=True``)
    tokens: int
    options: Options = PLAIN
    truncated: int = 0  # rows the model will cut to its limit (the request asked for it)
    arrived: float = field(default_factory=time.monotonic)
    future: Future[Result] = field(default_factory=Future)

    @property
    def rows(self) -> int:
        """Rows the model embeds: every pair, under each question when there are several."""
        return len(self.pairs) * (1 if self.options.questions is None else len(self.options.questions))


class CountingCache(EmbeddingCache):
    """The shared SQLite cache, counting each model's hits and misses into the metrics."""

    def __init__(self, path: Any, metrics: Metrics, model: str):
        super().__init__(path)
        self.metrics, self.model = metrics, model

    def record_run(self, model_key: str, hits: int, misses: int) -> None:
        super().record_run(model_key, hits, misses)
        self.metrics.inc("inbedder_cache_hits_total", hits, model=self.model)
        self.metrics.inc("inbedder_cache_misses_total", misses, model=self.model)


class ModelWorker:
    """The queue and worker thread of one model."""

    def __init__(self, name: str, model: Any, config: ServeConfig, metrics: Metrics,
                 cache: EmbeddingCache | None = None):
        self.name, self.model, self.config, self.metrics, self.cache = name, model, config, metrics, cache
        self._pending: deque[Job] = deque()
        self._rows = 0  # rows waiting
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- called from the server ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (again, after a stop); does nothing while it runs."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name=f"inbedder-model-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, finish what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queued_rows(self) -> int:
        return self._rows

    def count_tokens(self, pairs: list[Pair]) -> Counted:
        """The tokens of each (instruction, text) row as the model reads it and the model's limit: the family's
        ``row_lengths``, the count the engine cuts by (a row is cut when it has more tokens than the limit).
        A family that cannot tell gives its count after the cut, or words + 2, and no limit."""
        if not pairs:
            return Counted([], None)
        encoder = self.model.encoder
        found = encoder.row_lengths(pairs) if hasattr(encoder, "row_lengths") else None
        if found is not None:
            return Counted([int(n) for n in found[0]], int(found[1]))
        counts = encoder.token_counts(pairs) if hasattr(encoder, "token_counts") else None
        if counts is None:
            counts = [len(text.split()) + len((ins or "").split()) + 2 for ins, text in pairs]
        return Counted([int(c) for c in counts], None)

    def submit(self, pairs: list[Pair], answers: bool, tokens: int, options: Options = PLAIN, truncated: int = 0
               ) -> Future[Result]:
        """Queue one request (``truncated``: how many of its rows the model will cut); raises :class:`QueueFull` or
        :class:`ShuttingDown` instead of waiting."""
        job = Job(list(pairs), answers, tokens, options, truncated)
        with self._cond:
            if self._stopping:
                raise ShuttingDown(self.name)
            if self._thread is None:  # an app used without its lifespan (a test client outside ``with``)
                self.start()
            if self._rows + job.rows > self.config.max_queue_rows:
                raise QueueFull(self.name)
            self._pending.append(job)
            self._rows += job.rows
            self.metrics.set("inbedder_queue_rows", self._rows, model=self.name)
            self._cond.notify_all()
        return job.future

    # -- the worker thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]  # timed out while waiting: skip
            if live:
                self._process(live)

    def _select(self) -> tuple[list[Job], bool]:
        """The oldest job and the waiting jobs of its kind (answers or not, same options) that fit with it; and
        whether the batch is full."""
        first = self._pending[0]
        picked, rows, tokens = [first], first.rows, first.tokens
        for job in list(self._pending)[1:]:
            if job.answers != first.answers or job.options != first.options:
                continue
            if rows + job.rows > self.config.max_batch_rows or tokens + job.tokens > self.config.max_batch_tokens:
                return picked, True
            picked.append(job)
            rows, tokens = rows + job.rows, tokens + job.tokens
        return picked, rows >= self.config.max_batch_rows or tokens >= self.config.max_batch_tokens

    def _take(self) -> list[Job] | None:
        with self._cond:
            while not self._pending:
                if self._stopping:
                    return None
                self._cond.wait()
            deadline = self._pending[0].arrived + self.config.max_wait_ms / 1000
            while True:
                picked, full = self._select()
                remaining = deadline - time.monotonic()
                if full or self._stopping or remaining <= 0:
                    break
                self._cond.wait(remaining)
            for job in picked:
                self._pending.remove(job)
            self._rows -= sum(j.rows for j in picked)
            self.metrics.set("inbedder_queue_rows", self._rows, model=self.name)
        return picked

    def _process(self, jobs: list[Job], retry: bool = False) -> None:
        start = time.monotonic()
        for job in jobs if not retry else []:
            self.metrics.observe("inbedder_queue_seconds", start - job.arrived, model=self.name)
        pairs = [p for job in jobs for p in job.pairs]
        cut = sum(j.truncated for j in jobs)
        try:
            with reported_truncation() if cut else contextlib.nullcontext():
                vectors, answers = self._compute(pairs, jobs[0].answers, jobs[0].options)
        except Exception as exc:  # noqa: BLE001 - the error goes to the requests that caused it
            if len(jobs) > 1:  # one bad request must not fail the others merged with it: run each alone
                for job in jobs:
                    self._process([job], retry=True)
                return
            log.warning("a request of %d rows failed: %s", len(pairs), exc)
            jobs[0].future.set_exception(exc)
            return
        self.metrics.observe("inbedder_batch_seconds", time.monotonic() - start, model=self.name)
        rows = sum(j.rows for j in jobs)
        self.metrics.observe("inbedder_batch_rows", rows, model=self.name)
        self.metrics.observe("inbedder_batch_requests", len(jobs), model=self.name)
        self.metrics.inc("inbedder_inputs_total", rows, model=self.name)
        self.metrics.inc("inbedder_tokens_total", sum(j.tokens for j in jobs), model=self.name)
        if cut:
            self.metrics.inc("inbedder_truncated_inputs_total", cut, model=self.name)
        at = 0
        for job in jobs:
            n = len(job.pairs)
            mine = vectors[at:at + n] if job.options.questions is None else vectors[:, at:at + n]
            job.future.set_result(Result(mine, None if answers is None else answers[at:at + n]))
            at += n

    def _compute(self, pairs: list[Pair], want_answers: bool, options: Options = PLAIN
                 ) -> tuple[np.ndarray, list[str] | None]:
        texts = [t for _, t in pairs]
        asked = None if options.questions is not None else [i for i, _ in pairs]
        out = self.model.encode(texts, instruction=asked, batch_size=self.config.batch_size,
                                show_progress_bar=False, cache=self.cache, return_generations=want_answers,
                                **options.encode_options())
        if want_answers:
            vectors, answers = out
            return np.asarray(vectors, dtype=np.float32), list(answers)
        return np.asarray(out, dtype=np.float32), None


@contextlib.contextmanager
def reported_truncation() -> Iterator[None]:
    """Leave out the engine's warning about truncated texts: the requests asked for the cut and their ``usage``
    reports it, so the server log gets no warning (with its Python source line) for it. The filter list is
    process-wide, so workers whose batches cut rows take turns; other batches never wait for this."""
    with _WARNINGS, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TRUNCATED, category=UserWarning)
        yield
