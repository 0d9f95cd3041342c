"""``encode(..., cache_dir=DIR)``: keep one call's embeddings (and answers) in a directory, reuse them later.

The directory holds ``embeddings.safetensors``, ``generations.json`` (answer families) and ``manifest.json``
with a key over the model's weights fingerprint, its settings, the call's options and every input. Files are
written to a temporary name and renamed, so an interrupted write never leaves a half file. A directory made
for other inputs, another model or other settings is refused, never silently reused.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

FORMAT_VERSION = 1


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class DirCache:
    """One cached ``encode`` result in a directory, keyed by ``key``."""

    def __init__(self, path: str | os.PathLike[str], key: str, description: dict[str, Any]):
        self.path = Path(path)
        self.key = key
        self.description = description

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    def load(self) -> tuple[torch.Tensor, list[str] | None] | None:
        """The cached vectors and answers, ``None`` when the directory holds no cache yet."""
        if not self.manifest.exists():
            return None
        try:
            saved = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cache_dir {str(self.path)!r}: unreadable manifest.json ({exc})") from exc
        if saved.get("key") != self.key:
            differs = [k for k in ("model", "weights", "settings", "inputs")
                       if saved.get("about", {}).get(k) != self.description.get(k)]
            raise InputError(
                f"cache_dir {str(self.path)!r} holds embeddings of other {', '.join(differs) or 'inputs'} "
                "than this call; refusing to reuse it. Use another cache_dir, or delete this one to recompute."
            )
        from safetensors.torch import load_file

        vectors = load_file(str(self.path / "embeddings.safetensors"))["embeddings"]
        answers = None
        if saved.get("has_generations"):
            answers = json.loads((self.path / "generations.json").read_text(encoding="utf-8"))
        return vectors, answers

    def save(self, vectors: torch.Tensor, answers: list[str] | None) -> None:
        from safetensors.torch import save_file

        self.path.mkdir(parents=True, exist_ok=True)
        if self.manifest.exists():  # a different call's cache: load() refuses it with the reason
            self.load()
        _atomic_write(self.path / "embeddings.safetensors",
                      lambda tmp: save_file({"embeddings": vectors.detach().cpu().contiguous()}, tmp))
        if answers is not None:
            _atomic_write(self.path / "generations.json",
                          lambda tmp: Path(tmp).write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8"))
        manifest = {"format_version": FORMAT_VERSION, "key": self.key, "about": self.description,
                    "rows": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
                    "has_generations": answers is not None}
        _atomic_write(self.manifest, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2), encoding="utf-8"))
