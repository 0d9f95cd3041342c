"""``encode(..., reencoder=...)``: an answer family's generated answers embedded by another model (the reference's
``re_encode``), instead of its own hidden states.

The answer family first generates an answer per row (through the engine, with the call's caches), then the
*re-encoder* (an :class:`~inbedder.engine.Embedder`, a model name loaded once per model, or anything with
``encode(list_of_str)``, e.g. a sentence-transformers model) embeds those answers as plain texts.

>>> model = load("smollm2-135m-instruct", reencoder="minilm")                        # doctest: +SKIP
>>> model.encode(["I love my cat!"], instruction="Which animal?").shape             # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .batching import Rows
from .errors import InputError

if TYPE_CHECKING:
    from .encode_settings import EncodeSettings


def resolve(model: Any, reencoder: Any) -> Any:
    """The re-encoder of ``model`` for this call (``reencoder``, else the model's default; a name is loaded once and
    kept in ``model.loaded_reencoders``), or None when the call embeds with the model itself (``False``).

    Refused when ``model`` generates no answers, or ``reencoder`` is neither a name nor has ``encode``."""
    reencoder = model.default_reencoder if reencoder is None else reencoder
    if reencoder is None or reencoder is False:  # False: this call embeds with the model itself
        return None
    if not model.encoder.answers:
        raise InputError(f"reencoder= embeds generated answers; this model is {model.family!r}, which has none")
    if isinstance(reencoder, (str, os.PathLike)):
        name = str(reencoder)
        if model.loader is None:
            raise InputError(f"reencoder={name!r} names a model, and this Embedder was not made by "
                             "inbedder.load (it has no loader); pass the loaded model instead")
        if name not in model.loaded_reencoders:
            model.loaded_reencoders[name] = model.loader(name, device=model.device)
        reencoder = model.loaded_reencoders[name]
    if not callable(getattr(reencoder, "encode", None)):
        raise InputError(f"reencoder must be a model name, an Embedder or have encode(texts); got {reencoder!r}")
    return reencoder


def embed_answers(model: Any, reencoder: Any, texts: Any, instruction: Any, single: bool, settings: EncodeSettings,
                  *, cache: Any, cache_dir: Any, options: dict[str, Any], embedder: bool) -> Rows:
    """The rows of ``model.encode(texts, instruction, ...)`` with ``reencoder``: each row's generated answer (as
    ``return_generations=True`` gives it, through ``cache`` and ``cache_dir``) and its vector by ``reencoder``.

    ``embedder``: the re-encoder is an :class:`~inbedder.engine.Embedder`, which takes the call's batching and
    cache; anything else gets ``encode(answers)``."""
    if settings.long.chunk:
        raise InputError("long_text='chunk' pools the model's own vectors; it cannot be used with reencoder=")
    if not settings.sentences:
        raise InputError(f"reencoder= gives sentence vectors only; got output={settings.kind.value!r}")
    batching = {"batch_size": settings.batch_size, "max_tokens_per_batch": settings.max_tokens_per_batch,
                "show_progress_bar": settings.show_progress, "cache": cache}
    _, answers = model.encode(texts, instruction, return_generations=True, cache_dir=cache_dir, reencoder=False,
                              **batching, **options)
    rows = [answers] if single else answers
    if embedder:
        vectors = reencoder.encode(rows, convert_to_tensor=True, **batching)
    else:  # e.g. a sentence-transformers model
        vectors = torch.as_tensor(np.asarray(reencoder.encode(rows)), dtype=torch.float32)
    return Rows(vectors, rows)
