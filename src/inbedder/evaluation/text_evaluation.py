"""Text evaluation (Billboard style): score each candidate by its best cosine to its references, and
correlate those scores with human judgements.

>>> import numpy as np
>>> best_reference_cosine(np.array([[1.0, 0]]), np.array([[0.0, 1], [1, 1]]), [[0, 1]]).round(4).tolist()
[0.7071]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..io.table import read_table
from .common import EvalSettings, TextEncoder, choose, embed, pearson, same_length, spearman, unit


def best_reference_cosine(candidates: np.ndarray, references: np.ndarray,
                          groups: Sequence[Sequence[int]]) -> np.ndarray:
    """For each candidate, the highest cosine to the reference rows listed in ``groups[i]``."""
    c, r = unit(candidates), unit(references)
    return np.array([float(np.max(r[list(g)] @ c[i])) for i, g in enumerate(groups)])


@dataclass(frozen=True)
class TextEvaluationTask:
    """Candidates, their references (one or more each) and a human score; one instruction or one per row."""

    candidates: Sequence[str]
    references: Sequence[Sequence[str]]
    scores: Sequence[float]
    instructions: Sequence[str | None] | None = None
    instruction: str | None = None

    name: ClassVar[str] = "text_evaluation"
    primary: ClassVar[str] = "pearson"

    def __post_init__(self) -> None:
        n = same_length("text evaluation task", candidates=self.candidates, references=self.references,
                        scores=self.scores, instructions=self.instructions)
        if n < 2:
            raise InputError("text evaluation task: a correlation needs at least 2 candidates")
        for i, refs in enumerate(self.references):
            if not refs:
                raise InputError(f"text evaluation task: candidate {i} has no reference")

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """``pearson`` (primary) and ``spearman`` of the best reference cosine against the human scores."""
        n = len(self.candidates)
        ins = choose(instruction, self.instructions, self.instruction, n)
        texts, row_ins, groups = list(self.candidates), list(ins), []
        for i, refs in enumerate(self.references):
            groups.append(range(len(texts) - n, len(texts) - n + len(refs)))
            texts += refs
            row_ins += [ins[i]] * len(refs)
        vectors = embed(model, texts, row_ins, settings)
        best = best_reference_cosine(vectors[:n], vectors[n:], groups)
        return {"pearson": pearson(best, self.scores), "spearman": spearman(best, self.scores), "n": float(n)}


def load_text_evaluation(path: str | os.PathLike[str], *, candidate_column: str = "candidate",
                         reference_columns: Sequence[str] = ("references",), score_column: str = "score",
                         instruction_column: str | None = None, instruction: str | None = None,
                         delimiter: str | None = None, limit: int | None = None,
                         seed: int = 0) -> TextEvaluationTask:
    """A :class:`TextEvaluationTask` from a file; each reference column holds a text or a JSON list of texts."""
    table = read_table(path, delimiter=delimiter)
    table.require(candidate_column, score_column, instruction_column, *reference_columns)
    table = table.sample(limit, seed)
    columns = [table.string_lists(c) for c in reference_columns]
    references = [[ref for column in columns for ref in column[i]] for i in range(len(table))]
    return TextEvaluationTask(table.strings(candidate_column), references, table.floats(score_column),
                              table.optional_strings(instruction_column), instruction)
