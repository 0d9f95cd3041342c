"""A GGUF file converted once into a transformers directory (safetensors) in the user's cache, then reused.

Reading a ``.gguf`` file with transformers parses all of its metadata (the whole vocabulary and merges) and
dequantizes every tensor, twice over for the tokenizer and the model: about a minute for Qwen2.5-Coder-0.5B on
2 cores. The first float32 load of a file saves what it dequantized (float32 weights, the tokenizer, the chat
template) to ``<models dir>/converted/<file stem>-<key>/``; later loads of the same file read that directory
instead, with the same weights and tokenizer. The key covers the file's resolved path, size and modification
time, so a replaced file is converted anew. The copy is float32 (several times the GGUF's size on disk:
Qwen2.5-Coder-0.5B takes 2 GB); ``INBEDDER_GGUF_CACHE=off`` turns this off.

>>> find_converted(Path("model.gguf"))  # doctest: +SKIP
PosixPath('/home/me/.cache/inbedder/models/converted/model-3f2a9c1e0b7d4e65')
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

from .model_parts import models_dir

MARKER = "inbedder-converted.json"  # written last: a directory without it is never read
SWITCH = "INBEDDER_GGUF_CACHE"


def enabled() -> bool:
    """Whether converted copies are read and written (``INBEDDER_GGUF_CACHE`` not set to off/0/false/no)."""
    return os.environ.get(SWITCH, "").strip().lower() not in ("off", "0", "false", "no")


def _record(gguf: Path) -> dict[str, object]:
    stat = gguf.stat()
    return {"source": str(gguf.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def converted_dir(gguf: Path) -> Path:
    """Where the converted copy of ``gguf`` lives (whether or not it exists yet)."""
    key = hashlib.sha256(json.dumps(_record(gguf), sort_keys=True).encode()).hexdigest()[:16]
    return models_dir() / "converted" / f"{gguf.stem}-{key}"


def find_converted(gguf: Path) -> Path | None:
    """The complete converted copy of ``gguf`` made from this very file, or None."""
    if not enabled():
        return None
    target = converted_dir(gguf)
    try:
        if json.loads((target / MARKER).read_text(encoding="utf-8")) == _record(gguf):
            return target
    except (OSError, ValueError):
        pass
    return None


def save_converted(gguf: Path, save: Callable[[Path], object]) -> Path | None:
    """Let ``save(folder)`` write the copy of ``gguf`` into a temporary folder, then move it into place.

    Never fails a load: when the copy cannot be written (no room, no write access) it warns and returns None."""
    if not enabled():
        return None
    target = converted_dir(gguf)
    temp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{target}.lock"):
            if find_converted(gguf) is not None:  # another process converted it while this one waited
                return target
            shutil.rmtree(target, ignore_errors=True)  # an unfinished copy (no marker) from an earlier run
            save(temp)
            (temp / MARKER).write_text(json.dumps(_record(gguf)), encoding="utf-8")
            os.replace(temp, target)
        return target
    except OSError as exc:
        warnings.warn(f"could not keep a converted copy of {gguf} in {target.parent} ({exc}); the next load reads "
                      f"the GGUF file again. Set XDG_CACHE_HOME to a writable folder with room, or {SWITCH}=off",
                      stacklevel=3)
        return None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
