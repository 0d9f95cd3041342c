"""Serve a request from the embedding cache without loading the model; load it only for what is missing.

After a run that loaded a model with a cache, the cache records the run's *load request* (its
:func:`~inbedder.cache.keys.request_key`: the model's files, the load arguments and the encode options) → the
model key its rows are stored under (:func:`remember`). A later identical request whose every row is cached is read
here and finished as ``encode`` finishes its vectors (:mod:`inbedder.finishing`): no model is loaded and torch is
not imported. Anything else loads the model (recording the request) and calls ``encode`` with the cache, which
computes only the missing rows.

>>> vectors = encode_cached("minilm", texts, "Represent the question:", cache="my.sqlite")   # doctest: +SKIP
>>> # the same call again: read from the cache, the model is not loaded
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .cache.keys import request_files, request_key
from .cache.packed import PackedRows
from .cache.store import EmbeddingCache, open_cache
from .encode_settings import check_batch_size
from .finishing import finish_rows
from .inputs import Pair, to_pairs
from .multi_instruction import under_each

if TYPE_CHECKING:
    import numpy as np

Found = list[tuple[bytes, str | None]]  # every row's (float32 vector bytes, generated answer or None), in order


def encode_cached(model: str | os.PathLike[str], texts: Sequence[str], instruction: str | list[str | None] | None
                  = None, *, cache: Any = None, dtype: Any = "float32", device: Any = None, family: str | None = None,
                  batch_size: int = 32, normalize: bool = False, show_progress_bar: bool | None = None,
                  load_options: dict[str, Any] | None = None, packed: bool = False,
                  **options: Any) -> np.ndarray | PackedRows:
    """``load(model, ...).encode(texts, instruction, ...)`` as an ``(n, d)`` float32 array, loading the model
    only when some row is missing from ``cache`` (True, a path or an :class:`~inbedder.cache.EmbeddingCache`).
    ``instructions=[q1, ..., qk]`` gives ``(k, n, d)`` (with ``packed=True``: the k × n rows, question by question).

    Without a cache this is exactly ``load`` then ``encode``. With one, a call whose rows are all cached and
    whose model files are unchanged since a run that loaded the model reads them and returns; torch is not
    imported. With ``packed=True`` such a call returns them as :class:`~inbedder.cache.packed.PackedRows` (when not
    normalizing), and numpy is not imported either.
    """
    check_batch_size(batch_size)
    store = open_cache(cache)
    texts = list(texts)
    dimensions, questions = options.pop("dimensions", None), options.pop("instructions", None)
    found = served_from_cache(store, model, texts, instruction, dtype=dtype, device=device, family=family,
                              load_options=load_options, normalize=normalize, packed=packed, dimensions=dimensions,
                              instructions=questions, **options)
    if found is not None:
        return found
    from .loading import quiet_transformers

    with quiet_transformers():
        embedder = load_remembered(store, model, dtype=dtype, device=device, family=family,
                                   load_options=load_options, encode_options=options)
        vectors = embedder.encode(texts, instruction=instruction, batch_size=batch_size, normalize=normalize,
                                  show_progress_bar=show_progress_bar, cache=store, dimensions=dimensions,
                                  instructions=questions, **options)
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors.reshape(-1, vectors.shape[-1]) if questions is not None and packed else vectors


def served_from_cache(store: EmbeddingCache | None, model: str | os.PathLike[str], texts: list[str],
                      instruction: str | list[str | None] | None, *, dtype: Any = "float32", device: Any = None,
                      family: str | None = None, load_options: dict[str, Any] | None = None,
                      normalize: bool = False, packed: bool = False, dimensions: int | None = None,
                      instructions: list[str] | None = None, **options: Any) -> np.ndarray | PackedRows | None:
    """The vectors as :func:`encode_cached` returns them when ``store`` holds every row for this request (else
    None). Loads no model and imports no torch.

    ``dimensions`` cuts the cached (whole) vectors; with ``instructions`` the rows are every text under each, as
    the cache keeps them (question, text) by (question, text)."""
    asked: str | list[str | None] | list[str] | None = instruction
    if instructions is not None:
        if instruction is not None or not isinstance(instructions, list):
            return None  # encode names what is wrong
        texts, asked = under_each(texts, instructions)
    found = _served(store, model, texts, asked, dtype=dtype, device=device, family=family,
                    load_options=load_options, encode_options=options)
    if found is None or not _fits(dimensions, found):
        return None
    vectors = _vectors(found, normalize, packed, dimensions)
    if instructions is None or isinstance(vectors, PackedRows) or packed:  # packed: the k × n rows as they come
        return vectors
    return vectors.reshape(len(instructions), len(texts) // len(instructions), -1)


def lookup(cache: Any, model: str | os.PathLike[str], texts: Sequence[str],
           instruction: str | list[str | None] | None = None, *, dtype: Any = "float32", device: Any = None,
           load_options: dict[str, Any] | None = None, normalize: bool = False, answers: bool = False
           ) -> tuple[np.ndarray, list[str] | None] | None:
    """The vectors of every row (as :func:`encode_cached` returns them) when ``cache`` holds them all for a run
    that loaded ``model`` this way with unchanged files (see :func:`load_remembered`); else None. Loads no model.

    With ``answers``, the generated answer of every row too (None for a family that generates none), as
    ``encode(..., return_generations=True)`` gives them; a row cached without its answer is a miss."""
    found = _served(open_cache(cache), model, list(texts), instruction, answers, dtype=dtype, device=device,
                    load_options=load_options, encode_options={})
    if found is None:
        return None
    generated = [answer for _, answer in found]
    return _vectors(found, normalize, packed=False), (  # type: ignore[return-value]
        None if not answers or None in generated else generated)


def load_remembered(cache: Any, model: str | os.PathLike[str], *, dtype: Any = "float32", device: Any = None,
                    family: str | None = None, load_options: dict[str, Any] | None = None,
                    encode_options: dict[str, Any] | None = None) -> Any:
    """``load(model, ...)``; with a ``cache``, the load is recorded in it so that a later :func:`lookup` or
    :func:`encode_cached` of rows this model encodes with ``encode_options`` needs no load."""
    from .loading import load

    store = open_cache(cache)
    request = {"dtype": dtype, "device": device, "family": family, "load_options": load_options,
               "encode_options": encode_options or {}}
    before = request_files(model, **request) if store is not None else None
    embedder = load(model, family=family, device=device, dtype=dtype, **(load_options or {}))
    if store is not None and before is not None and before == request_files(model, **request):  # no file changed
        remember(store, request_key(model, **request), embedder, encode_options or {})  # keyed by what it chose
    return embedder


def remember(store: EmbeddingCache, key: str | None, embedder: Any, encode_options: dict[str, Any]) -> None:
    """Record ``key`` → the model key of the loaded ``embedder`` (as the engine computes it)."""
    reencoder = getattr(embedder, "default_reencoder", None)
    if key is None or "reencoder" in encode_options or reencoder not in (None, False):
        return  # vectors of another model (answers re-embedded) are keyed by that model: not served from here
    model_key, _ = embedder.model_key(encode_options)
    store.remember_request(key, model_key, {"name": embedder.name, "source": embedder.source,
                                            "answers": bool(embedder.encoder.answers)})


def _served(store: EmbeddingCache | None, model: str | os.PathLike[str], texts: list[str],
            instruction: str | list[str | None] | list[str] | None, answers: bool = False, **request: Any
            ) -> Found | None:
    """Every row from ``store`` for ``request_key(model, **request)`` (see :func:`_all_rows`), or None when they
    cannot all be served."""
    if (store is None or not texts or not _plain(texts, instruction) or "reencoder" in request["encode_options"]
            or "dimensions" in request["encode_options"]):
        return None
    return _all_rows(store, request_key(model, **request), to_pairs(texts, instruction)[0], answers)


def _all_rows(store: EmbeddingCache, key: str | None, pairs: Sequence[Pair], answers: bool = False) -> Found | None:
    """Every row's (vector bytes, answer) in order for the model the request ``key`` loaded (see
    :func:`rows_of_model`), or None when the request is unknown; with ``answers``, also when the model generates
    answers and some row was cached without its answer."""
    known = store.request(key) if key is not None else None
    if known is None:
        return None
    model_key, about = known
    # a model recorded as generating none has no answer to miss; an answer family's row cached by a one-pass
    # readout (or any row of a request recorded before 'answers' was) lacks its answer: a miss
    return rows_of_model(store, model_key, pairs, answers=answers and about.get("answers") is not False)


def rows_of_model(store: EmbeddingCache, model_key: str, pairs: Sequence[Pair], *, answers: bool = False,
                  dim: int | None = None) -> Found | None:
    """Every row's (vector bytes, answer) in order under ``model_key``, or None when any row is missing; with
    ``answers``, also when one was cached without its answer; with ``dim``, also when one is not ``dim`` float32s.

    A full hit is recorded as a run (``inbedder cache stats`` shows it); a miss records nothing, since the
    encode that follows records its own run.
    """
    unique = list(dict.fromkeys(pairs))
    found = store.get_many_raw(model_key, unique)
    if len(found) < len(unique):
        return None
    if answers and any(found[p][1] is None for p in unique):
        return None
    if dim is not None and any(len(found[p][0]) != 4 * dim for p in unique):
        return None
    store.record_run(model_key, len(unique), 0)
    return [found[p] for p in pairs]


def _vectors(found: Found, normalize: bool, packed: bool, dimensions: int | None = None) -> np.ndarray | PackedRows:
    """Cached rows as :func:`encode_cached` returns them; ``dimensions`` keeps the first ones, renormalized."""
    rows = PackedRows([vector for vector, _ in found], len(found[0][0]) // 4)
    if packed and not normalize and dimensions is None:
        return rows.check_finite()
    return finish_rows(rows.to_numpy(), normalize, dimensions)


def _fits(dimensions: Any, found: Found) -> bool:
    """Whether ``dimensions`` (None or an int) can cut the cached rows; if not, the model's encode names it."""
    return dimensions is None or (isinstance(dimensions, int) and not isinstance(dimensions, bool)
                                  and 1 <= dimensions <= len(found[0][0]) // 4)


def _plain(texts: list[Any], instruction: Any) -> bool:
    """Whether the input is a list of strings with one instruction string (or None), or one per text."""
    if not all(isinstance(t, str) for t in texts):
        return False
    return instruction is None or isinstance(instruction, str) or (
        isinstance(instruction, list) and all(i is None or isinstance(i, str) for i in instruction))
