"""What one ``encode`` call asks for, validated once: :class:`EncodeSettings`.

The load-free cached path (:mod:`inbedder.load_free`) checks ``batch_size`` here too, before it reads the cache,
so a bad value is refused the same way whether or not a model is loaded. Importing this module imports no torch
(the settings import the choices they parse when they are made).

>>> EncodeSettings(384, output="token", dimensions=64)                  # doctest: +SKIP
InputError: dimensions= shortens sentence vectors only; got output='token'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .encoders.base import Output
    from .long_text import LongTexts


def check_batch_size(batch_size: Any) -> int:
    """``batch_size``, a positive int (rows, or texts with several instructions, per batch)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int; got {batch_size!r}")
    return batch_size


@dataclass(frozen=True)
class EncodeSettings:
    """The options of one :meth:`~inbedder.engine.Embedder.encode` call that are not the input, the model's own
    options or a place (device, caches, re-encoder), checked together when made, in the order encode names them.

    ``model_dim`` is the length of the model's sentence vectors (the bound of ``dimensions``). ``output`` (a str or
    :class:`~inbedder.encoders.base.Output`) is kept as :attr:`kind`: which vectors the call returns (sentence,
    token or all); ``long_text`` and ``chunk_overlap`` as :attr:`long`.
    """

    model_dim: int
    batch_size: int = 32
    max_tokens_per_batch: int | None = None
    normalize: bool = False
    output: Any = "sentence"
    as_tensor: bool = False
    show_progress: bool | None = None
    generations: bool = False
    long_text: Any = "truncate"
    chunk_overlap: int | None = None
    dimensions: int | None = None
    kind: Output = field(init=False)
    long: LongTexts = field(init=False)

    def __post_init__(self) -> None:
        from .encoders.base import Output
        from .long_text import LongTexts

        check_batch_size(self.batch_size)
        budget = self.max_tokens_per_batch
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise InputError(f"max_tokens_per_batch must be a positive int or None; got {budget!r}")
        object.__setattr__(self, "kind", Output.parse(self.output))
        object.__setattr__(self, "long", LongTexts(self.long_text, self.chunk_overlap))
        check_dimensions(self.dimensions, self.model_dim, self.kind)
        if self.long.chunk and (self.kind is not Output.SENTENCE or self.generations):
            raise InputError("long_text='chunk' gives sentence vectors only (pooled over windows); got "
                             f"output={self.kind.value!r}, return_generations={self.generations}")

    @property
    def sentences(self) -> bool:
        """Whether the call returns sentence vectors (the only kind a cache keeps or a re-encoder gives)."""
        from .encoders.base import Output

        return self.kind is Output.SENTENCE


def check_dimensions(dimensions: Any, dim: int, kind: Output) -> None:
    """``dimensions`` is None or an int in ``1 .. dim`` (sentence vectors only)."""
    from .encoders.base import Output

    if dimensions is None:
        return
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise InputError(f"dimensions must be an int or None; got {dimensions!r}")
    if not 1 <= dimensions <= dim:
        raise InputError(f"dimensions={dimensions} is out of range: this model's vectors have {dim} dimensions")
    if kind is not Output.SENTENCE:
        raise InputError(f"dimensions= shortens sentence vectors only; got output={kind.value!r}")
