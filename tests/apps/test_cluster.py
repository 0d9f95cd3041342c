"""Clustering: k selection, c-TF-IDF and answer names, nearest texts, metrics, and the embed → cluster path."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inbedder.apps.clustering import ClusterSettings, cluster, cluster_vectors, ctfidf_keywords, label_metrics
from inbedder.errors import InputError, InputTypeError

CORPUS = {  # a hand-made corpus with two obvious topics
    "fruit": ["red apple pie with cream", "green apple tart", "banana and apple smoothie", "apple orchard harvest",
              "ripe banana bread"],
    "cars": ["fast red car on the road", "slow car engine noise", "electric car battery", "car tyres and wheels",
             "a diesel engine for the truck"],
}


def blobs(k: int, per: int = 25, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Well-separated Gaussian blobs: k centres far apart, small noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 10
    x = np.concatenate([c + rng.normal(size=(per, dim)) for c in centres]).astype(np.float32)
    return x, [i // per for i in range(k * per)]


# -- names ----------------------------------------------------------------------------------------------------
def test_ctfidf_names_each_topic_by_its_own_words() -> None:
    texts = CORPUS["fruit"] + CORPUS["cars"]
    labels = np.array([0] * 5 + [1] * 5)
    words = ctfidf_keywords(texts, labels, n_words=3)
    assert [w for w, _ in words[0]] == ["apple", "banana", "bread"]
    assert [w for w, _ in words[1]] == ["car", "engine", "battery"]
    assert all(a >= b for (_, a), (_, b) in zip(words[0], words[0][1:], strict=False))  # best first
    assert "the" not in {w for w, _ in words[1]} and "and" not in {w for w, _ in words[0]}  # stop words dropped


def test_ctfidf_prefers_words_distinctive_of_a_cluster_over_frequent_shared_ones() -> None:
    texts = ["data cat", "data cat", "data dog", "data dog"]  # 'data' is everywhere: not distinctive
    words = ctfidf_keywords(texts, np.array([0, 0, 1, 1]), n_words=1)
    assert words == {0: [("cat", pytest.approx(0.5 * np.log1p(4 / 2)))],
                     1: [("dog", pytest.approx(0.5 * np.log1p(4 / 2)))]}


def test_ctfidf_falls_back_when_a_corpus_is_only_stop_words_or_numbers() -> None:
    assert [w for w, _ in ctfidf_keywords(["the of", "and the"], np.array([0, 1]), 2)[0]] == ["of", "the"]
    assert ctfidf_keywords(["1 2", "3 4"], np.array([0, 1]), 2) == {0: [], 1: []}
    result = cluster_vectors(np.eye(2), ["1 2", "3 4"], ClusterSettings(k=2))
    assert [c.name for c in result.clusters] == ["cluster 0", "cluster 1"]


def test_answer_families_are_named_by_their_answers_with_shares() -> None:
    class AnswerModel:  # what cluster() needs from an answer family: encode(..., return_generations=True)
        name = "stub"

        class encoder:  # noqa: N801
            answers = True

        def encode(self, texts: list[str], instruction: Any = None, return_generations: bool = False,
                   **kwargs: Any) -> Any:
            assert return_generations and instruction == "What is the animal?"
            vectors = np.array([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts])
            answers = ["Cat" if "cat" in t else " dog " for t in texts]
            answers[0] = "kitten"
            return vectors, answers

    texts = ["a cat sat", "my cat", "the cat ran", "cat food", "a dog", "dog park", "big dog"]
    result = cluster(texts, AnswerModel(), "What is the animal?", k=2)
    assert [c.name for c in result.clusters] == ["cat", "dog"]  # answers are compared stripped and lower-cased
    assert result.clusters[0].answers == (("cat", 3), ("kitten", 1))
    assert result.clusters[0].explanation.startswith("answers: 'cat' 75%, 'kitten' 25%; ")  # shares, then why
    assert [row["answer"] for row in result.rows()][:2] == ["kitten", "Cat"]


@pytest.mark.slow  # builds a tiny masked LM: about 10 s
def test_a_real_answer_family_gives_its_generations_as_names(tmp_path: Path) -> None:
    tiny_lms = pytest.importorskip("helpers.tiny_lms")
    from inbedder import load

    model = load(tiny_lms.build_tiny_roberta_mlm(tmp_path / "mlm"), device="cpu")
    texts = ["I love cat!", "I dislike dog!", "The quick brown fox", "Parton energy loss", "The funds rose"]
    result = cluster(texts, model, "What is the animal mentioned here?", k=2)
    _, answers = model.encode(texts, instruction="What is the animal mentioned here?", return_generations=True)
    for c in result.clusters:
        members = [" ".join(answers[i].split()).lower() for i in np.flatnonzero(result.labels == c.id)]
        assert c.name == max(sorted(set(members)), key=members.count) or (c.name == "(empty answer)")


# -- choosing k, ordering, nearest texts, metrics -------------------------------------------------------------
@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
@pytest.mark.parametrize("true_k", [3, 5])
def test_auto_k_picks_the_number_of_well_separated_blobs(method: str, true_k: int) -> None:
    x, gold = blobs(true_k, seed=true_k)
    result = cluster_vectors(x, [f"t{i}" for i in range(len(x))], ClusterSettings(method=method, auto_k=range(2, 9)),
                             labels=gold)
    assert result.k == true_k
    assert max(result.k_scores, key=result.k_scores.__getitem__) == true_k
    assert set(result.k_scores) == set(range(2, 9))
    assert result.metrics is not None and result.metrics["v_measure"] == pytest.approx(1.0)
    assert result.metrics["ari"] == pytest.approx(1.0)


def test_clusters_are_numbered_by_size_and_list_the_texts_nearest_the_centre() -> None:
    x = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0.8, 0.2], [0, 1], [0.1, 0.9]], dtype=np.float32)
    texts = ["a", "b", "c", "d", "e", "f"]
    result = cluster_vectors(x, texts, ClusterSettings(k=2, n_examples=2))
    assert result.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert [c.size for c in result.clusters] == [4, 2]
    centre = x[:4] / np.linalg.norm(x[:4], axis=1, keepdims=True)
    nearest = np.argsort(-(centre @ centre.mean(axis=0)))[:2]
    assert result.clusters[0].examples == tuple(texts[i] for i in nearest)
    assert result.silhouette > 0.5
    rows = list(result.rows(ids=["x", None, "z", None, None, None]))
    assert rows[0] == {"index": 0, "id": "x", "text": "a", "cluster": 0, "cluster_name": result.clusters[0].name}
    assert "id" not in rows[1]
    summary = result.summary()
    assert summary["k"] == 2 and summary["n_texts"] == 6 and len(summary["clusters"]) == 2
    assert "silhouette=" in result.table() and result.table().count("\n") == 3


def test_duplicate_texts_are_listed_once_among_the_nearest() -> None:
    x = np.array([[1, 0], [1, 0], [0.9, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    result = cluster_vectors(x, ["same", "same", "other", "p", "q"], ClusterSettings(k=2, n_examples=3))
    assert result.clusters[0].examples == ("same", "other")


def test_label_metrics_match_scikit_learn() -> None:
    from sklearn import metrics

    gold, pred = ["a", "a", "b", "b", "c", "c"], [0, 0, 1, 1, 1, 2]
    got = label_metrics(gold, pred)
    assert got["v_measure"] == pytest.approx(metrics.v_measure_score(gold, pred))
    assert got["ari"] == pytest.approx(metrics.adjusted_rand_score(gold, pred))
    assert list(got)[0] == "v_measure"  # the primary metric comes first


# -- the embed → cluster path on a tiny model ------------------------------------------------------------------
def test_cluster_embeds_under_the_instruction_and_is_callable_from_the_package(tiny_bert: Any, tmp_path: Path) -> None:
    import inbedder

    texts = CORPUS["fruit"] + CORPUS["cars"]
    result = cluster(texts, tiny_bert, "Represent the topic:", k=2, seed=1)
    vectors = tiny_bert.encode(texts, instruction="Represent the topic:")
    again = cluster_vectors(vectors, texts, ClusterSettings(k=2, seed=1))
    assert result.labels.tolist() == again.labels.tolist()
    assert result.instruction == "Represent the topic:" and result.model == tiny_bert.name
    np.testing.assert_allclose(result.vectors, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)
    assert inbedder.cluster is cluster and inbedder.cluster(texts, tiny_bert, k=2).k == 2


def test_cluster_uses_the_persistent_cache(tiny_bert: Any, tmp_path: Path) -> None:
    from inbedder.cache import EmbeddingCache

    texts = CORPUS["fruit"]
    store = tmp_path / "cache.sqlite"
    first = cluster(texts, tiny_bert, "Represent the topic:", k=2, cache=str(store))
    second = cluster(texts, tiny_bert, "Represent the topic:", k=2, cache=str(store))
    assert first.labels.tolist() == second.labels.tolist()
    stats = EmbeddingCache(store).stats()
    assert stats["rows"] == len(texts) and stats["last_run"]["hits"] == len(texts)


@pytest.mark.parametrize("kwargs, error, needles", [
    ({"k": 20}, InputError, ["k=20", "number of texts (4)"]),
    ({"k": 0}, InputError, ["positive int"]),
    ({"k": 2, "auto_k": range(2, 4)}, InputError, ["not both"]),
    ({"auto_k": range(5, 9)}, InputError, ["below the number of texts (4)"]),
    ({"auto_k": [1, 2]}, InputError, ["auto_k", ">= 2"]),
    ({"method": "kmean"}, InputError, ["'kmean'", "Did you mean 'kmeans'"]),
    ({"labels": ["a"]}, InputError, ["1 labels for 4 texts"]),
    ({"n_examples": -1}, InputError, ["n_examples"]),
])
def test_bad_settings_say_what_is_valid(tiny_bert: Any, kwargs: dict[str, Any], error: type[Exception],
                                        needles: list[str]) -> None:
    with pytest.raises(error) as info:
        cluster(["a", "b", "c", "d"], tiny_bert, **kwargs)
    for needle in needles:
        assert needle in str(info.value)


def test_bad_texts_are_refused(tiny_bert: Any) -> None:
    with pytest.raises(InputError, match="at least 2 texts"):
        cluster(["only one"], tiny_bert, k=1)
    with pytest.raises(InputTypeError, match="row 1 must be a str"):
        cluster(["a", 5], tiny_bert, k=1)
    with pytest.raises(InputTypeError, match="list of str"):
        cluster("a b c", tiny_bert, k=1)


# -- the CLI: checks before any load, labels named --------------------------------------------------------------
@pytest.fixture()
def no_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Model loads by ``inbedder cluster`` (none may happen: each is recorded and refused)."""
    from inbedder.cli import cluster as cluster_command

    loaded: list[str] = []

    def load_model(model: str, *_: Any, **__: Any) -> Any:
        loaded.append(model)
        raise AssertionError(f"{model} was loaded before the input was checked")

    monkeypatch.setattr(cluster_command, "load_model", load_model)
    monkeypatch.setenv("INBEDDER_CACHE", str(tmp_path / "cache.sqlite"))  # never the user's cache
    return loaded


