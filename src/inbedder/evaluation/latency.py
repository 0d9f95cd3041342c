"""Latency: texts/s, tokens/s, per-batch p50/p95 and peak memory for a model on a list of texts.

Each batch is one ``encode`` call (so the time includes everything a user waits for: tokenizing, the
forward pass, pooling, conversion). Tokens are the real (non-padding) tokens the model's family reports;
models that report none give no tokens/s. Memory is the peak resident set size of the process (CPU) and
the peak allocated CUDA memory during the timed calls (GPU).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..io.table import read_table
from .common import EvalSettings, TextEncoder


@contextlib.contextmanager
def count_tokens(model: TextEncoder) -> Iterator[list[int]]:
    """Collect ``n_tokens`` of each batch the model's family runs (an empty list for other objects)."""
    counts: list[int] = []
    encoder = getattr(model, "encoder", None)
    original = getattr(encoder, "embed_batch", None)
    if encoder is None or original is None:
        yield counts
        return

    def counted(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        counts.append(int(getattr(result, "n_tokens", 0) or 0))
        return result

    encoder.embed_batch = counted
    try:
        yield counts
    finally:
        del encoder.embed_batch  # the instance attribute goes; the class method shows again


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (NaN where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _cuda(model: TextEncoder) -> Any:
    device = getattr(model, "device", None)
    if getattr(device, "type", None) != "cuda":
        return None
    import torch

    return torch.cuda


def measure_latency(model: TextEncoder, texts: Sequence[str], *, instruction: str | None = None,
                    settings: EvalSettings | None = None, warmup: int = 1) -> dict[str, float]:
    """Time ``encode`` over ``texts`` in batches of ``settings.batch_size``, after ``warmup`` untimed batches.

    Returns ``texts_per_s`` (primary), ``tokens_per_s`` (when known), ``batch_p50_ms``, ``batch_p95_ms``,
    ``total_s``, ``peak_rss_mb`` (and ``peak_cuda_mb`` on a GPU).
    """
    settings = settings or EvalSettings()
    if not texts:
        raise InputError("latency: no texts to embed")
    size = settings.batch_size
    batches = [list(texts[i:i + size]) for i in range(0, len(texts), size)]
    for batch in batches[:max(0, warmup)]:
        model.encode(batch, instruction=instruction, batch_size=size, show_progress_bar=False)
    cuda = _cuda(model)
    if cuda is not None:
        cuda.synchronize()
        cuda.reset_peak_memory_stats()
    times: list[float] = []
    show = settings.progress if settings.progress is not None else len(batches) >= 8
    with count_tokens(model) as tokens, tqdm(total=len(texts), disable=not show, desc="Timing", unit="text") as bar:
        for batch in batches:
            start = time.perf_counter()
            model.encode(batch, instruction=instruction, batch_size=size, show_progress_bar=False)
            if cuda is not None:
                cuda.synchronize()
            times.append(time.perf_counter() - start)
            bar.update(len(batch))
    total = float(sum(times))
    ms = np.array(times) * 1000.0
    out = {"texts_per_s": len(texts) / total, "batch_p50_ms": float(np.percentile(ms, 50)),
           "batch_p95_ms": float(np.percentile(ms, 95)), "total_s": total, "texts": float(len(texts)),
           "batches": float(len(batches)), "batch_size": float(size), "peak_rss_mb": peak_rss_mb()}
    if sum(tokens):
        out["tokens"] = float(sum(tokens))
        out["tokens_per_s"] = sum(tokens) / total
    if cuda is not None:
        out["peak_cuda_mb"] = cuda.max_memory_allocated() / 2**20
    return out


@dataclass(frozen=True)
class LatencyTask:
    """Texts to time, with one instruction; shaped like the other tasks (``evaluate`` → metrics)."""

    texts: Sequence[str]
    instruction: str | None = None
    warmup: int = 1

    name: ClassVar[str] = "latency"
    primary: ClassVar[str] = "texts_per_s"

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        ins = instruction if instruction is not None else self.instruction
        return measure_latency(model, self.texts, instruction=ins, settings=settings, warmup=self.warmup)


def load_latency(path: str | os.PathLike[str], *, text_column: str = "text", instruction: str | None = None,
                 warmup: int = 1, delimiter: str | None = None, limit: int | None = None,
                 seed: int = 0) -> LatencyTask:
    """A :class:`LatencyTask` from a ``.txt`` file (one text a line) or a table with a text column."""
    table = read_table(path, delimiter=delimiter, text_column=text_column)
    table.require(text_column)
    return LatencyTask(table.sample(limit, seed).strings(text_column), instruction, warmup)
