"""Dynamic batching with a scripted model: merging, bounds, order, backpressure, timeouts, isolation, draining."""

from __future__ import annotations

import threading
import time
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from inbedder.errors import InputError  # noqa: E402
from inbedder.serve.app import create_app  # noqa: E402
from inbedder.serve.batcher import PLAIN, ModelWorker, Options, QueueFull, ShuttingDown, reported_truncation  # noqa: E402
from inbedder.serve.config import ServeConfig  # noqa: E402
from inbedder.serve.metrics import Metrics  # noqa: E402


class ScriptedModel:
    """Vector of a row = [len(text), len(instruction)]; records each encode call; can be held or made to fail."""

    family, dim = "scripted", 2

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[Any], bool]] = []
        self.long_text: list[str | None] = []  # the long_text option of each call
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.encoder = SimpleNamespace(answers=True, token_counts=lambda pairs: [len(t) + 1 for _, t in pairs])

    def encode(self, texts: list[str], instruction: list[Any], return_generations: bool = False, **options: Any) -> Any:
        self.started.set()
        self.release.wait(10)
        if "poison" in texts:
            raise InputError("row 0: poison is not a valid text")
        self.calls.append((list(texts), list(instruction), return_generations))
        self.long_text.append(options.get("long_text"))
        vectors = np.array([[len(t), len(i or "")] for t, i in zip(texts, instruction, strict=True)], np.float32)
        return (vectors, [t.upper() for t in texts]) if return_generations else vectors


def make(config: ServeConfig, model: ScriptedModel | None = None) -> tuple[ModelWorker, ScriptedModel]:
    model = model or ScriptedModel()
    worker = ModelWorker("m", model, config, Metrics())
    worker.start()
    return worker, model


def test_waiting_requests_merge_and_get_their_own_rows() -> None:
    worker, model = make(ServeConfig(max_wait_ms=300))
    jobs = [[(f"i{k}" * k, "x" * (k + j)) for j in range(k % 3 + 1)] for k in range(10)]
    futures = [worker.submit(pairs, answers=False, tokens=len(pairs)) for pairs in jobs]
    for pairs, future in zip(jobs, futures, strict=True):
        got = future.result(timeout=10).vectors
        assert got.tolist() == [[len(t), len(i)] for i, t in pairs]
    worker.stop()
    assert len(model.calls) == 1 and len(model.calls[0][0]) == sum(map(len, jobs))
    assert worker.metrics.value("inbedder_batch_requests", model="m") == 1


def test_batches_stay_within_rows_and_tokens_and_kinds_do_not_mix() -> None:
    worker, model = make(ServeConfig(max_wait_ms=300, max_batch_rows=6, max_batch_tokens=1000, max_inputs=8,
                                     max_queue_rows=64))
    model.release.clear()
    futures = [worker.submit([(None, "ab")] * 3, answers=k % 2 == 1, tokens=9) for k in range(8)]
    model.release.set()
    for k, future in enumerate(futures):
        result = future.result(timeout=10)
        assert (result.answers == ["AB"] * 3) if k % 2 else result.answers is None
    worker.stop()
    assert all(len(texts) <= 6 for texts, _, _ in model.calls)
    assert {kind for _, _, kind in model.calls} == {True, False}
    worker, model = make(ServeConfig(max_wait_ms=300))  # other embedding options: a batch of their own
    model.release.clear()
    futures = [worker.submit([(None, "ab")], answers=False, tokens=1, options=Options("chunk") if k % 2 else PLAIN)
               for k in range(4)]
    model.release.set()
    [f.result(timeout=10) for f in futures]
    worker.stop()
    assert [len(texts) for texts, _, _ in model.calls] == [2, 2]  # jobs 0 and 2, then jobs 1 and 3
    assert model.long_text == [None, "chunk"]
    worker, model = make(ServeConfig(max_wait_ms=300, max_batch_tokens=20))
    futures = [worker.submit([(None, "ab")], answers=False, tokens=9) for _ in range(4)]
    [f.result(timeout=10) for f in futures]
    worker.stop()
    assert [len(texts) for texts, _, _ in model.calls] == [2, 2]


def test_a_request_larger_than_a_batch_runs_alone() -> None:
    worker, model = make(ServeConfig(max_batch_rows=2, max_wait_ms=0))
    assert worker.submit([(None, "a")] * 5, answers=False, tokens=5).result(timeout=10).vectors.shape == (5, 2)
    worker.stop()


def test_queue_bound_and_shutdown_refuse_at_once() -> None:
    worker, model = make(ServeConfig(max_queue_rows=4, max_inputs=4, max_wait_ms=0))
    model.release.clear()
    running = worker.submit([(None, "a")], answers=False, tokens=1)
    assert model.started.wait(5)
    waiting = worker.submit([(None, "b")] * 4, answers=False, tokens=4)
    with pytest.raises(QueueFull):
        worker.submit([(None, "c")], answers=False, tokens=1)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    time.sleep(0.05)
    with pytest.raises(ShuttingDown):
        worker.submit([(None, "d")], answers=False, tokens=1)
    model.release.set()
    stopper.join(10)
    assert running.result(0).vectors.shape == (1, 2) and waiting.result(0).vectors.shape == (4, 2)  # drained


