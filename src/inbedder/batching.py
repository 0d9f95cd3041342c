"""How rows are cut into batches, and the rows a run returns: shared by the engine and its multi-question plan."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .encoders.base import BatchResult

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


def run_batches(lengths: list[int], batch_size: int, budget: int | None, show: bool | None,
                run: Callable[[list[int]], BatchResult]) -> list[tuple[list[int], BatchResult]]:
    """Items (by index) longest first, cut into batches by :func:`plan_batches`; ``run`` computes one batch of
    indices. Returns each batch's indices with its result; a progress bar by default from
    ``PROGRESS_MIN_BATCHES`` batches; the count of truncated rows is left to the caller (the results carry it)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    plan = plan_batches([lengths[i] for i in order], batch_size, budget)
    show = len(plan) >= PROGRESS_MIN_BATCHES if show is None else show
    done: list[tuple[list[int], BatchResult]] = []
    with torch.inference_mode(), tqdm(total=len(lengths), disable=not show, desc="Embedding", unit="text") as bar:
        for start, stop in plan:
            rows = order[start:stop]
            done.append((rows, run(rows)))
            bar.update(len(rows))
    return done


def keep_dimensions(vectors: torch.Tensor, dimensions: int) -> torch.Tensor:
    """The first ``dimensions`` of each row, scaled back to length 1 (Matryoshka models); zero rows stay zero."""
    return torch.nn.functional.normalize(vectors[:, :dimensions].float(), p=2, dim=1)


@dataclass
class Rows:
    """Per-row results in input order."""

    vectors: torch.Tensor
    answers: list[str] | None = None
    tokens: list[torch.Tensor] | None = None
    instruction_tokens: list[torch.Tensor] | None = None
