"""The key of a *load request*, so that a fully cached run can be served without loading the model.

The embedding cache keys rows by the *model key*: the weights fingerprint and the settings that change vectors.
Computing it needs the loaded model, which takes seconds. :func:`request_key` keys a cheap load request instead:
the resolved model location (every file's path, size and modification time), the load arguments and the encode
options. After a run that loaded the model, the cache records request → model key (``remember_request``); a later
identical request finds every row by that model key without importing torch (:mod:`inbedder.load_free` serves it).
When a file of the model changes (size or mtime), the request key changes, the lookup misses and the model is
loaded again: stale vectors are never served.

>>> request_key("minilm", encode_options={}) == request_key("minilm", encode_options={})   # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..choices import DType, Family, parse_choice
from ..errors import InbedderError

FORMAT = "inbedder-load-request/1"
MAX_FILES = 5000  # a model directory with more files than this is not fingerprinted by its files
SKIP_DIRS = {"__pycache__", ".git"}


def file_stats(path: Path) -> list[tuple[str, int, int]] | None:
    """(relative path, size, mtime in ns) of every file of a model (a directory or one file), sorted.

    None when the model cannot be described this way (missing, unreadable, or more than ``MAX_FILES`` files).
    """
    try:
        if path.is_file():
            st = path.stat()
            return [(path.name, st.st_size, st.st_mtime_ns)]
        if not path.is_dir():
            return None
        stats: list[tuple[str, int, int]] = []
        for root, dirs, files in os.walk(path, followlinks=True):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in files:
                full = Path(root) / name
                st = full.stat()  # follows links (hub snapshots link to blobs)
                stats.append((full.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns))
                if len(stats) > MAX_FILES:
                    return None
        return sorted(stats)
    except OSError:
        return None


def request_key(model: str | os.PathLike[str], *, dtype: Any = "float32", device: Any = None,
                family: str | None = None, load_options: dict[str, Any] | None = None,
                encode_options: dict[str, Any] | None = None) -> str | None:
    """A hex key for loading ``model`` this way and encoding with these options, or None when there is none
    (also where ``quantize="auto"`` applies and no load has made its choice on this CPU yet).

    Resolving an alias or a local path reads no weights and imports no torch.
    """
    found = _described(model, dtype, device, family, load_options, encode_options)
    if found is None:
        return None
    location, about = found
    auto = _auto_quantize(location, dtype, load_options or {})
    if auto is None:
        return None
    text = json.dumps({**about, **({"quantize_auto": auto} if auto else {})}, sort_keys=True, ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_files(model: str | os.PathLike[str], **request: Any) -> dict[str, Any] | None:
    """What :func:`request_key` keys before any choice of ``quantize="auto"`` (the files and arguments), to tell
    whether a model's files changed while it was loading; None where there is no key."""
    found = _described(model, request.get("dtype", "float32"), request.get("device"), request.get("family"),
                       request.get("load_options"), request.get("encode_options"))
    return None if found is None else found[1]


def _described(model: str | os.PathLike[str], dtype: Any, device: Any, family: str | None,
               load_options: dict[str, Any] | None, encode_options: dict[str, Any] | None
               ) -> tuple[Any, dict[str, Any]] | None:
    from ..registry import resolve
    from ..version import __version__

    try:
        location = resolve(model)
    except InbedderError:
        return None  # the load reports it
    files = file_stats(location.path)
    if files is None:
        return None
    return location, {"format": FORMAT, "inbedder": __version__, "path": str(location.path),
                      "source": location.source, "files": files, "dtype": parse_choice(DType, dtype, "dtype").value,
                      "device": _device_text(device),
                      "family": None if family is None else parse_choice(Family, family, "family").value,
                      "load_options": {**location.options, **(load_options or {})},
                      "encode_options": encode_options or {}}


def _auto_quantize(location: Any, dtype: Any, load_options: dict[str, Any]) -> str | None:
    """What ``quantize="auto"`` (asked for, or the model's default, or an adapter's base model's) chose for this
    model on this CPU (:mod:`inbedder.machine`): ``""`` where auto is not asked for (or cannot apply, off float32),
    None where nothing is chosen yet (a load chooses and remembers it)."""
    from ..adapters import default_quantize
    from ..machine import remembered

    try:
        wanted = load_options.get("quantize") or default_quantize(location.path, location.options)
    except InbedderError:
        return None  # an adapter whose base cannot be found: the load reports it
    if str(wanted).lower() != "auto" or parse_choice(DType, dtype, "dtype") is not DType.FLOAT32:
        return ""
    found = remembered("quantize_auto", str(location.path))
    return None if found is None else str(found.get("quantize"))


def _device_text(device: Any) -> str | None:
    return None if device is None else str(device)
