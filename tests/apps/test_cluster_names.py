"""Cluster names that tell clusters apart (distinctive answers and words, always unique), answer shares, the
gold labels of each cluster and the metrics named by their label column; the SemEval-14 example (slow)."""

from __future__ import annotations

import csv
import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inbedder.apps.clustering import ClusterSettings, cluster, cluster_vectors
from inbedder.apps.naming import answer_names, normalize_answer, over_represented, word_names
from inbedder.apps.report import html_report


def spread(groups: list[dict[str, int]]) -> tuple[list[str], np.ndarray]:
    """Answers and cluster ids from per-cluster answer counts."""
    answers, ids = [], []
    for c, counts in enumerate(groups):
        for answer, n in counts.items():
            answers += [answer] * n
            ids += [c] * n
    return answers, np.array(ids)


def answer_vectors(ids: np.ndarray, dim: int = 8) -> np.ndarray:
    """Vectors that k-means splits exactly by ``ids`` (one far-apart direction per cluster, a little noise)."""
    rng = np.random.default_rng(0)
    return np.eye(dim)[ids] * 10 + rng.normal(scale=0.1, size=(len(ids), dim))


# -- answer families ------------------------------------------------------------------------------------------
# The case: one answer is the most frequent of every cluster ("food" for 243 of 300 reviews)
DOMINATED = [{"food": 140, "service": 3, "ambience": 2, "price": 1}, {"food": 50, "ambience": 4, "price": 4,
             "pizza": 2}, {"food": 25, "service": 20, "ambience": 1}, {"food": 20, "ambience": 8, "service": 2},
             {"food": 8, "price": 5, "service": 4, "ambience": 1}]


def test_a_distinctive_answer_beats_a_globally_frequent_one() -> None:
    answers, ids = spread(DOMINATED)
    assert Counter(answers).most_common(1)[0][0] == "food"
    assert all(Counter(a for a, i in zip(answers, ids, strict=True) if i == c).most_common(1)[0][0] == "food"
               for c in range(5))  # the most frequent answer of every cluster: it named them all before
    names = [n.name for n in answer_names(answers, ids)]
    assert names[0] == "food"  # 96% food against 81% overall: food is what sets it apart
    assert names[2:] == ["service", "ambience", "price"]  # 43% service vs 10%, 27% ambience vs 5%, 28% price vs 3%
    assert len(set(names)) == 5


def test_a_rare_answer_does_not_name_a_cluster() -> None:
    answers, ids = spread(DOMINATED)
    naming = answer_names(answers, ids)[1]  # 'pizza' twice, only here: not enough to name it
    assert naming.terms[0] == "food" and naming.name != "pizza"
    assert "no answer stands out here" in naming.why
    assert naming.name.startswith("food / ")  # cluster 0 is 'food': this one gets a second term
    # a singleton answer seen only in a small cluster is not over-represented either
    answers, ids = spread([{"food": 9, "sushi": 1}, {"food": 10, "service": 10}])
    assert answer_names(answers, ids)[0].name == "food"


def test_over_representation_needs_evidence_not_just_a_ratio() -> None:
    from scipy.stats import fisher_exact

    # all of an answer in one cluster: twice is chance (p > 0.01), three times in a small cluster is not
    twice, thrice = (float(over_represented(np.array([n, 60.0 - n]), np.array([n, 300.0 - n]))[0]) for n in (2, 3))
    assert thrice < 0.01 < twice < 0.05
    big = float(over_represented(np.array([3.0, 147.0]), np.array([3.0, 297.0]))[0])  # half the texts: chance
    assert big > 0.1
    counts, together = np.array([8.0, 4.0]), np.array([10.0, 30.0])  # agrees with Fisher's exact test
    table = [[8, 4], [2, 26]]
    assert over_represented(counts, together)[0] == pytest.approx(fisher_exact(table, "greater")[1])


def test_a_shared_name_gets_the_answer_that_tells_the_clusters_apart() -> None:
    answers, ids = spread([{"food": 10, "price": 3}, {"food": 10, "ambience": 3}, {"service": 12, "food": 1}])
    names = answer_names(answers, ids)
    assert [n.name for n in names] == ["food / price", "food / ambience", "service"]
    assert "'price' tells it from cluster 1 (also 'food')" in names[0].why


