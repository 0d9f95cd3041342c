"""Instruction-aware search: embed documents under one instruction, queries under another, rank by cosine.

An index directory holds ``vectors.safetensors`` (unit-length float32 rows), ``rows.jsonl`` (id, text and
per-row instruction) and ``index.json`` (format version, the model's name, source, family settings and weights
fingerprint, the document instruction). Search is exact: numpy by default, FAISS (``IndexFlatIP``,
``pip install "inbedder[faiss]"``) when asked for or, with ``backend="auto"``, when installed and the search is
large (``AUTO_FAISS_WORK`` query × document products or more: a few queries are not worth importing it). An index
refuses queries from a model whose weights or settings differ from the one that built it.

A query's vector is looked up first in the embedding cache (``cache=``) under the key of the model that built
the index (its weights fingerprint and settings, from ``index.json``): a query embedded before needs no model,
so ``query()`` works without one and ``inbedder search query`` loads nothing, not even torch. Only a query that
is not cached needs the model.

>>> index = SearchIndex.build(docs, model, instruction="Represent the document for retrieval:")  # doctest: +SKIP
>>> index.save("my-index")                                                                       # doctest: +SKIP
>>> index = SearchIndex.load("my-index", model=model)                                            # doctest: +SKIP
>>> index.query("cheap flights", instruction="Represent the question for retrieving documents:", k=3)  # doctest: +SKIP
[Hit(rank=1, score=0.71, id=12, text='...', row=12), ...]
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, InputTypeError, ModelLoadError, did_you_mean, require
from ..io.table import read_table
from ..io.write import write_rows

FORMAT = "inbedder-search-index"
FORMAT_VERSION = 1
CONFIG, VECTORS, ROWS = "index.json", "vectors.safetensors", "rows.jsonl"
ANSWER_FAMILIES = ("causal", "masked", "seq2seq")  # families whose vectors may come from a reencoder
AUTO_FAISS_WORK = 10**7  # backend="auto" imports FAISS from this many query × document products on
QUERY_CHUNK = 256  # queries scored at once by numpy (bounds memory to chunk × corpus floats)


class Backend(str, Enum):
    AUTO = "auto"
    NUMPY = "numpy"
    FAISS = "faiss"


class IndexMismatchError(InputError):
    """Queries come from a model (weights or settings) other than the one that built the index."""


@dataclass(frozen=True)
class Hit:
    """One result: rank (1 = best), cosine score, the document's id and text, and its row in the index."""

    rank: int
    score: float
    id: Any
    text: str
    row: int

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "id": self.id, "text": self.text}


def model_identity(model: Any) -> dict[str, Any]:
    """What the index records about a model: name, source, family, dim, settings, weights fingerprint."""
    from ..fingerprint import weights_fingerprint

    encoder, second = model.encoder, getattr(model, "default_reencoder", None)
    return {"name": str(getattr(model, "name", "")), "source": str(getattr(model, "source", "")),
            "family": str(getattr(model, "family", "")), "dim": int(model.dim),
            "settings": json.loads(json.dumps(encoder.settings() or {}, default=str)),
            "weights_fingerprint": weights_fingerprint(encoder),
            # the model that embeds an answer family's answers (its vectors are not cached under this model's key)
            "reencoder": None if second is None else str(getattr(second, "name", type(second).__name__))}


def parse_backend(backend: str | Backend, work: int | None = None) -> Backend:
    """The backend to search with; ``auto`` is FAISS when it is installed (and, given ``work``, the query ×
    document products reach :data:`AUTO_FAISS_WORK`), else numpy."""
    try:
        chosen = Backend(backend)
    except ValueError:
        valid = [b.value for b in Backend]
        raise InputError(f"backend={backend!r} is not valid; choose one of {valid}."
                         f"{did_you_mean(str(backend), valid)}") from None
    if chosen is Backend.FAISS:
        require("faiss", "faiss")
    if chosen is Backend.AUTO:
        if work is not None and work < AUTO_FAISS_WORK:
            return Backend.NUMPY
        try:
            import faiss  # noqa: F401
        except ImportError:
            return Backend.NUMPY
        return Backend.FAISS
    return chosen


