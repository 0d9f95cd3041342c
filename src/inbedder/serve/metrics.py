"""Prometheus metrics in the text exposition format (version 0.0.4), kept in memory, safe across threads.

>>> m = Metrics()
>>> m.observe("inbedder_batch_rows", 3, model="minilm")
>>> "inbedder_batch_rows_sum{model=\\"minilm\\"} 3" in m.render()
True
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

# name → (type, help, histogram buckets)
DEFINITIONS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "inbedder_requests_total": ("counter", "HTTP requests by path and status code.", ()),
    "inbedder_request_seconds": ("histogram", "HTTP request latency by path.", LATENCY),
    "inbedder_batch_rows": ("histogram", "Rows per merged model batch.", SIZES),
    "inbedder_batch_requests": ("histogram", "Requests merged into one model batch.", SIZES),
    "inbedder_batch_seconds": ("histogram", "Time the model takes for one merged batch.", LATENCY),
    "inbedder_queue_seconds": ("histogram", "Time a request waits in the queue before its batch starts.", LATENCY),
    "inbedder_queue_rows": ("gauge", "Rows waiting in the queue, by model.", ()),
    "inbedder_inputs_total": ("counter", "Inputs embedded, by model.", ()),
    "inbedder_tokens_total": ("counter", "Tokens in the inputs embedded, by model.", ()),
    "inbedder_truncated_inputs_total": ("counter", "Inputs cut to the model's limit (truncate: true), by model.",
                                        ()),
    "inbedder_cache_hits_total": ("counter", "Rows found in the embedding cache, by model.", ()),
    "inbedder_cache_misses_total": ("counter", "Rows computed because the cache did not have them, by model.", ()),
    "inbedder_rejected_total": ("counter", "Requests refused by the batcher (queue full, timeout, shutdown).", ()),
}

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels] + ([extra] if extra else [])
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    """Counters, gauges and histograms named in :data:`DEFINITIONS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hist: dict[str, dict[Labels, list[float]]] = defaultdict(dict)  # bucket counts..., sum, count

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[name][tuple(sorted(labels.items()))] = float(value)

    def observe(self, name: str, value: float, **labels: str) -> None:
        buckets = DEFINITIONS[name][2]
        key = tuple(sorted(labels.items()))
        with self._lock:
            counts = self._hist[name].setdefault(key, [0.0] * (len(buckets) + 2))
            for i, bound in enumerate(buckets):
                if value <= bound:
                    counts[i] += 1
            counts[-2] += value
            counts[-1] += 1

    def value(self, name: str, **labels: str) -> float:
        """A counter's or gauge's value (0 when never set); a histogram's count."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            if name in self._hist:
                return self._hist[name].get(key, [0.0])[-1]
            return self._values.get(name, {}).get(key, 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text, buckets) in DEFINITIONS.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                if kind != "histogram":
                    for key, value in sorted(self._values.get(name, {}).items()):
                        lines.append(f"{name}{_labels(key)} {_number(value)}")
                    continue
                for key, counts in sorted(self._hist.get(name, {}).items()):
                    for bound, count in zip((*buckets, math.inf), (*counts[:len(buckets)], counts[-1]), strict=True):
                        le = 'le="' + _number(bound) + '"'
                        lines.append(f"{name}_bucket{_labels(key, le)} {_number(count)}")
                    lines.append(f"{name}_sum{_labels(key)} {_number(counts[-2])}")
                    lines.append(f"{name}_count{_labels(key)} {_number(counts[-1])}")
        return "\n".join(lines) + "\n"
