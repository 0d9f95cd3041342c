"""Choices measured once on this machine and remembered, so that every process makes the same one and so gives the
same vectors: today, whether ``quantize="auto"`` runs a model in int8 (:func:`inbedder.speed.resolve_quantize`).

They are kept in ``machine.json`` beside the user cache (:func:`inbedder.cache.store.user_cache_path`), under the
identity of the CPU (its model name and flags, and the installed torch: another CPU or torch measures again), then
by kind and key. The file is read without importing torch, so a load request can be keyed by a choice already made
(:func:`inbedder.cache.keys.request_key`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import tempfile
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from .cache.store import user_cache_path


@functools.lru_cache(maxsize=1)
def cpu_identity() -> str:
    """A short hash of this CPU (architecture, model name, flags from ``/proc/cpuinfo`` where there is one) and of
    the installed torch version."""
    name, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = value.strip()
                    break
    except OSError:
        pass
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = ""
    text = json.dumps([platform.machine(), name, sorted(flags.split()), torch])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def machine_file() -> Path:
    return user_cache_path().with_name("machine.json")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(kind: str, key: str) -> dict[str, Any] | None:
    """The choice of ``kind`` for ``key`` made on this CPU, or None when none is."""
    found = _read(machine_file()).get(cpu_identity(), {}).get(kind, {}).get(key)
    return found if isinstance(found, dict) else None


def decide(kind: str, key: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The choice of ``kind`` for ``key`` on this CPU: the one remembered, or else ``measure()``'s, remembered
    (under a file lock, written atomically; when two processes measure at once, the first to write wins). Where the
    file cannot be written, the choice is made again in each process, with a warning."""
    from filelock import FileLock

    found = remembered(kind, key)
    if found is not None:
        return found
    path = machine_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock"):
            data = _read(path)
            slot = data.setdefault(cpu_identity(), {}).setdefault(kind, {})
            if not isinstance(slot.get(key), dict):
                slot[key] = measure()
                handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                with os.fdopen(handle, "w", encoding="utf-8") as f:
                    f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
                os.replace(temporary, path)
            return dict(slot[key])
    except OSError as exc:
        warnings.warn(f"cannot keep this machine's {kind} choice in {path} ({exc}); it is measured again in each "
                      "process, so processes may choose differently", UserWarning, stacklevel=3)
        return measure()
