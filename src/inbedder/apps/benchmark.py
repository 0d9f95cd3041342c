"""Throughput of one model in several dtypes on the same texts, with fidelity and the share of the GEMM roofline.

Used by ``inbedder bench`` and ``benchmarks/encode_speed.py``. Timed runs alternate between the variants (and
any competitor given as a callable), the order reversed every round, so that noise on a shared machine falls
on all alike; the median of each is reported. Fidelity is the cosine of each row's vector to the float32
variant's. The roofline compares the useful FLOPs (real tokens, :func:`inbedder.speed.flops_per_token`) per
second with the FLOP/s of one large ``torch.matmul`` in float32 and in bfloat16 measured in the same run.

>>> report = bench_encoder("minilm", texts, ["float32", "bfloat16", "int8"])       # doctest: +SKIP
>>> report["variants"]["bfloat16"]["texts_per_s"], report["variants"]["bfloat16"]["min_cosine"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError, did_you_mean
from ..speed import flops_per_token, peak_gemm_flops


@dataclass(frozen=True)
class Variant:
    """How a model is loaded for one row of the benchmark."""

    name: str
    dtype: str = "float32"
    quantize: str = "none"


VARIANTS = {v.name: v for v in (Variant("float32"), Variant("bfloat16", "bfloat16"), Variant("float16", "float16"),
                                Variant("int8", quantize="int8"), Variant("bfloat16+int8", "bfloat16", "int8"),
                                Variant("auto", quantize="auto"))}  # auto: int8 where it measured faster on this CPU


def parse_variants(names: str | list[str]) -> list[Variant]:
    """``"float32,bfloat16,int8"`` → variants; float32 is always measured (the reference of fidelity)."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    for name in items:
        if name not in VARIANTS:
            raise InputError(f"variant {name!r} is not known; choose from {sorted(VARIANTS)}."
                             f"{did_you_mean(name, list(VARIANTS))}")
    return [VARIANTS[n] for n in dict.fromkeys(["float32", *items])]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.asarray((a64 * b64).sum(1) / np.maximum(norms, 1e-30))


def alternate(runners: dict[str, Callable[[], np.ndarray]], rounds: int, progress: Callable[[str], None] | None = None
              ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, np.ndarray]]:
    """Wall and process CPU seconds of every runner in every round (A, B, C, then C, B, A, ...), last outputs.

    On a machine shared with other work, CPU seconds (all threads of this process) are the steadier measure:
    waiting for a core adds wall time, not CPU time."""
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, np.ndarray] = {}
    names = list(runners)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if progress is not None:
                progress(f"round {r + 1}/{rounds}: {name}")
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[name] = runners[name]()
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return seconds, cpu, outputs


