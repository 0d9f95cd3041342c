"""Retrieval on a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): nDCG@10, MRR@10, recall@100.

Documents are ranked by cosine similarity to the query. nDCG uses the graded relevance as the gain
(``rel / log2(rank + 1)``, as trec_eval does) and the ideal ordering of all judged documents; MRR and recall
count a document as relevant when its grade is above 0. Queries without a relevant document are skipped.

>>> retrieval_scores({"q": ["d2", "d1"]}, {"q": {"d1": 1}})["mrr@10"]
0.5
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import InputError, did_you_mean
from ..io.table import read_table
from .common import EvalSettings, TextEncoder, embed, unit

Qrels = Mapping[str, Mapping[str, int]]


def ndcg_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of one ranking: DCG of the top k over the DCG of the ideal top k."""
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top k (0 when there is none)."""
    return next((1.0 / (rank + 1) for rank, doc in enumerate(ranked[:k]) if judged.get(doc, 0) > 0), 0.0)


def recall_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def retrieval_scores(run: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, MRR@10, recall@10 and recall@100 over the queries of ``run`` with a relevant document."""
    queries = [q for q in run if any(g > 0 for g in qrels.get(q, {}).values())]
    if not queries:
        raise InputError("retrieval: no query of the run has a relevant document in the qrels")
    metrics = {"ndcg@10": (ndcg_at, 10), "mrr@10": (mrr_at, 10), "recall@10": (recall_at, 10),
               "recall@100": (recall_at, 100)}
    out = {name: float(np.mean([fn(run[q], qrels[q], k) for q in queries])) for name, (fn, k) in metrics.items()}
    out["queries"] = float(len(queries))
    return out


def rank(queries: np.ndarray, documents: np.ndarray, doc_ids: Sequence[str], top: int = 100,
         chunk: int = 256) -> list[list[str]]:
    """The ids of the ``top`` documents for each query, by cosine similarity, best first."""
    docs = unit(documents)
    top = min(top, len(doc_ids))
    out: list[list[str]] = []
    for start in range(0, len(queries), chunk):
        scores = unit(queries[start:start + chunk]) @ docs.T
        best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        for row, candidates in zip(scores, best, strict=True):
            order = candidates[np.argsort(-row[candidates], kind="stable")]
            out.append([doc_ids[i] for i in order])
    return out


@dataclass(frozen=True)
class RetrievalTask:
    """A corpus, queries and graded judgements; documents and queries take their own instruction."""

    corpus: Mapping[str, str]
    queries: Mapping[str, str]
    qrels: Qrels
    query_instruction: str | None = None
    doc_instruction: str | None = None

    name: ClassVar[str] = "retrieval"
    primary: ClassVar[str] = "ndcg@10"

    def __post_init__(self) -> None:
        if not self.corpus or not self.queries:
            raise InputError("retrieval task: the corpus and the queries must not be empty")

    def evaluate(self, model: TextEncoder, *, instruction: str | None = None,
                 settings: EvalSettings | None = None) -> dict[str, float]:
        """``ndcg@10`` (primary), ``mrr@10``, ``recall@10``, ``recall@100``; ``instruction`` replaces the query's."""
        query_ins = instruction if instruction is not None else self.query_instruction
        doc_ids, query_ids = list(self.corpus), list(self.queries)
        docs = embed(model, [self.corpus[d] for d in doc_ids], self.doc_instruction, settings)
        queries = embed(model, [self.queries[q] for q in query_ids], query_ins, settings)
        run = dict(zip(query_ids, rank(queries, docs, doc_ids), strict=True))
        return {**retrieval_scores(run, self.qrels), "documents": float(len(doc_ids))}


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """``query-id  corpus-id  score`` rows (tab-separated, with a header line) → ``{query: {doc: grade}}``."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            where = f"{os.fspath(path)}: line {reader.line_num}"
            if len(values) < 3:
                raise InputError(f"{where}: expected query-id, corpus-id and score separated by tabs; got {values}")
            try:
                grade = int(float(values[2]))
            except ValueError:
                raise InputError(f"{where}, column 'score': expected an integer grade; got {values[2]!r}") from None
            qrels.setdefault(values[0], {})[values[1]] = grade
    if header is None or not qrels:
        raise InputError(f"{os.fspath(path)}: the file has no rows")
    return qrels


def load_beir(folder: str | os.PathLike[str], *, split: str = "test", query_instruction: str | None = None,
              doc_instruction: str | None = None, limit: int | None = None, seed: int = 0) -> RetrievalTask:
    """A :class:`RetrievalTask` from a BEIR folder; ``limit`` keeps that many judged queries (chosen with ``seed``).

    A document's text is its ``title`` and ``text`` joined by a space.
    """
    root = Path(folder)
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.exists():
            splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
            hint = f" (splits found: {', '.join(splits)}){did_you_mean(split, splits)}" if splits else ""
            raise InputError(f"{needed} not found: a BEIR folder holds corpus.jsonl, queries.jsonl and "
                             f"qrels/<split>.tsv{hint}")
    qrels = read_qrels(qrels_path)
    corpus_table, query_table = read_table(root / "corpus.jsonl"), read_table(root / "queries.jsonl")
    corpus_table.require("_id", "text")
    query_table.require("_id", "text")
    titles = corpus_table.strings("title", allow_empty=True) if "title" in corpus_table.columns else None
    texts = corpus_table.strings("text", allow_empty=True)
    corpus = {doc: (f"{titles[i]} {texts[i]}".strip() if titles else texts[i])
              for i, doc in enumerate(corpus_table.strings("_id"))}
    queries = dict(zip(query_table.strings("_id"), query_table.strings("text"), strict=True))
    wanted = [q for q in queries if q in qrels]
    if not wanted:
        raise InputError(f"{qrels_path}: no query id of queries.jsonl has judgements")
    unknown = {d for q in wanted for d in qrels[q]} - set(corpus)
    if unknown:
        raise InputError(f"{qrels_path}: {len(unknown)} judged document ids are not in corpus.jsonl "
                         f"(e.g. {sorted(unknown)[:3]})")
    if limit is not None and limit < len(wanted):
        wanted = sorted(random.Random(seed).sample(wanted, limit), key=wanted.index)
    return RetrievalTask(corpus, {q: queries[q] for q in wanted}, {q: qrels[q] for q in wanted},
                         query_instruction, doc_instruction)


def write_beir(folder: str | os.PathLike[str], corpus: Mapping[str, str], queries: Mapping[str, str],
               qrels: Qrels, split: str = "test") -> Path:
    """Write a BEIR folder (handy for tests and for turning other data into a retrieval task)."""
    root = Path(folder)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in corpus.items())
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    with open(root / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t{g}\n" for q, docs in qrels.items() for d, g in docs.items())
    return root