@pytest.mark.parametrize("args, needle", [
    (["-m", "minilm", "-k", "3", "a", "b"], "k=3 is more than the number of texts (2)"),
    (["-m", "minilm", "--auto-k", "4-6", "a", "b", "c"], "auto_k needs at least one k below the number of texts (3)"),
    (["-m", "minilm", "a", "b"], "auto_k needs at least one k below the number of texts (2)"),
    (["-m", "minilm", "-k", "1", "a"], "clustering needs at least 2 texts; got 1"),
    (["-m", "minilm", "-k", "3", "a", "b", "--instruction", "x?", "--instruction", "y?"],
     "k=3 is more than the number of texts (2)"),
    (["-m", "minilm", "-k", "9", "-i", "{topics}", "--label-column", "topic"], "k=9 is more than the number of texts"),
    (["-m", "minilm", "-k", "2", "-i", "{topics}", "--label-column", "topik"], "column 'topik'"),
    (["-m", "minlm", "-k", "2", "a", "b", "c"], "Did you mean 'minilm'"),
    (["-m", "./no/such/dir", "-k", "5", "a", "b"], "unknown model './no/such/dir'"),
    (["-m", "minilm", "-k", "2", "a", "b", "--dtype", "float8"], "'float8'"),
    (["-m", "minilm", "-k", "2", "a", "b", "--batch-size", "0"], "batch_size must be a positive int"),
])
def test_cli_checks_input_and_k_before_loading_a_model(no_load: list[str], tmp_path: Path, args: list[str],
                                                       needle: str) -> None:
    from click.testing import CliRunner

    from inbedder.cli import main

    topics = tmp_path / "topics.jsonl"
    topics.write_text("".join(f'{{"text": "t{i}", "topic": "{i % 2}"}}\n' for i in range(4)), encoding="utf-8")
    result = CliRunner().invoke(main, ["cluster", *[a.replace("{topics}", str(topics)) for a in args]])
    assert result.exit_code == 1, result.output
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert no_load == []


