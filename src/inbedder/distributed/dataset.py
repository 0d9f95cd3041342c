"""Embed a Ray Data dataset: each actor loads the model once and embeds the blocks it is given.

>>> import ray
>>> ds = ray.data.read_parquet("docs/")                                                   # doctest: +SKIP
>>> ds = embed_dataset(ds, "minilm", instruction="Represent the document:", concurrency=4) # doctest: +SKIP
>>> ds.write_parquet("vectors/")                                                          # doctest: +SKIP

The work is a class-based ``map_batches`` UDF (:class:`EmbedBatch`): streaming, one model per actor, any
number of actors on any number of machines. Row order is kept by setting Ray's ``preserve_order`` execution
option on the dataset's context (pass ``preserve_order=False`` to let blocks finish in any order; then carry an
id column). Per-row instructions come from ``instruction_column`` (an empty value falls back to
``instruction``). ``cache=`` a path makes every actor look rows up in (and add them to) that SQLite cache.
"""

from __future__ import annotations

import os
from typing import Any

from ..encode_settings import check_batch_size
from ..errors import InbedderError, InputError, InputTypeError, did_you_mean, require

DEFAULT_COLUMN = "embedding"


class EmbedBatch:
    """A Ray Data callable class: the model is loaded in ``__init__`` (once per actor), ``__call__`` embeds a batch.

    Batches are ``pyarrow.Table`` objects (``batch_format="pyarrow"``); the vectors are appended as a
    fixed-size list column of float32. Also usable without Ray: ``EmbedBatch("minilm", ...)(table)``.
    """

    def __init__(self, model: str, instruction: str | None = None, *, text_column: str = "text",
                 instruction_column: str | None = None, output_column: str = DEFAULT_COLUMN, batch_size: int = 32,
                 normalize: bool = False, cache: str | bool | None = None, threads: int | None = None,
                 load_options: dict[str, Any] | None = None):
        import torch

        from ..cache.store import EmbeddingCache
        from ..loading import load, quiet_transformers

        if threads:
            torch.set_num_threads(threads)
        with quiet_transformers():  # quantize="auto" is chosen per machine by a measurement: actors on several
            # machines could choose differently, so a model's auto default is float32 here unless the options say
            self.model = load(model, **{"quantize": "none", **(load_options or {})})
        self.instruction = instruction
        self.text_column = text_column
        self.instruction_column = instruction_column
        self.output_column = output_column
        self.batch_size = batch_size
        self.normalize = normalize
        self.cache = None
        if cache is not None and cache is not False:
            self.cache = EmbeddingCache(None if cache is True else cache)

    def __call__(self, table: Any, where: str = "a batch") -> Any:
        """Embed one ``pyarrow.Table``; ``where`` names it in errors (a file and row range, say)."""
        import pyarrow as pa

        texts = self._strings(table, self.text_column, where, required=True)
        instruction: Any = self.instruction
        if self.instruction_column is not None:
            own = self._strings(table, self.instruction_column, where, required=False)
            if any(i is not None for i in own):
                instruction = [self.instruction if i is None else i for i in own]
        if self.output_column in table.column_names:
            raise InputError(f"{where} already has a column {self.output_column!r}; choose another output column")
        vectors = self.model.encode(texts, instruction=instruction, batch_size=self.batch_size,
                                    normalize=self.normalize, show_progress_bar=False, cache=self.cache)
        dim = vectors.shape[1] if vectors.ndim == 2 else self.model.dim
        flat = pa.array(vectors.reshape(-1), pa.float32())
        return table.append_column(self.output_column, pa.FixedSizeListArray.from_arrays(flat, dim))

    @staticmethod
    def _strings(table: Any, column: str, where: str, required: bool) -> list[Any]:
        if column not in table.column_names:
            raise InputError(f"{where} has no column {column!r} (columns: {', '.join(table.column_names)})."
                             f"{did_you_mean(column, table.column_names)}")
        values = table.column(column).to_pylist()
        for i, value in enumerate(values):
            if value is None and not required:
                continue
            if not isinstance(value, str):
                raise InputError(f"{where}, row {i}: column {column!r} holds {value!r}; "
                                 + ("each row needs a text" if required else "instructions must be text (or null)"))
        return values


