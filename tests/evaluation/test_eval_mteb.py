"""mteb runs inbedder models on tasks built in memory here: no download, results in a temporary folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MTEB_CACHE", str(Path(tempfile.gettempdir()) / "inbedder-test-mteb"))

import mteb  # noqa: E402
from datasets import Dataset, DatasetDict  # noqa: E402
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.abstasks.sts import AbsTaskSTS  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from inbedder.errors import InputError, InputTypeError  # noqa: E402
from inbedder.evaluation.mteb import MTEBEncoder, instructor_instruction  # noqa: E402

ABOUT: dict[str, Any] = {
    "description": "A tiny local task for tests.", "reference": "https://example.org/tiny",
    "dataset": {"path": "local/tiny", "revision": "0"}, "category": "t2t", "eval_splits": ["test"],
    "eval_langs": ["eng-Latn"], "date": ("2026-01-01", "2026-01-02"), "dialect": [], "domains": [],
    "task_subtypes": [], "license": "cc-by-4.0", "annotations_creators": "derived", "modalities": ["text"],
    "sample_creation": "created", "bibtex_citation": "",
}
WORDS = "cat dog sun rain bread river stone music paper green quiet fast tall old blue".split()
RNG = np.random.default_rng(0)
PAIRS = [(" ".join(RNG.choice(WORDS, 4)), " ".join(RNG.choice(WORDS, 5)), float(RNG.integers(0, 6)))
         for _ in range(24)]


class TinySTS(AbsTaskSTS):
    metadata = TaskMetadata(name="TinySTS", type="STS", main_score="cosine_spearman", **ABOUT)
    min_score = 0
    max_score = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        columns = {"sentence1": [p[0] for p in PAIRS], "sentence2": [p[1] for p in PAIRS],
                   "score": [p[2] for p in PAIRS]}
        self.dataset = DatasetDict({"test": Dataset.from_dict(columns)})
        self.data_loaded = True


QUERIES = {"q1": "a cat in the rain", "q2": "bread by the river"}
CORPUS = {"d1": "the cat sat in the rain", "d2": "fresh bread near a river", "d3": "old blue stones"}


class TinyRetrieval(AbsTaskRetrieval):
    metadata = TaskMetadata(name="TinyRetrieval", type="Retrieval", main_score="ndcg_at_10", **ABOUT)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        split = {"queries": Dataset.from_list([{"id": k, "text": v} for k, v in QUERIES.items()]),
                 "corpus": Dataset.from_list([{"id": k, "text": v, "title": ""} for k, v in CORPUS.items()]),
                 "relevant_docs": {"q1": {"d1": 1}, "q2": {"d2": 1}}, "top_ranked": None}
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True


class Recorder:
    """Delegates to a model and records which instruction each text was embedded with."""

    def __init__(self, model: Any):
        self.model, self.name, self.dim = model, "recorder", model.dim
        self.seen: dict[str, str | None] = {}

    def encode(self, texts: list[str], instruction: str | None = None, **options: Any) -> np.ndarray:
        self.seen.update(dict.fromkeys(texts, instruction))
        return self.model.encode(texts, instruction=instruction, **options)


def run(encoder: MTEBEncoder, task: Any, folder: Path) -> dict[str, Any]:
    result = mteb.evaluate(encoder, task, cache=mteb.ResultCache(folder), co2_tracker=False,
                           show_progress_bar=False, overwrite_strategy="always")
    return result.task_results[0].scores["test"][0]


def spearman_of_cosines(model: Any, instruction: str | None) -> float:
    a = model.encode([p[0] for p in PAIRS], instruction=instruction)
    b = model.encode([p[1] for p in PAIRS], instruction=instruction)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(spearmanr([p[2] for p in PAIRS], cos).statistic)


def test_sts_score_matches_an_independent_computation_and_follows_the_instruction(tiny_bert, tmp_path):
    said = "Represent the sentence for comparing meanings:"
    plain = run(MTEBEncoder(tiny_bert), TinySTS(), tmp_path)
    instructed = run(MTEBEncoder(tiny_bert, {"TinySTS": said}), TinySTS(), tmp_path)
    expected_plain, expected_instructed = spearman_of_cosines(tiny_bert, None), spearman_of_cosines(tiny_bert, said)
    assert expected_plain != pytest.approx(expected_instructed, abs=1e-3)  # the instruction changes the vectors
    assert plain["cosine_spearman"] == pytest.approx(expected_plain, abs=1e-6)
    assert instructed["cosine_spearman"] == pytest.approx(expected_instructed, abs=1e-6)
    assert plain["main_score"] == plain["cosine_spearman"]
    # each instruction choice is its own experiment in the results folder
    assert len(list(tmp_path.rglob("TinySTS.json"))) == 2


def test_retrieval_sides_get_their_own_instructions(tiny_bert, tmp_path):
    recorder = Recorder(tiny_bert)
    scores = run(MTEBEncoder(recorder, {"Retrieval": {"query": "Find:", "document": "Be found:"}}), TinyRetrieval(),
                 tmp_path)
    assert {text: recorder.seen[text] for text in QUERIES.values()} == dict.fromkeys(QUERIES.values(), "Find:")
    assert {text: recorder.seen[text] for text in CORPUS.values()} == dict.fromkeys(CORPUS.values(), "Be found:")
    assert 0 < scores["ndcg_at_10"] <= 1

    recorder.seen.clear()
    run(MTEBEncoder(recorder, default="instructor"), TinyRetrieval(), tmp_path)
    assert recorder.seen[QUERIES["q1"]] == instructor_instruction("Retrieval", "query")
    assert recorder.seen[CORPUS["d1"]] == "Represent the document for retrieval:"


def test_which_instruction_applies(tiny_bert):
    sts, retrieval = TinySTS().metadata, TinyRetrieval().metadata
    encoder = MTEBEncoder(tiny_bert, {"STS": "type", "query": "any query", "TinyRetrieval": {"document": "doc"}})
    assert encoder.instruction(sts) == "type"
    assert encoder.instruction(retrieval, "document") == "doc"
    assert encoder.instruction(retrieval, "query") is None  # the task's entry names no query instruction
    assert MTEBEncoder(tiny_bert, {"query": "any query"}).instruction(retrieval, "query") == "any query"
    assert MTEBEncoder(tiny_bert).instruction(sts) is None
    assert MTEBEncoder(tiny_bert, default="instructor").instruction(sts) == \
        "Represent the sentence for semantic similarity:"
    assert MTEBEncoder(tiny_bert, default="task").instruction(sts)  # mteb's prompt for the task type
    meta = MTEBEncoder(tiny_bert, name="tiny").mteb_model_meta
    assert meta.name == "inbedder/tiny" and meta.embed_dim == tiny_bert.dim and len(meta.revision) == 12


def test_bad_instructions_are_named(tiny_bert):
    with pytest.raises(InputError, match=r"instructions\['TinySTS'\] is split"):
        MTEBEncoder(tiny_bert, {"TinySTS": {"query": "q"}}).instruction(TinySTS().metadata)
    with pytest.raises(InputError, match=r"instructions\['X'\]: unknown side\(s\) \['passage'\]"):
        MTEBEncoder(tiny_bert, {"X": {"passage": "p"}})
    with pytest.raises(InputTypeError, match=r"instructions\['X'\] must be a str"):
        MTEBEncoder(tiny_bert, {"X": 3})
    with pytest.raises(InputError, match="default must be one of"):
        MTEBEncoder(tiny_bert, default="instructer")
    with pytest.raises(InputTypeError, match="have encode"):
        MTEBEncoder(object())
    with pytest.raises(InputError, match=r"options \['device'\] are for loading a model by name"):
        MTEBEncoder(tiny_bert, device="cpu")


def test_a_model_name_or_folder_is_loaded(tiny_bert, tiny_bert_dir):
    encoder = MTEBEncoder(tiny_bert_dir, device="cpu")
    assert encoder.model.dim == tiny_bert.dim
    assert encoder.mteb_model_meta.revision == MTEBEncoder(tiny_bert).mteb_model_meta.revision  # same weights