def test_the_cluster_a_shared_name_fits_best_keeps_it_alone() -> None:
    answers, ids = spread(DOMINATED[:2])  # both 'food'; food sets the first apart, not the second
    assert [n.name for n in answer_names(answers, ids)][0] == "food"


def test_an_answer_rarer_here_than_overall_does_not_name_a_cluster() -> None:
    singles = {f"dish {i}": 1 for i in range(12)}
    answers, ids = spread([{"food": 200, "friendly": 1}, {"food": 14, "friendly": 3, "comfort": 2, **singles}])
    naming = answer_names(answers, ids)[1]  # food: 45% here, 87% overall; friendly: 10% here, 2% overall
    assert naming.name == "friendly" and "most frequent not rarer answer, 'friendly'" in naming.why


def test_words_of_the_texts_tell_apart_clusters_with_the_same_answers() -> None:
    texts = ["the bread is great", "great bread here", "bread and butter", "the waiter was rude",
             "rude waiter again", "a rude waiter"]
    x = np.array([[1, 0]] * 3 + [[0, 1]] * 3, dtype=np.float32) + np.arange(6)[:, None] * 0.01
    result = cluster_vectors(x, texts, ClusterSettings(k=2), answers=["Food"] * 6)
    assert [c.name for c in result.clusters] == ["food / bread", "food / rude"]
    assert "'bread' tells it from cluster 1 (also 'food'): its most distinctive word" in result.clusters[0].explanation


@pytest.mark.parametrize("seed", range(12))
def test_answer_names_are_always_unique(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    vocab = ["food", "service", "price", "", "Food ", "ambience"][: int(rng.integers(1, 7))]
    answers = [str(a) for a in rng.choice(vocab, size=60, p=None)]
    ids = np.concatenate([np.arange(k), rng.integers(0, k, size=60 - k)])
    names = [n.name for n in answer_names(answers, ids)]
    assert len(names) == k and len(set(names)) == k, names


def test_clusters_with_the_same_answers_get_numbered_names() -> None:
    names = [n.name for n in answer_names(["same"] * 9, np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]))]
    assert names == ["same", "same #1", "same #2"]
    assert [n.name for n in answer_names(["", " "], np.array([0, 1]))] == ["(empty answer)", "(empty answer) #1"]


# -- encoder families -----------------------------------------------------------------------------------------
def test_word_names_that_collide_get_a_distinguishing_word_then_a_number() -> None:
    texts = ["apple banana cherry date", "apple banana cherry egg", "zebra lion tiger"]
    ids = np.array([0, 1, 2])
    shared = [("apple", 1.0), ("banana", 0.9), ("cherry", 0.8)]
    names = word_names(texts, ids, {0: shared, 1: shared, 2: [("lion", 1.0)]})
    assert [n.name for n in names] == ["apple, banana, cherry / date", "apple, banana, cherry / egg", "lion"]
    same = word_names(["apple pie", "apple pie"], np.array([0, 1]), {0: shared, 1: shared})
    assert [n.name for n in same] == ["apple, banana, cherry", "apple, banana, cherry #1"]


def test_identical_texts_in_two_clusters_still_get_unique_names() -> None:
    texts = ["red apple", "red apple", "fast car", "fast car", "green tea", "green tea"]
    x = np.array([[1, 0, 0], [1, 0, 0.01], [0, 1, 0], [0, 1, 0.01], [0, 0, 1], [0.01, 0, 1]], dtype=np.float32)
    result = cluster_vectors(x, texts, ClusterSettings(k=6))
    names = [c.name for c in result.clusters]
    assert len(set(names)) == 6, names
    assert [name.split(" #")[-1] for name in names[1::2]] == [str(c.id) for c in result.clusters[1::2]]