def embed_dataset(ds: Any, model: str | os.PathLike[str], instruction: str | None = None, *, text_column: str = "text",
                  instruction_column: str | None = None, output_column: str = DEFAULT_COLUMN, batch_size: int = 32,
                  rows_per_call: int | None = None, concurrency: int | tuple[int, int] = 1, num_gpus: float = 0,
                  num_cpus: float | None = None, normalize: bool = False, cache: str | bool | None = None,
                  preserve_order: bool = True, **load_options: Any) -> Any:
    """Add an ``output_column`` of vectors to a ``ray.data.Dataset`` (lazy, streaming, one model per actor).

    ``model`` is a name or path that every actor passes to :func:`inbedder.load` with ``load_options``
    (``dtype=``, ``device=``, ...); a model's ``quantize="auto"`` default is float32 here (``quantize="int8"`` for
    int8 on every actor): each machine would measure its own choice. ``batch_size`` is texts per forward pass,
    ``rows_per_call`` rows per UDF call (default ``8 * batch_size``), ``concurrency`` the number of actors (or a
    ``(min, max)`` autoscaling range), ``num_gpus`` / ``num_cpus`` what each actor reserves. Returns the new dataset.
    """
    require("ray.data", "ray")
    import ray.data

    if not isinstance(ds, ray.data.Dataset):
        raise InputTypeError(f"embed_dataset needs a ray.data.Dataset; got {type(ds).__name__}")
    if not isinstance(model, (str, os.PathLike)):
        raise InputTypeError("embed_dataset needs the model's name or path (each actor loads its own copy); got "
                             f"{type(model).__name__}. Pass the name you gave inbedder.load, and its options.")
    check_batch_size(batch_size)
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None:
        for column in (text_column, instruction_column):
            if column is not None and column not in schema.names:
                raise InputError(f"the dataset has no column {column!r} (columns: {', '.join(schema.names)})."
                                 f"{did_you_mean(column, schema.names)}")
    model = os.path.abspath(model) if os.path.exists(model) else str(model)  # actors may run in another folder
    if isinstance(cache, (str, os.PathLike)):
        cache = os.path.abspath(cache)
    threads = int(num_cpus) if num_cpus and not num_gpus else None
    out = ds.map_batches(
        EmbedBatch, batch_format="pyarrow", batch_size=rows_per_call or 8 * batch_size, compute=actor_pool(concurrency),
        num_gpus=num_gpus or None, num_cpus=num_cpus, fn_constructor_args=(model, instruction),
        fn_constructor_kwargs={"text_column": text_column, "instruction_column": instruction_column,
                               "output_column": output_column, "batch_size": batch_size, "normalize": normalize,
                               "cache": cache,
                               "threads": threads, "load_options": load_options})
    if preserve_order:
        out.context.execution_options.preserve_order = True
    return out


def actor_pool(concurrency: int | tuple[int, int]) -> Any:
    """A fixed pool of ``concurrency`` actors, or an autoscaling one for a ``(min, max)`` pair."""
    from ray.data import ActorPoolStrategy

    if isinstance(concurrency, tuple) and len(concurrency) == 2 and all(isinstance(c, int) for c in concurrency):
        if not 1 <= concurrency[0] <= concurrency[1]:
            raise InputError(f"concurrency=(min, max) needs 1 <= min <= max; got {concurrency}")
        return ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise InputError(f"concurrency must be a positive int or a (min, max) pair; got {concurrency!r}")
    return ActorPoolStrategy(size=concurrency)


def user_error(exc: BaseException) -> InbedderError | None:
    """The inbedder error inside an exception raised by a Ray actor (Ray wraps them), or None."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, InbedderError):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None