def useful_flops(model: Any, lengths: list[int]) -> float | None:
    """FLOPs of the real tokens of the rows (``lengths`` tokens each), or None where the family has no encoder."""
    transformer = getattr(model.encoder, "transformer", None)
    if transformer is None:
        return None
    return float(sum(n * flops_per_token(transformer, transformer.config, n) for n in lengths))


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def bench_encoder(model_name: str, texts: list[str], variants: str | list[str], *, instruction: str | None = None,
                  batch_size: int = 32, max_tokens_per_batch: int | None = None, rounds: int = 3, warmup: int = 2,
                  competitors: dict[str, Callable[[list[str]], np.ndarray]] | None = None, peak_size: int | None = 2048,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load ``model_name`` once per variant, embed ``texts`` in alternating rounds, report speed (each row's
    ``vs_float32``: its texts/s over inbedder float32's) and fidelity.

    ``competitors`` are other libraries' encode functions (``texts -> (n, d) array``), timed in the same rounds;
    their fidelity is measured against inbedder's float32 vectors too. ``peak_size`` is the side of the square
    matrices timed for the roofline (``None``: no roofline).
    """
    from ..loading import load

    if not texts:
        raise InputError("no texts to benchmark")
    if rounds < 1 or warmup < 0:
        raise InputError(f"rounds must be >= 1 and warmup >= 0; got rounds={rounds}, warmup={warmup}")
    chosen = parse_variants(variants)
    models = {v.name: load(model_name, device="cpu", dtype=v.dtype, quantize=v.quantize) for v in chosen}
    distinct = list(dict.fromkeys(texts))
    first = models["float32"]
    lengths = first.encoder.token_counts([(instruction, t) for t in distinct])

    def runner(model: Any) -> Callable[[], np.ndarray]:
        return lambda: model.encode(texts, instruction=instruction, batch_size=batch_size,
                                    max_tokens_per_batch=max_tokens_per_batch, show_progress_bar=False)

    runners: dict[str, Callable[[], np.ndarray]] = {f"inbedder {n}": runner(m) for n, m in models.items()}
    for name, fn in (competitors or {}).items():
        runners[name] = (lambda f: lambda: np.asarray(f(texts)))(fn)
    if warmup:
        _warm_up(list(runners), models, competitors or {}, texts, warmup * batch_size, instruction, progress)
    load_before = load_average()
    seconds, cpu_seconds, outputs = alternate(runners, rounds, progress)
    reference = outputs["inbedder float32"]
    flops = useful_flops(first, lengths) if lengths is not None else None
    peaks = {"float32": peak_gemm_flops(torch.float32, peak_size),
             "bfloat16": peak_gemm_flops(torch.bfloat16, peak_size)} if peak_size else {}
    rows = {name: _variant_row(times, cpu_seconds[name], cosine_rows(outputs[name], reference), len(texts),
                               lengths, flops, peaks) for name, times in seconds.items()}
    for row in rows.values():
        row["vs_float32"] = row["texts_per_s"] / rows["inbedder float32"]["texts_per_s"]
    return {"model": model_name, "texts": len(texts), "distinct_texts": len(distinct),
            "tokens": sum(lengths) if lengths is not None else None, "flops": flops, "batch_size": batch_size,
            "max_tokens_per_batch": max_tokens_per_batch, "rounds": rounds, "instruction": instruction,
            "threads": torch.get_num_threads(), "peak_flops_per_s": peaks,
            "load_average": [load_before, load_average()], "variants": rows, "vectors": outputs}


def _warm_up(names: list[str], models: dict[str, Any], competitors: dict[str, Callable[[list[str]], Any]],
             texts: list[str], size: int, instruction: str | None, progress: Callable[[str], None] | None) -> None:
    """Embed ``size`` texts of a spread of lengths with each runner (``inbedder <variant>`` or a competitor), so
    that no variant pays first-call costs in the timed rounds."""
    sample = sorted(texts, key=len, reverse=True)[::max(1, len(texts) // max(1, size))]
    warm = sample[:size]
    for name in names:
        if progress is not None:
            progress(f"warm-up: {name}")
        if name.startswith("inbedder "):
            models[name.removeprefix("inbedder ")].encode(warm, instruction=instruction, show_progress_bar=False)
        else:
            competitors[name](warm)


def _variant_row(times: list[float], cpu_times: list[float], cos: np.ndarray, n_texts: int,
                 lengths: list[int] | None, flops: float | None, peaks: dict[str, float]) -> dict[str, Any]:
    """One variant's speed (per text, token and CPU second; against the roofline ``peaks``) from its round times,
    and its fidelity (``cos``: each row's cosine to inbedder's float32 vector)."""
    median = statistics.median(times)
    row: dict[str, Any] = {"seconds": times, "cpu_seconds": cpu_times, "median_s": median,
                           "texts_per_s": n_texts / median, "texts_per_cpu_s": n_texts / statistics.median(cpu_times),
                           "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    if lengths is not None:
        row["tokens_per_s"] = sum(lengths) / median
    if flops is not None and peaks:
        row["flops_per_s"] = flops / median
        row.update({f"roofline_{k}": flops / median / v for k, v in peaks.items()})
    return row