def test_cli_label_column_names_the_metrics_and_lists_each_clusters_labels(tiny_bert_dir: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from inbedder.cli import main

    monkeypatch.setenv("INBEDDER_CACHE", str(tmp_path / "cache.sqlite"))
    texts = CORPUS["fruit"] + CORPUS["cars"]
    source = tmp_path / "topics.jsonl"
    source.write_text("".join(json.dumps({"text": t, "topic": "fruit" if i < 5 else "cars"}) + "\n"
                              for i, t in enumerate(texts)), encoding="utf-8")
    result = CliRunner().invoke(main, ["cluster", "-m", str(tiny_bert_dir), "-i", str(source), "-k", "2",
                                       "--label-column", "topic", "--summary", str(tmp_path / "s.json"),
                                       "--report", str(tmp_path / "r.html"), "--no-cache"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert summary["metrics_against"] == "topic"
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    for c in summary["clusters"]:
        gold = Counter(r["label"] for r in rows if r["cluster"] == c["id"])
        assert {g["label"]: g["count"] for g in c["gold_labels"]} == dict(gold)
        ordered = sorted(gold.items(), key=lambda item: (-item[1], item[0]))  # most frequent first, then by name
        shown = ", ".join(f"{g} {n} ({n / c['size']:.0%})" for g, n in ordered)
        assert f"topic: {shown}" in result.stderr  # the table on stderr
    assert "| vs topic: v_measure=" in result.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "v-measure vs topic" in page and "topic (gold labels)" in page


@pytest.mark.parametrize("kwargs, needle", [({"k": 5}, "k=5 is more than the number of texts (3)"),
                                            ({"auto_k": range(3, 6)}, "auto_k needs at least one k below"),
                                            ({"k": 2, "labels": ["a"]}, "1 labels for 3 texts")])
def test_the_library_checks_k_and_labels_before_embedding(kwargs: dict[str, Any], needle: str) -> None:
    from inbedder.apps.clustering import cluster_each

    class Refuses:
        def encode(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("embedded before the settings were checked")

    for run in (lambda: cluster(["a", "b", "c"], Refuses(), **kwargs),
                lambda: cluster_each(["a", "b", "c"], Refuses(), ["q1", "q2"], **kwargs)):
        with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            run()
