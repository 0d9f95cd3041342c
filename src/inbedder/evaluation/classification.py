"""Classification probes on frozen vectors: k-NN (cosine) and logistic regression, accuracy and macro-F1.

The train/test split is given (two files) or made from one file with a seed (stratified when every label
has at least two texts).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..io.table import read_table
from .common import EvalSettings, TextEncoder, embed, same_length, sklearn

KNN_K = 5
TEST_SIZE = 0.2
MAX_ITER = 1000


def probe_scores(train: np.ndarray, train_labels: Sequence[str], test: np.ndarray, test_labels: Sequence[str], *,
                 k: int = KNN_K, seed: int = 0, max_iter: int = MAX_ITER) -> dict[str, float]:
    """Accuracy and macro-F1 of a cosine k-NN classifier and of a logistic-regression probe."""
    sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.neighbors import KNeighborsClassifier

    out: dict[str, float] = {}
    knn = KNeighborsClassifier(n_neighbors=min(k, len(train)), metric="cosine").fit(train, train_labels)
    logreg = LogisticRegression(max_iter=max_iter, random_state=seed).fit(train, train_labels)
    for name, probe in (("knn", knn), ("logreg", logreg)):
        predicted = probe.predict(test)
        out[f"{name}_accuracy"] = float(accuracy_score(test_labels, predicted))
        out[f"{name}_macro_f1"] = float(f1_score(test_labels, predicted, average="macro", zero_division=0))
    return out


def split(labels: Sequence[str], test_size: float = TEST_SIZE, seed: int = 0) -> tuple[list[int], list[int]]:
    """Train and test row indices, stratified by label when every label has two or more rows."""
    sklearn()
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise InputError(f"test_size must be between 0 and 1; got {test_size}")
    counts = Counter(labels)
    stratify = list(labels) if min(counts.values()) >= 2 and len(labels) * test_size >= len(counts) else None
    train, test = train_test_split(list(range(len(labels))), test_size=test_size, random_state=seed,
                                   stratify=stratify)
    return sorted(train), sorted(test)


@dataclass(frozen=True)
class ClassificationTask:
    """Train and test texts with labels; one instruction for all texts."""

    train_texts: Sequence[str]
    train_labels: Sequence[str]
    test_texts: Sequence[str]
    test_labels: Sequence[str]
    instruction: str | None = None
    k: int = KNN_K

    name: ClassVar[str] = "classification"
    primary: ClassVar[str] = "logreg_accuracy"

    def __post_init__(self) -> None:
        same_length("classification task (train)", texts=self.train_texts, labels=self.train_labels)
        same_length("classification task (test)", texts=self.test_texts, labels=self.test_labels)
        if len(set(self.train_labels)) < 2:
            raise InputError("classification task: the training rows need at least 2 different labels")
        if self.k < 1:
            raise InputError(f"classification task: k must be >= 1; got {self.k}")

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """``logreg_accuracy`` (primary), ``logreg_macro_f1``, ``knn_accuracy`` and ``knn_macro_f1``."""
        settings = settings or EvalSettings()
        ins = instruction if instruction is not None else self.instruction
        n = len(self.train_texts)
        vectors = embed(model, [*self.train_texts, *self.test_texts], ins, settings)
        scores = probe_scores(vectors[:n], self.train_labels, vectors[n:], self.test_labels, k=self.k,
                              seed=settings.seed)
        return {**scores, "n_train": float(n), "n_test": float(len(self.test_texts))}


def load_classification(path: str | os.PathLike[str], *, test_path: str | os.PathLike[str] | None = None,
                        text_column: str = "text", label_column: str = "label", instruction: str | None = None,
                        delimiter: str | None = None, limit: int | None = None, test_size: float = TEST_SIZE,
                        seed: int = 0) -> ClassificationTask:
    """A :class:`ClassificationTask` from a train file and a test file, or from one file split with ``seed``.

    ``limit`` keeps at most that many rows of each file (chosen with ``seed``).
    """
    table = read_table(path, delimiter=delimiter)
    table.require(text_column, label_column)
    table = table.sample(limit, seed)
    texts, labels = table.strings(text_column), table.labels(label_column)
    if test_path is None:
        train, test = split(labels, test_size, seed)
        return ClassificationTask([texts[i] for i in train], [labels[i] for i in train],
                                  [texts[i] for i in test], [labels[i] for i in test], instruction)
    test_table = read_table(test_path, delimiter=delimiter)
    test_table.require(text_column, label_column)
    test_table = test_table.sample(limit, seed)
    return ClassificationTask(texts, labels, test_table.strings(text_column), test_table.labels(label_column),
                              instruction)
