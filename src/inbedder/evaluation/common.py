"""What every evaluation shares: settings, embedding through ``encode``, cosine, and correlations.

Correlations are computed here with numpy (scipy is not needed):

>>> round(pearson([1, 2, 3], [2, 4, 7]), 4), spearman([1, 2, 3], [2, 4, 7])
(0.9934, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from ..encode_settings import check_batch_size
from ..errors import InputError, NonFiniteError, require

EXTRA = "eval"


class TextEncoder(Protocol):
    """Anything with inbedder's ``encode``: an :class:`~inbedder.Embedder`, or a stand-in in tests."""

    def encode(self, texts: Any, instruction: Any = None, **options: Any) -> Any: ...


class Task(Protocol):
    """An evaluation task: ``evaluate`` returns ``dict[str, float]`` that holds the ``primary`` metric."""

    name: ClassVar[str]
    primary: ClassVar[str]

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]: ...


@dataclass(frozen=True)
class EvalSettings:
    """How an evaluation runs: texts per forward pass, the seed of every random choice, the progress bar."""

    batch_size: int = 32
    seed: int = 0
    progress: bool | None = None

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InputError(f"seed must be an int; got {self.seed!r}")


DEFAULT = EvalSettings()


def sklearn() -> None:
    """Fail early, naming the extra, when scikit-learn is missing."""
    require("sklearn", EXTRA)


def embed(model: TextEncoder, texts: Sequence[str], instruction: str | Sequence[str | None] | None,
          settings: EvalSettings | None = None) -> np.ndarray:
    """``model.encode`` for a list of texts → a float64 ``(n, d)`` array (one instruction or one per text)."""
    settings = settings or DEFAULT
    if not isinstance(instruction, (str, type(None))):
        instruction = list(instruction)
        if all(i is None for i in instruction):
            instruction = None
        elif len(set(instruction)) == 1:
            instruction = instruction[0]
    vectors = model.encode(list(texts), instruction=instruction, batch_size=settings.batch_size,
                           show_progress_bar=settings.progress)
    return _checked(vectors, (len(texts),), f"{len(texts)} texts")


def _checked(vectors: Any, rows: tuple[int, ...], what: str) -> np.ndarray:
    """The model's output as float64, with one vector per row and no non-finite value."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != len(rows) + 1 or vectors.shape[:len(rows)] != rows:
        raise InputError(f"the model returned an array of shape {vectors.shape} for {what}")
    if not np.isfinite(vectors).all():
        raise NonFiniteError("the model returned non-finite vectors")
    return vectors


def embed_each(model: TextEncoder, texts: Sequence[str], instructions: Sequence[str],
               settings: EvalSettings | None = None) -> list[np.ndarray]:
    """:func:`embed` under each instruction: one ``encode(texts, instructions=...)`` call when the model takes
    several (an inbedder model: each text's input is computed once for all of them in the causal answer
    family), else one call per instruction."""
    settings = settings or DEFAULT
    if not getattr(model, "takes_instructions", False):
        return [embed(model, texts, q, settings) for q in instructions]
    vectors = model.encode(list(texts), instructions=list(instructions), batch_size=settings.batch_size,
                           show_progress_bar=settings.progress)
    return list(_checked(vectors, (len(instructions), len(texts)),
                         f"{len(instructions)} instructions × {len(texts)} texts"))


def choose(override: str | None, per_row: Sequence[str | None] | None, default: str | None,
           n: int) -> list[str | None]:
    """The instruction of each row: ``override`` if given, else the row's own, else ``default``."""
    if override is not None:
        return [override] * n
    if per_row is not None:
        return [default if i is None else i for i in per_row]
    return [default] * n


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``."""
    return np.sum(unit(a) * unit(b), axis=1)


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks (as Spearman's rho needs)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    out = np.empty(len(x))
    for s, e in zip(starts, ends, strict=True):
        out[order[s:e]] = (s + e + 1) / 2.0
    return out


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's r; NaN when either side is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) != len(b) or len(a) < 2:
        raise InputError(f"a correlation needs two sequences of the same length >= 2; got {len(a)} and {len(b)}")
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the ranks."""
    return pearson(ranks(x), ranks(y))


def same_length(what: str, **columns: Sequence[Any] | None) -> int:
    """The common length of the given columns, or an error naming the ones that differ; 0 rows is an error."""
    sizes = {name: len(values) for name, values in columns.items() if values is not None}
    if len(set(sizes.values())) > 1:
        raise InputError(f"{what}: columns differ in length ({', '.join(f'{k}={v}' for k, v in sizes.items())})")
    n = next(iter(sizes.values()), 0)
    if n == 0:
        raise InputError(f"{what}: no rows to evaluate")
    return n
