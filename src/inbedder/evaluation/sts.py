"""Instructed semantic textual similarity: the cosine of each pair against a gold score.

>>> import numpy as np
>>> a = np.array([[1.0, 0], [1, 1], [0, 1]]); b = np.array([[1.0, 0], [1, 0], [1, 0]])
>>> sts_scores(a, b, [5.0, 2.5, 0.0])["spearman"]
1.0
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..io.table import read_table
from .common import EvalSettings, TextEncoder, choose, cosine_rows, embed, pearson, same_length, spearman


def sts_scores(first: np.ndarray, second: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    """Spearman's rho and Pearson's r between the pairs' cosine similarities and the gold scores."""
    cosine = cosine_rows(first, second)
    return {"spearman": spearman(cosine, gold), "pearson": pearson(cosine, gold)}


@dataclass(frozen=True)
class STSTask:
    """Sentence pairs with a gold similarity, and one instruction or one per pair (used for both sides)."""

    texts1: Sequence[str]
    texts2: Sequence[str]
    scores: Sequence[float]
    instructions: Sequence[str | None] | None = None
    instruction: str | None = None

    name: ClassVar[str] = "sts"
    primary: ClassVar[str] = "spearman"

    def __post_init__(self) -> None:
        n = same_length("STS task", texts1=self.texts1, texts2=self.texts2, scores=self.scores,
                        instructions=self.instructions)
        if n < 2:
            raise InputError("STS task: a correlation needs at least 2 pairs")

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """``spearman`` (primary) and ``pearson`` of the cosine similarities."""
        n = len(self.texts1)
        ins = choose(instruction, self.instructions, self.instruction, n)
        vectors = embed(model, [*self.texts1, *self.texts2], ins * 2, settings)
        return {**sts_scores(vectors[:n], vectors[n:], self.scores), "n": float(n)}


def load_sts(path: str | os.PathLike[str], *, text1_column: str = "sentence1", text2_column: str = "sentence2",
             score_column: str = "score", instruction_column: str | None = None, instruction: str | None = None,
             delimiter: str | None = None, limit: int | None = None, seed: int = 0) -> STSTask:
    """An :class:`STSTask` from a file of pairs (defaults fit STS-B's ``sts-test.jsonl``)."""
    table = read_table(path, delimiter=delimiter)
    table.require(text1_column, text2_column, score_column, instruction_column)
    table = table.sample(limit, seed)
    return STSTask(table.strings(text1_column), table.strings(text2_column), table.floats(score_column),
                   table.optional_strings(instruction_column), instruction)
