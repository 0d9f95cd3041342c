"""Triplets: is the anchor closer (cosine) to the positive than to the negative, under the instruction?

>>> import numpy as np
>>> triplet_accuracy(np.array([[1.0, 0]]), np.array([[1.0, 0.1]]), np.array([[0.0, 1]]))
1.0
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..io.table import read_table
from .common import EvalSettings, TextEncoder, choose, cosine_rows, embed, same_length


def triplet_accuracy(anchor: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
    """Share of rows with cos(anchor, positive) > cos(anchor, negative); a tie counts as a miss."""
    return float(np.mean(cosine_rows(anchor, positive) > cosine_rows(anchor, negative)))


@dataclass(frozen=True)
class TripletTask:
    """Anchors, positives and negatives, with one instruction or one per row (used for all three texts)."""

    anchors: Sequence[str]
    positives: Sequence[str]
    negatives: Sequence[str]
    instructions: Sequence[str | None] | None = None
    instruction: str | None = None

    name: ClassVar[str] = "triplet"
    primary: ClassVar[str] = "accuracy"

    def __post_init__(self) -> None:
        same_length("triplet task", anchors=self.anchors, positives=self.positives, negatives=self.negatives,
                    instructions=self.instructions)

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """``accuracy`` (primary) and ``margin``: the mean of cos(a, p) − cos(a, n)."""
        n = len(self.anchors)
        ins = choose(instruction, self.instructions, self.instruction, n)
        vectors = embed(model, [*self.anchors, *self.positives, *self.negatives], ins * 3, settings)
        a, p, q = vectors[:n], vectors[n:2 * n], vectors[2 * n:]
        margin = cosine_rows(a, p) - cosine_rows(a, q)
        return {"accuracy": triplet_accuracy(a, p, q), "margin": float(margin.mean()), "n": float(n)}


def load_triplets(path: str | os.PathLike[str], *, anchor_column: str = "anchor",
                  positive_column: str = "positive", negative_column: str = "negative",
                  instruction_column: str | None = None, instruction: str | None = None,
                  delimiter: str | None = None, limit: int | None = None, seed: int = 0) -> TripletTask:
    """A :class:`TripletTask` from a file with anchor, positive and negative columns (+ an instruction column)."""
    table = read_table(path, delimiter=delimiter)
    table.require(anchor_column, positive_column, negative_column, instruction_column)
    table = table.sample(limit, seed)
    return TripletTask(table.strings(anchor_column), table.strings(positive_column), table.strings(negative_column),
                       table.optional_strings(instruction_column), instruction)
