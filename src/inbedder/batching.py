"""How rows are cut into batches, and the rows a run returns: shared by the engine and its multi-question plan."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

PROGRESS_MIN_BATCHES = 8  # show a progress bar by default from this many batches on


def warn_truncated(truncated: int, total: int) -> None:
    if truncated:
        warnings.warn(f"{truncated} of {total} texts were longer than the model's maximum length and were truncated",
                      stacklevel=5)


def plan_batches(lengths: list[int], batch_size: int, budget: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch over rows sorted longest first: at most ``batch_size`` rows and, with a
    ``budget``, at most ``budget`` padded tokens (rows × the first row's length; a longer row goes alone).

    >>> plan_batches([9, 5, 5, 2, 1], batch_size=4, budget=12)
    [(0, 1), (1, 3), (3, 5)]
    """
    plan: list[tuple[int, int]] = []
    start = 0
    while start < len(lengths):
        rows = batch_size if budget is None else max(1, min(batch_size, budget // max(1, lengths[start])))
        stop = min(len(lengths), start + rows)
        plan.append((start, stop))
        start = stop
    return plan


@dataclass
class Rows:
    """Per-row results in input order."""

    vectors: torch.Tensor
    answers: list[str] | None = None
    tokens: list[torch.Tensor] | None = None
    instruction_tokens: list[torch.Tensor] | None = None
