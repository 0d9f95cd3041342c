"""The engine: the one place that batches.

It validates input, computes identical inputs once, sorts by length, runs the family one batch at a
time under ``torch.inference_mode``, shows progress, restores input order and converts the output.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .batching import Rows, keep_dimensions, run_batches, warn_truncated
from .cache.directory import DirCache
from .cache.store import EmbeddingCache, open_cache
from .choices import parse_device
from .encode_settings import EncodeSettings
from .encoders.base import BatchResult, Encoder, Output, Pair
from .errors import InputError
from .fingerprint import settings_digest, weights_fingerprint
from .finishing import check_finite
from .inputs import to_pairs
from .long_text import pool as pool_windows
from .long_text import split_long, split_options
from .multi_instruction import expand, run_questions, shares_input, split
from .reencoding import embed_answers, resolve
from .speed import check_device_for

if TYPE_CHECKING:
    from .encoders.causal.readouts import Readouts

log = logging.getLogger("inbedder")

CHARS_PER_TOKEN = 4  # for a token budget where the family cannot count tokens


class Embedder(nn.Module):
    """A loaded model. Use :func:`inbedder.load` to make one, then :meth:`encode`.

    >>> model = load("minilm")                                        # doctest: +SKIP
    >>> model.encode("A cat sat.", instruction="Represent the sentence:").shape   # doctest: +SKIP
    (384,)
    """

    takes_instructions = True  # encode(texts, instructions=[...]): every text under each (evaluation asks this)

    def __init__(self, encoder: Encoder, name: str = "", source: str = "",
                 loader: Callable[..., Embedder] | None = None):
        super().__init__()
        self.encoder = encoder
        self.name = name
        self.source = source
        self.loader = loader  # loads a reencoder given by name (inbedder.load passes itself)
        self.default_reencoder: Any = None  # encode(reencoder=None) uses it: embeds an answer family's answers
        self.loaded_reencoders: dict[str, Embedder] = {}  # reencoders loaded by name

    @property
    def family(self) -> str:
        return self.encoder.family

    @property
    def dim(self) -> int:
        """Length of the sentence vectors (the reencoder's, when one is set)."""
        reencoder = self.default_reencoder
        return reencoder.dim if isinstance(reencoder, Embedder) else self.encoder.dim

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def extra_repr(self) -> str:
        return f"name={self.name!r}, family={self.family!r}, dim={self.dim}"

    def encode(self, texts: Any, instruction: str | list[str | None] | None = None, *,
               instructions: list[str] | None = None, batch_size: int = 32,
               max_tokens_per_batch: int | None = None, normalize: bool = False, output: str = "sentence",
               convert_to_tensor: bool = False,
               device: str | torch.device | None = None, show_progress_bar: bool | None = None,
               return_generations: bool = False, cache: Any = None,
               cache_dir: str | os.PathLike[str] | None = None, reencoder: Any = None, long_text: str = "truncate",
               chunk_overlap: int | None = None, dimensions: int | None = None, **options: Any) -> Any:
        """Embed texts under an instruction.

        ``texts`` is a str (→ a 1-D vector), a list of str (→ an ``(n, d)`` float32 array) with one
        ``instruction`` or one per row, or INSTRUCTOR pairs ``[[instruction, text], ...]``.
        A batch holds at most ``batch_size`` rows and, with ``max_tokens_per_batch``, at most that many tokens
        counting padding (rows × its longest row; a single longer row goes alone).
        ``output="token"`` gives per-token text vectors (a list of ``(t_i, h)`` arrays);
        ``output="all"`` gives ``(sentence vectors, text token vectors, instruction token vectors)``.
        ``return_generations=True`` (answer families) gives ``(vectors, answers)``.
        ``cache=True`` (the default file), a path or an :class:`~inbedder.cache.EmbeddingCache` looks every
        row up in the persistent cache and computes only the missing ones.
        ``cache_dir`` keeps this call's vectors (and answers) in a directory and reuses them when the same
        call is made again; a directory made by a different call is refused.
        ``reencoder`` (an :class:`Embedder`, a model name, or anything with ``encode(list)``; default: the one
        given to :func:`~inbedder.load`) embeds an answer family's generated answers instead of its hidden states.
        ``long_text="chunk"`` embeds a text longer than the model's limit in overlapping windows (``chunk_overlap``
        tokens shared) pooled by their token counts, instead of cutting it (``"truncate"``; see
        :mod:`inbedder.long_text`). ``dimensions=k`` keeps the first ``k`` dimensions of each vector, scaled back
        to length 1 (Matryoshka models).
        ``instructions=[q1, ..., qk]`` embeds every text under each instruction: a ``(k, n, d)`` array (``(k, d)``
        for one text; per-row lists as k lists of n), as k calls would give it; the causal family computes each
        text's input once for all k (:mod:`inbedder.multi_instruction`), and there ``batch_size`` counts texts.
        """
        settings = EncodeSettings(self.dim, batch_size, max_tokens_per_batch, normalize, output, convert_to_tensor,
                                  show_progress_bar, return_generations, long_text, chunk_overlap, dimensions)
        layout: tuple[int, bool] | None = None  # with instructions=: k and whether one text was given
        if instructions is not None:
            texts, every, k, one = expand(texts, instruction, instructions)
            instruction, layout = list(every), (k, one)
        pairs, single = to_pairs(texts, instruction)
        self._prepare(settings, options, device)
        reencoding_model = self.reencoder_for(reencoder)
        if reencoding_model is not None:
            rows = embed_answers(self, reencoding_model, texts, instruction, single, settings, cache=cache,
                                 cache_dir=cache_dir, options=options, embedder=isinstance(reencoding_model, Embedder))
        else:
            rows = self._rows(pairs, settings, options, cache, cache_dir, questions=layout is not None)
        value = self._finish(rows, settings, single)
        return value if layout is None else split(value, *layout, settings.kind, settings.generations)

    def readouts(self, texts: Any, instruction: str | list[str | None] | None = None, *,
                 values: Sequence[str] | None = None, layers: Sequence[int] | None = None,
                 next_token_top_k: int = 0, answers: bool = False, batch_size: int = 32,
                 max_tokens_per_batch: int | None = None, device: str | torch.device | None = None,
                 show_progress_bar: bool | None = None, **options: Any) -> Readouts:
        """Every readout of an answer model (the causal family) for one set of (text, instruction) pairs: each of
        ``values`` (all five when None) at each of ``layers`` (0 .. last when None), each as
        ``encode(texts, instruction, output_value=value, layer=layer, **options)`` gives it (batched alike, so
        bit-identical); with ``next_token_top_k=k`` the k likeliest next tokens at the answer position (ids and
        log-probabilities); with ``answers=True`` the answers. One forward pass per batch reads the values that need
        no answer (``fst_gen``, ``avg_ppt``) and the top-k; one ``generate()`` per batch the others and the answers.

        >>> found = model.readouts(texts, "Which animal?", values=["fst_gen", "avg_gen"], layers=[6, -1],
        ...                        next_token_top_k=20, answers=True, max_new_tokens=3)     # doctest: +SKIP
        >>> found.vectors[("avg_gen", 6)].shape, found.top_k_ids.shape, found.answers[0]    # doctest: +SKIP
        ((8, 576), (8, 20), 'cat')
        """
        from .encoders.causal.readouts import collect

        family: Any = self.encoder
        if not hasattr(family, "plan_readouts"):
            raise InputError(f"readouts reads the hidden states of an answer model (the causal family); this model "
                             f"is {self.family!r}")
        settings = EncodeSettings(self.dim, batch_size, max_tokens_per_batch, False, "sentence", False,
                                  show_progress_bar, False, "truncate", None, None)
        pairs, single = to_pairs(texts, instruction)
        self._prepare(settings, options, device)
        sweep = family.plan_readouts(values, layers, next_token_top_k, answers, **options)
        keys, index, counts = self._plan(pairs, settings)
        self.encoder.eval()
        done = run_batches(counts, settings.batch_size, settings.max_tokens_per_batch, settings.show_progress,
                           lambda rows: family.readout_batch([keys[i] for i in rows], sweep))
        found = collect(done, index, single)
        warn_truncated(found.truncated, len(keys))
        for array in found.vectors.values():
            check_finite(np.atleast_2d(array))
        return found

    def reencoder_for(self, reencoder: Any) -> Any:
        """The model that embeds the answers (loaded once per name), or None; checks that answers exist
        (:func:`inbedder.reencoding.resolve`)."""
        return resolve(self, reencoder)

    def model_key(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """What identifies this model's vectors: weights fingerprint, family settings, call options (the family's
        and the long-text settings: ``long_text``, ``chunk_overlap``)."""
        family, long = split_options(options)
        about = {"weights": weights_fingerprint(self.encoder), "settings": self.encoder.settings(),
                 "options": {**family, **long.key()}}
        return settings_digest(about), about

    # -- internals ----------------------------------------------------------------------------------------

    def _prepare(self, settings: EncodeSettings, options: dict[str, Any], device: str | torch.device | None) -> None:
        """Check the family's options and that it can answer, and move the model to ``device``."""
        self.encoder.check_options(options)
        if settings.generations and not self.encoder.answers:
            raise InputError(f"return_generations=True needs an answer family; this model is {self.family!r}")
        if device is not None:
            check_device_for(self.encoder, parse_device(device))
            self.to(parse_device(device))

    def _rows(self, pairs: list[Pair], settings: EncodeSettings, options: dict[str, Any], cache: Any,
              cache_dir: str | os.PathLike[str] | None, questions: bool = False) -> Rows:
        """The model's rows for ``pairs``: from ``cache_dir`` when it holds this call, else computed (through the
        persistent ``cache`` when given) and kept in ``cache_dir``."""
        store = open_cache(cache)
        if (store is not None or cache_dir is not None) and not settings.sentences:
            raise InputError(f"cache and cache_dir keep sentence vectors only; got output={settings.kind.value!r}")
        directory = None
        if cache_dir is not None:
            directory = self._dir_cache(cache_dir, pairs, {**options, **settings.long.key()})
            hit = directory.load()
            if hit is not None:
                return Rows(*hit)
        if store is not None:
            rows = self._cached_run(store, pairs, settings, options, questions)
        else:
            rows = self._compute(pairs, settings, options, questions=questions)
        if directory is not None:
            directory.save(rows.vectors, rows.answers)
        return rows

    def _cached_run(self, store: EmbeddingCache, pairs: list[Pair], settings: EncodeSettings,
                    options: dict[str, Any], questions: bool = False) -> Rows:
        """Look rows up in the persistent cache; compute and store the missing ones batch by batch (at the end, for
        windows pooled into rows)."""
        long = settings.long
        model_key, about = self.model_key({**options, **long.key()})
        store.register_model(model_key, self.name, about)
        unique = list(dict.fromkeys(pairs))
        found = store.get_many(model_key, unique)
        if settings.generations:
            found = {p: hit for p, hit in found.items() if hit[1] is not None}
        missing = [p for p in unique if p not in found]

        def save(batch: list[Pair], result: BatchResult) -> None:
            store.put_many(model_key, batch, result.vectors.float().cpu().numpy(), result.answers)

        vectors = {p: torch.from_numpy(v) for p, (v, _) in found.items()}
        answers = {p: a for p, (_, a) in found.items()}
        if missing:
            computed = self._compute(missing, settings, options, on_batch=save, questions=questions)
            if long.chunk:
                save(missing, BatchResult(computed.vectors, answers=computed.answers))
            for i, p in enumerate(missing):
                vectors[p] = computed.vectors[i]
                answers[p] = computed.answers[i] if computed.answers is not None else None
        store.record_run(model_key, len(unique) - len(missing), len(missing))
        stacked = torch.stack([vectors[p] for p in pairs]) if pairs else torch.zeros((0, self.encoder.dim))
        column = [answers[p] for p in pairs] if self.encoder.answers else None
        return Rows(stacked, column)  # type: ignore[arg-type]

    def _dir_cache(self, cache_dir: str | os.PathLike[str], pairs: list[Pair], options: dict[str, Any]) -> DirCache:
        about = {"model": self.name, "weights": weights_fingerprint(self.encoder),
                 "settings": settings_digest(self.encoder.settings(), options), "inputs": settings_digest(pairs)}
        return DirCache(cache_dir, settings_digest(about), about)

    def _compute(self, pairs: list[Pair], settings: EncodeSettings, options: dict[str, Any],
                 on_batch: Callable[[list[Pair], BatchResult], None] | None = None, questions: bool = False) -> Rows:
        """:meth:`_run`, or in chunk mode :meth:`_run` over the windows of the rows too long to fit, pooled back
        into rows (``on_batch`` then is not called: a batch holds windows, not rows). The family's options are read
        here, once for the call (:meth:`.Encoder.prepare`), and passed down as it returns them."""
        options = self.encoder.prepare(options)
        if not settings.long.chunk:
            return self._run(pairs, settings, options, on_batch, questions)
        chunks = split_long(self.encoder, pairs, settings.long, options)
        if chunks.split:
            log.info("%d of %d texts were longer than the model's maximum length and were embedded in %d windows",
                     chunks.split, len(pairs), len(chunks.pieces) - len(pairs) + chunks.split)
        rows = self._run(chunks.pieces, settings, options)
        vectors = pool_windows(rows.vectors, chunks, len(pairs), self.encoder.normalizes)
        return Rows(vectors)

    def _run(self, pairs: list[Pair], settings: EncodeSettings, options: dict[str, Any],
             on_batch: Callable[[list[Pair], BatchResult], None] | None = None, questions: bool = False) -> Rows:
        """Run the family over the unique pairs, longest first, and return rows in input order; ``options`` are the
        family's, as its ``prepare`` returned them.

        Answer families are told whether generations are wanted (``return_generations``), so a one-pass output
        value can skip ``generate()`` when they are not. With ``questions`` (several questions over one corpus)
        a family that computes a text's input once for all its questions gets batches of texts instead."""
        batch_size, budget, show = settings.batch_size, settings.max_tokens_per_batch, settings.show_progress
        if questions and shares_input(self, settings.kind, settings.generations, options):
            return run_questions(self, pairs, batch_size, show, options, on_batch, budget)
        if self.encoder.answers:
            options = {**options, "return_generations": settings.generations}
        keys, index, counts = self._plan(pairs, settings)
        self.encoder.eval()

        def run(rows: list[int]) -> BatchResult:
            batch = [keys[i] for i in rows]
            result = self.encoder.embed_batch(batch, settings.kind, **options)
            if on_batch is not None:
                on_batch(batch, result)
            return result

        done = run_batches(counts, batch_size, budget, show, run)
        batches = [result for _, result in done]
        where: list[tuple[int, int]] = [(0, 0)] * len(keys)  # unique row -> (batch, row in batch)
        for b, (rows, _) in enumerate(done):
            for j, i in enumerate(rows):
                where[i] = (b, j)
        truncated = sum(result.truncated for result in batches)
        warn_truncated(truncated, len(keys))
        pick = [where[i] for i in index]
        if not batches:
            return Rows(torch.zeros((0, self.encoder.dim)), [] if self.encoder.answers else None, [], [])
        vectors = torch.stack([batches[b].vectors[j] for b, j in pick]).float()

        def column(name: str) -> list[Any] | None:
            if getattr(batches[0], name) is None:
                return None
            return [getattr(batches[b], name)[j] for b, j in pick]

        return Rows(vectors, column("answers"), column("tokens"), column("instruction_tokens"))

    def _plan(self, pairs: list[Pair], settings: EncodeSettings) -> tuple[list[Pair], list[int], list[int]]:
        """The unique pairs, each pair's number among them, and their lengths for the batch plan: longest first,
        by tokens where the family counts them (less padding), else by characters."""
        unique: dict[Pair, int] = {}
        index = [unique.setdefault(p, len(unique)) for p in pairs]
        keys = list(unique)
        budget = settings.max_tokens_per_batch
        counts = self.encoder.token_counts(keys) if len(keys) > settings.batch_size or budget is not None else None
        if counts is None:  # a budget then counts about 4 characters a token
            counts = [len(text) + len(instruction or "") for instruction, text in keys]
            counts = [-(-c // CHARS_PER_TOKEN) for c in counts] if budget is not None else counts
        return keys, index, counts

    def _finish(self, rows: Rows, settings: EncodeSettings, single: bool) -> Any:
        """Normalize (or keep ``dimensions`` and renormalize) on the model's device, check (:mod:`inbedder.finishing`),
        convert and shape what ``encode`` returns."""
        vectors = rows.vectors.float()
        if settings.dimensions is not None:
            vectors = keep_dimensions(vectors, settings.dimensions)
        elif settings.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        convert = (lambda t: t.detach().cpu()) if settings.as_tensor else (lambda t: t.detach().cpu().numpy())
        value: Any = convert(vectors)
        check_finite(value.numpy() if settings.as_tensor else value)
        if not settings.sentences:
            tokens = [convert(t.float()) for t in rows.tokens or []]
            instr = [convert(t.float()) for t in rows.instruction_tokens or []]
            value = tokens if settings.kind is Output.TOKEN else (value, tokens, instr)
        if single:
            value = tuple(v[0] for v in value) if isinstance(value, tuple) else value[0]
        if settings.generations:
            answers = rows.answers or []
            return value, (answers[0] if single else answers)
        return value