def test_a_failing_request_does_not_fail_the_ones_merged_with_it() -> None:
    worker, model = make(ServeConfig(max_wait_ms=300))
    good = worker.submit([(None, "fine")], answers=False, tokens=1)
    bad = worker.submit([(None, "poison")], answers=False, tokens=1)
    also_good = worker.submit([(None, "ok")], answers=False, tokens=1)
    assert good.result(timeout=10).vectors.tolist() == [[4, 0]]
    assert also_good.result(timeout=10).vectors.tolist() == [[2, 0]]
    with pytest.raises(InputError, match="poison"):
        bad.result(timeout=10)
    worker.stop()


def test_http_429_408_and_400_from_the_model() -> None:
    model = ScriptedModel()
    config = ServeConfig(max_queue_rows=2, max_inputs=2, max_wait_ms=0, request_timeout=0.3, retry_after=3)
    with TestClient(create_app({"m": model}, config)) as client:
        model.release.clear()
        holder = threading.Thread(target=lambda: client.post("/v1/embeddings", json={"input": "a"}))
        holder.start()
        assert model.started.wait(5)
        queued = threading.Thread(target=lambda: client.post("/v1/embeddings", json={"input": ["b", "c"]}))
        queued.start()
        deadline = time.monotonic() + 5
        while client.get("/health").json()["queued_rows"]["m"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = client.post("/v1/embeddings", json={"input": "d"})
        assert r.status_code == 429 and r.headers["retry-after"] == "3" and r.json()["error"]["code"] == "queue_full"
        holder.join(5)
        queued.join(5)  # both timed out (408) while the model was held
        r = client.post("/v1/embeddings", json={"input": "e"})
        assert r.status_code in (408, 429)
        model.release.set()
        time.sleep(0.1)
        r = client.post("/v1/embeddings", json={"input": "poison"})
        assert r.status_code == 400 and "poison" in r.json()["error"]["message"]
        assert client.post("/v1/embeddings", json={"input": "fine"}).status_code == 200
        metrics = client.get("/metrics").text
        assert 'inbedder_rejected_total{model="m",reason="queue_full"}' in metrics
        assert 'inbedder_rejected_total{model="m",reason="timeout"}' in metrics
    assert not [t for t in model.calls if "b" in t[0]]  # the timed-out request was dropped, not computed


def test_an_app_used_without_its_lifespan_still_answers() -> None:
    client = TestClient(create_app({"m": ScriptedModel()}))  # not entered with ``with``: no startup event
    r = client.post("/v1/embeddings", json={"input": ["abc", "de"], "instruction": "q"})
    assert [row["embedding"] for row in r.json()["data"]] == [[3.0, 1.0], [2.0, 1.0]]


class CuttingModel(ScriptedModel):
    """Warns as the engine does when it cuts texts: every text longer than 3 characters is cut."""

    def encode(self, texts: list[str], instruction: list[Any], return_generations: bool = False, **options: Any) -> Any:
        long = sum(len(t) > 3 for t in texts)
        if long:
            warnings.warn(f"{long} of {len(texts)} texts were longer than the model's maximum length and were "
                          "truncated", stacklevel=2)
        return super().encode(texts, instruction, return_generations, **options)


def test_a_batch_that_cuts_rows_it_was_asked_to_cut_does_not_warn() -> None:
    """The request said truncate: its usage reports the cut, so no warning (with a source line) reaches the log;
    a batch that nobody said would cut still warns, and the process's filters are left as they were."""
    worker, _ = make(ServeConfig(max_wait_ms=0), CuttingModel())
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker.submit([(None, "long text"), (None, "ok")], answers=False, tokens=2, truncated=1).result(timeout=10)
        assert not caught
        worker.submit([(None, "long text")], answers=False, tokens=1).result(timeout=10)
        assert [str(w.message) for w in caught] == [
            "1 of 1 texts were longer than the model's maximum length and were truncated"]
    worker.stop()
    assert warnings.filters == before
    assert worker.metrics.value("inbedder_truncated_inputs_total", model="m") == 1


def test_workers_take_turns_at_the_warning_filters() -> None:
    """catch_warnings swaps a process-wide list: two threads inside it at once could restore each other's filters."""
    inside, overlaps = [0], []

    def run() -> None:
        for _ in range(50):
            with reported_truncation():
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.0005)
                inside[0] -= 1

    before = list(warnings.filters)
    threads = [threading.Thread(target=run) for _ in range(4)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert max(overlaps) == 1 and warnings.filters == before
