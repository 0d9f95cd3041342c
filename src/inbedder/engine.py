"""The engine: the one place that batches.

It validates input, computes identical inputs once, sorts by length, runs the family one batch at a
time under ``torch.inference_mode``, shows progress, restores input order and converts the output.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .batching import Rows, keep_dimensions, run_batches, warn_truncated
from .cache.directory import DirCache
from .cache.store import EmbeddingCache, open_cache
from .choices import parse_device
from .encode_settings import check_batch_size
from .encoders.base import BatchResult, Encoder, Output, Pair
from .errors import InputError
from .fingerprint import settings_digest, weights_fingerprint
from .finishing import check_finite
from .inputs import to_pairs
from .long_text import LongTexts, split_long, split_options
from .long_text import pool as pool_windows
from .speed import check_device_for

log = logging.getLogger("inbedder")

CHARS_PER_TOKEN = 4  # for a token budget where the family cannot count tokens
TRUNCATE = LongTexts()


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
        self._loaded: dict[str, Embedder] = {}  # reencoders loaded by name

    @property
    def family(self) -> str:
        return self.encoder.family

    @property
    def dim(self) -> int:
        """Length of the sentence vectors (the reencoder's, when one is set)."""
        second = self.default_reencoder
        return second.dim if isinstance(second, Embedder) else self.encoder.dim

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
        check_batch_size(batch_size)
        if max_tokens_per_batch is not None and (not isinstance(max_tokens_per_batch, int)
                                                 or isinstance(max_tokens_per_batch, bool) or max_tokens_per_batch < 1):
            raise InputError(f"max_tokens_per_batch must be a positive int or None; got {max_tokens_per_batch!r}")
        out = Output.parse(output)
        long = LongTexts(long_text, chunk_overlap)  # type: ignore[arg-type]
        check_dimensions(dimensions, self.dim, out)
        if long.chunk and (out is not Output.SENTENCE or return_generations):
            raise InputError("long_text='chunk' gives sentence vectors only (pooled over windows); got "
                             f"output={out.value!r}, return_generations={return_generations}")
        shape: tuple[int, bool] | None = None  # with instructions=: k and whether one text was given
        if instructions is not None:
            from .multi_instruction import expand, split

            texts, every, k, one = expand(texts, instruction, instructions)
            instruction, shape = list(every), (k, one)
        pairs, single = to_pairs(texts, instruction)
        questions = shape is not None

        def done(value: Any) -> Any:
            return value if shape is None else split(value, *shape, out, return_generations)

        self.encoder.check_options(options)
        if return_generations and not self.encoder.answers:
            raise InputError(f"return_generations=True needs an answer family; this model is {self.family!r}")
        if device is not None:
            check_device_for(self.encoder, parse_device(device))
            self.to(parse_device(device))
        second = self.reencoder_for(reencoder)
        if second is not None:
            if long.chunk:
                raise InputError("long_text='chunk' pools the model's own vectors; it cannot be used with reencoder=")
            if out is not Output.SENTENCE:
                raise InputError(f"reencoder= gives sentence vectors only; got output={out.value!r}")
            batching = {"batch_size": batch_size, "max_tokens_per_batch": max_tokens_per_batch,
                        "show_progress_bar": show_progress_bar, "cache": cache}
            _, answers = self.encode(texts, instruction, return_generations=True, cache_dir=cache_dir, reencoder=False,
                                     **batching, **options)
            rows = [answers] if single else answers
            if isinstance(second, Embedder):
                vectors = second.encode(rows, convert_to_tensor=True, **batching)
            else:  # e.g. a sentence-transformers model
                vectors = torch.as_tensor(np.asarray(second.encode(rows)), dtype=torch.float32)
            return done(self._finish(Rows(vectors, rows), out, single, normalize, convert_to_tensor,
                                     return_generations, dimensions))
        store = open_cache(cache)
        if (store is not None or cache_dir is not None) and out is not Output.SENTENCE:
            raise InputError(f"cache and cache_dir keep sentence vectors only; got output={out.value!r}")
        directory = None
        finish = (out, single, normalize, convert_to_tensor, return_generations, dimensions)
        if cache_dir is not None:
            directory = self._dir_cache(cache_dir, pairs, {**options, **long.key()})
            hit = directory.load()
            if hit is not None:
                return done(self._finish(Rows(*hit), *finish))
        if store is not None:
            rows = self._cached_run(store, pairs, batch_size, show_progress_bar, options, return_generations,
                                    budget=max_tokens_per_batch, long=long, questions=questions)
        else:
            rows = self._compute(pairs, out, batch_size, show_progress_bar, options, generations=return_generations,
                                 budget=max_tokens_per_batch, long=long, questions=questions)
        if directory is not None:
            directory.save(rows.vectors, rows.answers)
        return done(self._finish(rows, *finish))

    def reencoder_for(self, reencoder: Any) -> Any:
        """The model that embeds the answers (loaded once per name), or None; checks that answers exist."""
        reencoder = self.default_reencoder if reencoder is None else reencoder
        if reencoder is None or reencoder is False:  # False: this call embeds with the model itself
            return None
        if not self.encoder.answers:
            raise InputError(f"reencoder= embeds generated answers; this model is {self.family!r}, which has none")
        if isinstance(reencoder, (str, os.PathLike)):
            name = str(reencoder)
            if self.loader is None:
                raise InputError(f"reencoder={name!r} names a model, and this Embedder was not made by "
                                 "inbedder.load (it has no loader); pass the loaded model instead")
            if name not in self._loaded:
                self._loaded[name] = self.loader(name, device=self.device)
            reencoder = self._loaded[name]
        if not callable(getattr(reencoder, "encode", None)):
            raise InputError(f"reencoder must be a model name, an Embedder or have encode(texts); got {reencoder!r}")
        return reencoder

    def model_key(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """What identifies this model's vectors: weights fingerprint, family settings, call options (the family's
        and the long-text settings: ``long_text``, ``chunk_overlap``)."""
        family, long = split_options(options)
        about = {"weights": weights_fingerprint(self.encoder), "settings": self.encoder.settings(),
                 "options": {**family, **long.key()}}
        return settings_digest(about), about

    # -- internals ----------------------------------------------------------------------------------------

    def _cached_run(self, store: EmbeddingCache, pairs: list[Pair], batch_size: int, show: bool | None,
                    options: dict[str, Any], need_answers: bool, budget: int | None = None,
                    long: LongTexts = TRUNCATE, questions: bool = False) -> Rows:
        """Look rows up in the persistent cache; compute and store the missing ones batch by batch (at the end, for
        windows pooled into rows)."""
        model_key, about = self.model_key({**options, **long.key()})
        store.register_model(model_key, self.name, about)
        unique = list(dict.fromkeys(pairs))
        found = store.get_many(model_key, unique)
        if need_answers:
            found = {p: hit for p, hit in found.items() if hit[1] is not None}
        missing = [p for p in unique if p not in found]

        def save(batch: list[Pair], result: BatchResult) -> None:
            store.put_many(model_key, batch, result.vectors.float().cpu().numpy(), result.answers)

        vectors = {p: torch.from_numpy(v) for p, (v, _) in found.items()}
        answers = {p: a for p, (_, a) in found.items()}
        if missing:
            computed = self._compute(missing, Output.SENTENCE, batch_size, show, options, on_batch=save,
                                     budget=budget, generations=need_answers, long=long, questions=questions)
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

    def _compute(self, pairs: list[Pair], out: Output, batch_size: int, show: bool | None, options: dict[str, Any],
                 on_batch: Callable[[list[Pair], BatchResult], None] | None = None, generations: bool = False,
                 budget: int | None = None, long: LongTexts = TRUNCATE, questions: bool = False) -> Rows:
        """:meth:`_run`, or in chunk mode :meth:`_run` over the windows of the rows too long to fit, pooled back
        into rows (``on_batch`` then is not called: a batch holds windows, not rows)."""
        if not long.chunk:
            return self._run(pairs, out, batch_size, show, options, on_batch, generations, budget, questions)
        chunks = split_long(self.encoder, pairs, long, options)
        if chunks.split:
            log.info("%d of %d texts were longer than the model's maximum length and were embedded in %d windows",
                     chunks.split, len(pairs), len(chunks.pieces) - len(pairs) + chunks.split)
        rows = self._run(chunks.pieces, out, batch_size, show, options, budget=budget)
        vectors = pool_windows(rows.vectors, chunks, len(pairs), self.encoder.normalizes)
        return Rows(vectors)

    def _run(self, pairs: list[Pair], out: Output, batch_size: int, show: bool | None, options: dict[str, Any],
             on_batch: Callable[[list[Pair], BatchResult], None] | None = None, generations: bool = False,
             budget: int | None = None, questions: bool = False) -> Rows:
        """Run the family over the unique pairs, longest first, and return rows in input order.

        Answer families are told whether generations are wanted (``return_generations``), so a one-pass output
        value can skip ``generate()`` when they are not. With ``questions`` (several questions over one corpus)
        a family that computes a text's input once for all its questions gets batches of texts instead."""
        if questions:
            from .multi_instruction import run_questions, shares_input

            if shares_input(self, out, generations, options):
                return run_questions(self, pairs, batch_size, show, options, on_batch, budget)
        if self.encoder.answers:
            options = {**options, "return_generations": generations}
        unique: dict[Pair, int] = {}
        index = [unique.setdefault(p, len(unique)) for p in pairs]
        keys = list(unique)
        # longest first, by tokens where the family counts them (less padding), else by characters
        counts = self.encoder.token_counts(keys) if len(keys) > batch_size or budget is not None else None
        if counts is None:  # a budget then counts about 4 characters a token
            counts = [len(text) + len(instruction or "") for instruction, text in keys]
            counts = [-(-c // CHARS_PER_TOKEN) for c in counts] if budget is not None else counts
        self.encoder.eval()

        def run(rows: list[int]) -> BatchResult:
            batch = [keys[i] for i in rows]
            result = self.encoder.embed_batch(batch, out, **options)
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

    def _finish(self, rows: Rows, out: Output, single: bool, normalize: bool, as_tensor: bool,
                return_generations: bool, dimensions: int | None = None) -> Any:
        """Normalize (or keep ``dimensions`` and renormalize), check, convert and shape the output."""
        vectors = rows.vectors.float()
        if dimensions is not None:
            vectors = keep_dimensions(vectors, dimensions)
        elif normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        convert = (lambda t: t.detach().cpu()) if as_tensor else (lambda t: t.detach().cpu().numpy())
        value: Any = convert(vectors)
        check_finite(value.numpy() if as_tensor else value)
        if out is not Output.SENTENCE:
            tokens = [convert(t.float()) for t in rows.tokens or []]
            instr = [convert(t.float()) for t in rows.instruction_tokens or []]
            value = tokens if out is Output.TOKEN else (value, tokens, instr)
        if single:
            value = tuple(v[0] for v in value) if isinstance(value, tuple) else value[0]
        if return_generations:
            answers = rows.answers or []
            return value, (answers[0] if single else answers)
        return value


def check_dimensions(dimensions: Any, dim: int, out: Output) -> None:
    """``dimensions`` is None or an int in ``1 .. dim`` (sentence vectors only)."""
    if dimensions is None:
        return
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise InputError(f"dimensions must be an int or None; got {dimensions!r}")
    if not 1 <= dimensions <= dim:
        raise InputError(f"dimensions={dimensions} is out of range: this model's vectors have {dim} dimensions")
    if out is not Output.SENTENCE:
        raise InputError(f"dimensions= shortens sentence vectors only; got output={out.value!r}")
