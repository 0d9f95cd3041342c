"""Result files: one JSON object per evaluation run, and a markdown table over many of them.

A result holds ``format``, ``task``, ``model`` (name, family, dim, settings), ``settings`` (of the run),
``data`` (each path with its sha256), ``primary_metric``, ``metrics`` (``dict[str, float]``), ``timings``
(seconds), ``versions`` (Python and libraries), ``machine`` and ``date`` (UTC, ISO 8601); tasks add their own
fields (the awareness ``matrix`` and ``summary``, the robustness ``per_instruction`` list).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import InputError

RESULT_FORMAT = 1
LIBRARIES = ("inbedder", "torch", "transformers", "tokenizers", "numpy", "scikit-learn", "matplotlib")


def sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file; for a folder, of each file's relative path and sha256, in sorted order."""
    p = Path(path)
    if p.is_dir():
        digest = hashlib.sha256()
        for child in sorted(q for q in p.rglob("*") if q.is_file()):
            digest.update(f"{child.relative_to(p).as_posix()}\0{sha256(child)}\n".encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Python's version and those of the installed libraries that matter for the numbers."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def model_info(model: Any) -> dict[str, Any]:
    """Name, family, dimension and vector-changing settings of a loaded model (what it has of them)."""
    info: dict[str, Any] = {"name": str(getattr(model, "name", "") or type(model).__name__)}
    for key in ("family", "dim"):
        value = getattr(model, key, None)
        if value is not None:
            info[key] = value
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "settings"):
        info["settings"] = _plain(encoder.settings())
    return info


def make_result(task: str, model: Any, metrics: Mapping[str, float], *, primary: str,
                data: Sequence[str | os.PathLike[str]] = (), settings: Mapping[str, Any] | None = None,
                timings: Mapping[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    """Assemble a result object (``primary`` must be one of ``metrics``)."""
    if primary not in metrics:
        raise InputError(f"the primary metric {primary!r} is not among the metrics {list(metrics)}")
    result: dict[str, Any] = {
        "format": RESULT_FORMAT, "task": task, "model": model_info(model), "settings": _plain(dict(settings or {})),
        "data": [{"path": os.fspath(p), "sha256": sha256(p)} for p in data],
        "primary_metric": primary, "metrics": {k: _number(v) for k, v in metrics.items()},
    }
    result.update(_plain(extra))
    result["timings"] = {k: round(float(v), 3) for k, v in (timings or {}).items()}
    result["versions"] = versions()
    result["machine"] = {"platform": platform.platform(), "processor": platform.machine(),
                         "cpus": os.cpu_count() or 0, "device": str(getattr(model, "device", ""))}
    if hasattr(os, "getloadavg"):  # timings on a busy machine are slower: say how busy it was
        result["machine"]["load_average_1m"] = round(os.getloadavg()[0], 2)
    result["date"] = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return result


def write_result(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a result as indented JSON (non-finite numbers become ``null``)."""
    out = Path(path)
    out.write_text(json.dumps(_plain(dict(result)), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                   encoding="utf-8")
    return out


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a result file, checking that it has a task, a model and metrics."""
    name = os.fspath(path)
    try:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not all(k in data for k in ("task", "model", "metrics")):
        raise InputError(f"{name}: not an inbedder result file (needs 'task', 'model' and 'metrics')")
    return data


def report(results: Iterable[Mapping[str, Any]], digits: int = 4) -> str:
    """A markdown table: task, model, data, run notes, primary metric and value, the other metrics, date."""
    lines = ["| task | model | data | notes | metric | value | other metrics | date |",
             "|---|---|---|---|---|---:|---|---|"]
    for r in results:
        metrics = dict(r.get("metrics", {}))
        primary = r.get("primary_metric") or next(iter(metrics), "")
        others = ", ".join(f"{k} {_fmt(v, digits)}" for k, v in metrics.items() if k != primary)
        data = ", ".join(Path(d.get("path", "")).name for d in r.get("data", [])) or "-"
        model = r.get("model", {}).get("name", "?") if isinstance(r.get("model"), dict) else str(r.get("model"))
        lines.append(f"| {r.get('task', '?')} | {model} | {data} | {_notes(r.get('settings') or {})} | {primary} "
                     f"| {_fmt(metrics.get(primary), digits)} | {others} | {str(r.get('date', ''))[:10]} |")
    return "\n".join(lines) + "\n"


def _notes(settings: Mapping[str, Any]) -> str:
    """What sets runs on the same data apart: instructions, axes, robustness lists, subsampling."""
    notes = []
    for key in ("instruction", "query_instruction", "doc_instruction"):
        if settings.get(key):
            text = str(settings[key])
            notes.append(f"{key.replace('_', ' ')} \"{text if len(text) <= 48 else text[:45] + '...'}\"")
    if settings.get("axes"):
        notes.append("axes " + ", ".join(settings["axes"]))
    if settings.get("robustness"):
        notes.append("robustness " + ", ".join(f"{len(v)} {k}" for k, v in settings["robustness"].items()))
    if settings.get("limit"):
        notes.append(f"limit {settings['limit']} (seed {settings.get('seed', 0)})")
    return "; ".join(notes).replace("|", "\\|") or "-"


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuples → lists, numpy scalars → Python numbers, non-finite floats → None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