class SearchIndex:
    """Unit-length document vectors with their ids and texts, and the identity of the model that made them."""

    def __init__(self, vectors: np.ndarray, ids: Sequence[Any], texts: Sequence[str], config: dict[str, Any],
                 *, model: Any = None, instructions: Sequence[str | None] | None = None,
                 backend: str | Backend = "auto"):
        self.vectors = _unit(np.asarray(vectors, dtype=np.float32))
        self.ids, self.texts = list(ids), list(texts)
        self.instructions = list(instructions) if instructions is not None else None
        if not (len(self.vectors) == len(self.ids) == len(self.texts)):
            raise InputError(f"index has {len(self.vectors)} vectors, {len(self.ids)} ids and {len(self.texts)} "
                             "texts; they must match")
        self.config = config
        self.backend = Backend.AUTO if backend in ("auto", Backend.AUTO) else parse_backend(backend)  # auto: at search
        self._faiss: Any = None
        self.model = None
        if model is not None:
            self.attach(model)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"SearchIndex({len(self)} documents, model={self.config['model']['name']!r}, {self.backend.value})"

    # -- building, saving, loading ------------------------------------------------------------------------
    @classmethod
    def build(cls, texts: Sequence[str], model: Any, instruction: str | Sequence[str | None] | None = None, *,
              ids: Sequence[Any] | None = None, batch_size: int = 32, cache: Any = None,
              show_progress_bar: bool | None = None, backend: str | Backend = "auto") -> SearchIndex:
        """Embed ``texts`` under ``instruction`` (one for all, or one per text) and index them.

        ``ids`` default to the row numbers 0..n-1; they must be distinct.
        """
        if isinstance(texts, str):
            raise InputTypeError("texts must be a list of str; got a single str (wrap it in a list)")
        texts = list(texts)
        if not texts:
            raise InputError("cannot build an index from 0 texts")
        ids = list(range(len(texts))) if ids is None else list(ids)
        if len(ids) != len(texts):
            raise InputError(f"got {len(ids)} ids for {len(texts)} texts; give one id per text")
        _check_distinct(ids)
        kwargs: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": show_progress_bar,
                                  "normalize": True}
        if cache is not None:
            kwargs["cache"] = cache
        vectors = model.encode(texts, instruction=instruction, **kwargs)
        per_row = instruction is not None and not isinstance(instruction, str)
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model_identity(model),
                  "document_instruction": None if per_row else instruction, "per_row_instructions": per_row,
                  "count": len(texts), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        index = cls(vectors, ids, texts, config, instructions=list(instruction) if per_row else None,  # type: ignore
                    backend=backend)
        index.model = model
        return index

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the index directory (written aside, then moved in place). An existing index needs ``overwrite``."""
        from safetensors.numpy import save_file

        target = Path(path)
        if target.exists():
            if not target.is_dir() or (any(target.iterdir()) and not (target / CONFIG).exists()):
                raise InputError(f"{str(target)!r} exists and is not an index directory; choose another path")
            if (target / CONFIG).exists() and not overwrite:
                raise InputError(f"{str(target)!r} already holds an index; pass overwrite=True (--overwrite) "
                                 "to replace it")
        if not target.parent.is_dir():
            raise InputError(f"cannot write index {str(target)!r}: the folder {str(target.parent)!r} does not exist")
        work = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        save_file({"vectors": np.ascontiguousarray(self.vectors)}, str(work / VECTORS))
        per_row = self.instructions
        write_rows(({"id": id_, "text": text, **({"instruction": per_row[i]} if per_row is not None else {})}
                    for i, (id_, text) in enumerate(zip(self.ids, self.texts, strict=True))), work / ROWS, "jsonl")
        (work / CONFIG).write_text(json.dumps(self.config, indent=2, ensure_ascii=False), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: Any = None, backend: str | Backend = "auto") -> SearchIndex:
        """Read an index directory. ``model`` (optional here) is checked against the one that built it."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        root = Path(path)
        if not (root / CONFIG).is_file():
            what = "does not exist" if not root.exists() else f"has no {CONFIG}"
            raise ModelLoadError(f"{str(root)!r} is not a search index: it {what} "
                                 "(make one with `inbedder search index` or SearchIndex.save)")
        try:
            config = json.loads((root / CONFIG).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{str(root / CONFIG)!r} is not valid JSON: {exc}") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelLoadError(f"{str(root / CONFIG)!r} is not an inbedder search index config")
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(f"index {str(root)!r} has format version {config.get('format_version')!r}; this "
                                 f"inbedder reads version {FORMAT_VERSION}: rebuild the index")
        for name in (VECTORS, ROWS):
            if not (root / name).is_file():
                raise ModelLoadError(f"index {str(root)!r} is incomplete: {name} is missing")
        try:
            vectors = load_file(str(root / VECTORS))["vectors"]
        except (SafetensorError, KeyError, OSError) as exc:
            raise ModelLoadError(f"cannot read {str(root / VECTORS)!r}: {exc}") from None
        try:
            rows = read_table(root / ROWS)
            ids, texts = rows.values("id"), rows.values("text")
        except InputError as exc:
            raise ModelLoadError(f"index {str(root)!r} is damaged: {exc}") from None
        instructions = rows.values("instruction", optional=True) if "instruction" in rows.columns else [None] * len(ids)
        if len(ids) != len(vectors) or len(ids) != config.get("count"):
            raise ModelLoadError(f"index {str(root)!r} is inconsistent: {len(vectors)} vectors, {len(ids)} rows, "
                                 f"count {config.get('count')}")
        return cls(vectors, ids, texts, config, model=model, backend=backend,
                   instructions=instructions if config.get("per_row_instructions") else None)

    # -- querying -------------------------------------------------------------------------------------------
    def attach(self, model: Any) -> None:
        """Use ``model`` for queries after checking that it is the model (weights, settings) that built the index."""
        self.check_model(model)
        self.model = model

    def check_model(self, model: Any) -> None:
        """Raise :class:`IndexMismatchError` when ``model`` is not the one that built the index."""
        built, given = self.config["model"], model_identity(model)
        problems = []
        if given["weights_fingerprint"] != built["weights_fingerprint"]:
            problems.append("its weights differ (fingerprint "
                            f"{given['weights_fingerprint'][:12]} vs {built['weights_fingerprint'][:12]})")
        if given["dim"] != built["dim"]:
            problems.append(f"its vectors have {given['dim']} dimensions, the index's {built['dim']}")
        keys = sorted(set(given["settings"]) | set(built["settings"]))
        changed = [f"{k}={given['settings'].get(k)!r} (index: {built['settings'].get(k)!r})" for k in keys
                   if given["settings"].get(k) != built["settings"].get(k)]
        if changed:
            problems.append("its settings differ: " + ", ".join(changed))
        if problems:
            raise IndexMismatchError(f"this index was built with model {built['name']!r} ({built['family']}); the "
                                     f"query model {given['name']!r} does not match: {'; '.join(problems)}. "
                                     "Query with the same model and settings, or rebuild the index")

    def query(self, queries: str | Sequence[str], instruction: str | Sequence[str | None] | None = None, *,
              k: int = 10, model: Any = None, batch_size: int = 32, cache: Any = None) -> Any:
        """Embed ``queries`` under ``instruction`` and return the top ``k`` :class:`Hit` per query.

        A str gives a list of hits; a list of str gives one list per query. ``model`` defaults to the
        attached one (from :meth:`build` or :meth:`load`) and is checked against the index. With a ``cache``
        (True, a path or an :class:`~inbedder.cache.EmbeddingCache`), queries whose vectors it holds for the
        index's model are not embedded again; when all are there no model is needed (:meth:`cached_vectors`).
        """
        check_k(k)
        if model is not None:
            self.attach(model)
        single = isinstance(queries, str)
        batch: list[Any] = [queries] if single else list(queries)
        if not batch:
            return []
        vectors = self.cached_vectors(batch, instruction, cache)
        if vectors is None:
            if self.model is None:
                raise InputError("no model to embed the queries: pass model= to query() or SearchIndex.load()")
            # not normalized here: top_k scales every query row as it scales cached rows, so scores are the same
            kwargs: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": False}
            if cache is not None:
                kwargs["cache"] = cache
            vectors = self.model.encode(batch, instruction=instruction, **kwargs)
        hits = self.search_vectors(vectors, k)
        return hits[0] if single else hits

    def model_key(self) -> str | None:
        """The embedding cache's key for the vectors of the model that built the index (as
        ``Embedder.model_key({})`` gives it: weights fingerprint and settings), or None when ``index.json`` lacks
        them or the vectors came from a reencoder (keyed by that model). Computed from the config: nothing is
        loaded."""
        from ..fingerprint import settings_digest

        built = self.config.get("model") or {}
        fingerprint, settings = built.get("weights_fingerprint"), built.get("settings")
        if not fingerprint or not isinstance(settings, dict) or built.get("reencoder") is not None:
            return None
        if "reencoder" not in built and built.get("family") in ANSWER_FAMILIES:
            return None  # an index written before "reencoder" was recorded: its vectors may be a reencoder's
        return settings_digest({"weights": fingerprint, "settings": settings, "options": {}})

    def cached_vectors(self, queries: Sequence[str], instruction: str | Sequence[str | None] | None = None,
                       cache: Any = None) -> np.ndarray | None:
        """The ``(n, d)`` vectors of ``queries`` from ``cache`` when it holds every one for the index's model
        (:meth:`model_key`), else None. Loads no model and imports no torch; a full hit is recorded as a run."""
        from ..cache.store import open_cache
        from ..inputs import to_pairs
        from ..load_free import rows_of_model

        key = self.model_key()
        if cache is None or cache is False or key is None or not queries:
            return None
        try:
            pairs, _ = to_pairs(list(queries), instruction)
        except InputError:
            return None  # encode() reports it
        if not all(isinstance(text, str) for _, text in pairs):
            return None
        store = open_cache(cache)
        found = rows_of_model(store, key, pairs, dim=int(self.vectors.shape[1])) if store is not None else None
        if found is None:
            return None
        return np.stack([np.frombuffer(vector, dtype="<f4") for vector, _ in found]).astype(np.float32)

    def search_vectors(self, vectors: Any, k: int = 10) -> list[list[Hit]]:
        """Top-``k`` hits for query vectors already embedded by the index's model (not checked)."""
        scores, rows = self.top_k(vectors, k)
        return [[Hit(r + 1, float(s), self.ids[j], self.texts[j], int(j))
                 for r, (s, j) in enumerate(zip(srow, jrow, strict=True)) if j >= 0]
                for srow, jrow in zip(scores, rows, strict=True)]

    def top_k(self, vectors: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``, each ``(n_queries, min(k, len))``, best first; exact inner product on unit rows."""
        check_k(k)
        q = _unit(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        if q.shape[1] != self.vectors.shape[1]:
            raise IndexMismatchError(f"query vectors have {q.shape[1]} dimensions; the index has "
                                     f"{self.vectors.shape[1]}")
        k = min(k, len(self))
        if parse_backend(self.backend, len(q) * len(self)) is Backend.FAISS:
            return self._faiss_index().search(np.ascontiguousarray(q), k)  # type: ignore[no-any-return]
        scores, rows = [], []
        for start in range(0, len(q), QUERY_CHUNK):
            sims = q[start:start + QUERY_CHUNK] @ self.vectors.T
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else \
                np.tile(np.arange(sims.shape[1]), (len(sims), 1))
            top = np.take_along_axis(sims, part, axis=1)
            order = np.lexsort((part, -top), axis=1)  # best score first, ties by row
            rows.append(np.take_along_axis(part, order, axis=1))
            scores.append(np.take_along_axis(top, order, axis=1))
        return np.concatenate(scores), np.concatenate(rows)

    def _faiss_index(self) -> Any:
        if self._faiss is None:
            require("faiss", "faiss")
            import faiss

            self._faiss = faiss.IndexFlatIP(self.vectors.shape[1])
            self._faiss.add(np.ascontiguousarray(self.vectors))
        return self._faiss


def hits_table(queries: Sequence[str], hits: Sequence[Sequence[Hit]], width: int = 90) -> str:
    """A plain-text table per query: rank, score, id and the start of the text."""
    lines = []
    for i, (query, found) in enumerate(zip(queries, hits, strict=True)):
        lines.append(f"query {i}: {query}")
        for h in found:
            lines.append(f"  {h.rank:>3}  {h.score:.4f}  {str(h.id):<12.12}  {' '.join(h.text.split())[:width]}")
    return "\n".join(lines)


def check_k(k: Any) -> None:
    """Refuse a ``k`` that is not a positive int (before any work is done)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive int; got {k!r}")


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; rows already of length 1 (to float32 precision) are kept bit for bit, so that
    saving and loading an index, or indexing normalized vectors, never moves the last bits."""
    if x.ndim != 2:
        raise InputError(f"expected vectors as an (n, d) array; got shape {x.shape}")
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    scale = np.where((norms == 0) | (np.abs(norms - 1) <= 1e-6), 1, norms)
    return (x / scale).astype(np.float32)


def _check_distinct(ids: list[Any]) -> None:
    seen: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        try:
            key = json.dumps(id_, sort_keys=True)
        except TypeError:
            raise InputTypeError(f"id at row {i} is not JSON-serialisable: {type(id_).__name__}") from None
        if key in seen:
            raise InputError(f"ids must be distinct: rows {seen[key]} and {i} both have id {id_!r}")
        seen[key] = i
