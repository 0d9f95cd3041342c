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
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from .model_parts import models_dir

MARKER = "inbedder-converted.json"  # written last: a directory without it is never read
SWITCH = "INBEDDER_GGUF_CACHE"
# What a first load costs, for the notice printed before it (measured on Qwen2.5-Coder-0.5B Q4_K_M, 469 MB, 2 CPU
# cores: a 2.4 GB float32 copy, ~100 s): a 4-bit GGUF read as float32 is about this many times its size, and
# reading, dequantizing and saving it takes about this many seconds per GB of GGUF.
FLOAT32_GROWTH = 4.9
SECONDS_PER_GB = 210
_announced: set[str] = set()


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


def first_load_cost(size: int) -> tuple[float, int]:
    """(GB the float32 copy of a GGUF of ``size`` bytes takes, seconds a first load takes on 2 cores), roughly."""
    return size * FLOAT32_GROWTH / 1e9, max(10, round(size / 1e9 * SECONDS_PER_GB / 10) * 10)


def converted_copies(gguf: Path) -> list[Path]:
    """The complete converted copies of files named like ``gguf`` (this one or an earlier version of it)."""
    folder = models_dir() / "converted"
    if not folder.is_dir():
        return []
    return sorted(d for d in folder.glob(f"{gguf.stem}-*") if (d / MARKER).is_file())


def find_converted(gguf: Path) -> Path | None:
    """The complete converted copy of ``gguf`` made from this very file, or None (then, once per file and process,
    a line on stderr says what the first load writes where and about how long it takes)."""
    found = existing_copy(gguf)
    if found is None and enabled() and str(gguf) not in _announced:
        _announced.add(str(gguf))
        grow, seconds = first_load_cost(gguf.stat().st_size)
        sys.stderr.write(f"inbedder: first load of {gguf.name}: reading the GGUF takes ~{seconds} s on 2 CPU cores; "
                         f"a float32 load keeps a ~{grow:.1f} GB float32 copy in {converted_dir(gguf).parent} so that "
                         f"later loads take seconds ({SWITCH}=off: no copy)\n")
        sys.stderr.flush()
    return found


def existing_copy(gguf: Path) -> Path | None:
    """The complete converted copy of ``gguf`` made from this very file, or None; says nothing."""
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
            if existing_copy(gguf) is not None:  # another process converted it while this one waited
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