# -- shares and gold labels -----------------------------------------------------------------------------------
def test_table_summary_and_report_show_answer_shares_and_the_gold_labels_of_each_cluster() -> None:
    answers, ids = spread(DOMINATED)
    gold = ["food" if a in ("food", "pizza") else "other" for a in answers]
    gold[:10] = ["price"] * 10
    result = cluster_vectors(answer_vectors(ids), [f"review {i}" for i in range(len(ids))], ClusterSettings(k=5),
                             answers=answers, labels=gold, label_name="category")
    assert result.labels.tolist() == ids.tolist()  # the vectors split the clusters exactly as given
    for c in result.clusters:
        members = np.flatnonzero(ids == c.id)
        want = Counter(gold[i] for i in members)
        assert dict(c.gold_labels) == want and sum(n for _, n in c.gold_labels) == c.size
        assert [n for _, n in c.gold_labels] == sorted(want.values(), reverse=True)
        assert c.answers[0] == Counter(answers[i] for i in members).most_common(1)[0]
    first = result.clusters[0]
    assert first.answer_shares() == "'food' 96%, 'service' 2%, 'ambience' 1%, other 1%"
    assert first.gold_label_shares() == "food 130 (89%), price 10 (7%), other 6 (4%)"
    table = result.table()
    assert table.splitlines()[2:4] == [" " * 12 + "answers: 'food' 96%, 'service' 2%, 'ambience' 1%, other 1%",
                                       " " * 12 + "category: food 130 (89%), price 10 (7%), other 6 (4%)"]
    assert "| vs category: v_measure=" in table.splitlines()[-1]
    summary = json.loads(json.dumps(result.summary()))
    assert summary["metrics_against"] == "category" and summary["metrics"]["v_measure"] == result.metrics["v_measure"]
    assert summary["answers"][0] == {"answer": "food", "count": 243, "share": 243 / 300}
    clusters = summary["clusters"]
    assert clusters[2]["answers"][1] == {"answer": "service", "count": 20, "share": 20 / 46}
    assert clusters[0]["gold_labels"][0] == {"label": "food", "count": 130, "share": 130 / 146}
    assert len({c["name"] for c in clusters}) == 5
    page = html_report(result, command="inbedder cluster ...")
    assert "v-measure vs category" in page and "<th>category (gold labels)</th>" in page
    assert html.escape("'service' 43%") in page and "food 130 (89%)" in page


def test_without_labels_nothing_is_said_about_them() -> None:
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    result = cluster_vectors(x, ["a b", "a c", "d e", "d f"], ClusterSettings(k=2))
    assert result.metrics is None and result.label_name is None and all(c.gold_labels == () for c in result.clusters)
    assert result.summary()["metrics_against"] is None and "vs " not in result.table()
    assert result.table().count("\n") == 3  # header, two clusters, scores
    assert "gold labels" not in html_report(result, command="x")


def test_labels_without_a_name_are_called_labels(tiny_bert: Any) -> None:
    result = cluster(["apple pie", "apple tart", "car engine", "car wheel"], tiny_bert, k=2,
                     labels=["fruit", "fruit", "car", "car"])
    assert result.label_name == "labels" and "| vs labels: v_measure=" in result.table()
    named = cluster(["apple pie", "apple tart", "car engine", "car wheel"], tiny_bert, k=2,
                    labels=["fruit", "fruit", "car", "car"], label_name="topic")
    assert named.label_name == "topic" and all("topic: " in line for line in named.table().splitlines()[2:5:2])


# -- the SemEval-14 example -----------------------------------------------------------------------------------
SEMEVAL_QUESTION = "What aspect of the restaurant is this review about?"


def semeval_rows(n: int = 300) -> list[dict[str, str]]:
    """The first ``n`` SemEval-14 restaurant test sentences with one aspect category (INBEDDER_DATA, or the
    shared data folder next to the checkout)."""
    root = Path(os.environ.get("INBEDDER_DATA") or Path(__file__).parents[3] / "shared" / "data")
    path = root / "semeval14_absa" / "restaurants_test_single_category.csv"
    if not path.is_file():
        pytest.skip(f"{path} is missing: set INBEDDER_DATA to the public datasets folder")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))[:n]


@pytest.mark.slow  # the default answer model generates an answer for 300 reviews: minutes on a CPU
def test_semeval_clusters_under_an_aspect_question_get_distinct_names() -> None:
    import inbedder

    rows = semeval_rows()
    categories = [r["category"] for r in rows]
    k = len(set(categories))
    model = inbedder.load(inbedder.DEFAULT_ANSWER_MODEL)
    result = cluster([r["text"] for r in rows], model, SEMEVAL_QUESTION, k=k, labels=categories,
                     label_name="category")
    names = [c.name for c in result.clusters]
    print(result.table())
    assert len(names) == k and len(set(names)) == k, names
    assert result.answers is not None
    for c in result.clusters:  # each name starts with an answer given in its cluster
        given = {normalize_answer(result.answers[i]) or "(empty answer)" for i in np.flatnonzero(result.labels == c.id)}
        assert c.name.split(" / ")[0].split(" #")[0] in given
    assert result.metrics is not None and result.label_name == "category"
