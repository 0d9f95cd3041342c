"""Evaluation metrics against independent computations (scipy, scikit-learn, hand-checked examples)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from inbedder.errors import InputError
from inbedder.evaluation import (
    AwarenessTask,
    ClassificationTask,
    ClusteringTask,
    EvalSettings,
    STSTask,
    TextEvaluationTask,
    TripletTask,
    heatmap,
    load_awareness,
    load_beir,
    load_classification,
    load_sts,
    load_text_evaluation,
    load_triplets,
    make_result,
    measure_latency,
    read_result,
    report,
    robustness,
    write_result,
)
from inbedder.evaluation.clustering import clustering_scores
from inbedder.evaluation.common import pearson, ranks, spearman
from inbedder.evaluation.latency import load_latency
from inbedder.evaluation.retrieval import ndcg_at, rank, recall_at, retrieval_scores, write_beir


class Fake:
    """An Embedder stand-in: ``vector(instruction, text)`` gives each row's vector; calls are recorded."""

    def __init__(self, vector: Callable[[str | None, str], Any]):
        self.vector = vector
        self.calls: list[tuple[list[str], Any]] = []

    def encode(self, texts: list[str], instruction: Any = None, **options: Any) -> np.ndarray:
        self.calls.append((list(texts), instruction))
        per_row = instruction if isinstance(instruction, list) else [instruction] * len(texts)
        return np.array([self.vector(i, t) for i, t in zip(per_row, texts, strict=True)], dtype=np.float32)


def table_vectors(table: dict[str, list[float]]) -> Fake:
    return Fake(lambda _ins, text: table[text])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


# -- correlations and triplets -------------------------------------------------------------------------------
def test_correlations_equal_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40).astype(float), rng.normal(size=40)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    np.testing.assert_allclose(ranks([3, 1, 3, 2]), stats.rankdata([3, 1, 3, 2]))


def test_triplet_accuracy_hand_checked_and_ties_count_as_misses() -> None:
    vectors = {"a": [1, 0], "p_close": [1, 0.1], "n_far": [0, 1], "p_far": [0, 1], "n_close": [1, 0.2],
               "same1": [1, 1], "same2": [1, 1]}
    task = TripletTask(["a", "a", "a"], ["p_close", "p_far", "same1"], ["n_far", "n_close", "same2"])
    metrics = task.evaluate(table_vectors(vectors))
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    cos = lambda u, v: np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    margins = [cos([1, 0], [1, 0.1]) - cos([1, 0], [0, 1]), cos([1, 0], [0, 1]) - cos([1, 0], [1, 0.2]), 0.0]
    assert metrics["margin"] == pytest.approx(np.mean(margins))


def test_triplet_instruction_override_and_per_row(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "t.jsonl", [{"anchor": "a", "positive": "b", "negative": "c", "ins": "row"}])
    fake = Fake(lambda _i, _t: [1.0, 0.0])
    load_triplets(path, instruction_column="ins").evaluate(fake)
    assert fake.calls[-1] == (["a", "b", "c"], "row")
    load_triplets(path, instruction_column="ins").evaluate(fake, instruction="override")
    assert fake.calls[-1][1] == "override"


# -- STS and text evaluation ---------------------------------------------------------------------------------
def test_sts_equals_scipy_on_cosines(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    texts = [f"t{i}" for i in range(20)]
    vectors = {t: rng.normal(size=4).tolist() for t in texts}
    gold = rng.uniform(0, 5, 10)
    rows = [{"sentence1": texts[i], "sentence2": texts[i + 10], "score": float(gold[i])} for i in range(10)]
    metrics = load_sts(jsonl(tmp_path / "sts.jsonl", rows)).evaluate(table_vectors(vectors))
    a, b = np.array([vectors[t] for t in texts[:10]]), np.array([vectors[t] for t in texts[10:]])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(cosine, gold)[0], abs=1e-6)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(cosine, gold)[0], abs=1e-6)
    assert metrics["n"] == 10


def test_text_evaluation_max_cosine_to_references(tmp_path: Path) -> None:
    vectors = {"c1": [1, 0], "c2": [0, 1], "c3": [1, 1], "r1": [1, 0], "r2": [0, 1], "r3": [-1, 0], "r4": [1, -1]}
    path = write(tmp_path / "t.csv", 'candidate,references,extra,score\nc1,"[""r3"", ""r2""]",r4,1\n'
                                     'c2,r2,r1,3\nc3,r3,r4,2\n')
    task = load_text_evaluation(path, reference_columns=("references", "extra"))
    assert task.references == [["r3", "r2", "r4"], ["r2", "r1"], ["r3", "r4"]]
    best = [max(0.0, -1.0, 1 / math.sqrt(2)), 1.0, 0.0]  # c3 . r4 = 0, c3 . r3 = -1/sqrt(2)
    metrics = task.evaluate(table_vectors(vectors))
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(best, [1, 3, 2])[0], abs=1e-6)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(best, [1, 3, 2])[0], abs=1e-6)


# -- clustering and classification ---------------------------------------------------------------------------
def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_v_measure_and_ari_equal_hand_computation() -> None:
    labels, clusters = [0, 0, 1, 1], [0, 0, 0, 1]
    table = np.array([[2, 0], [1, 1]])  # rows: clusters, columns: classes
    h_c, h_k, n = entropy(table.sum(0)), entropy(table.sum(1)), table.sum()
    h_c_k = sum(row.sum() / n * entropy(row) for row in table)
    h_k_c = sum(col.sum() / n * entropy(col) for col in table.T)
    homogeneity, completeness = 1 - h_c_k / h_c, 1 - h_k_c / h_k
    pairs = lambda x: x * (x - 1) / 2  # noqa: E731
    index, a, b = pairs(table).sum(), pairs(table.sum(1)).sum(), pairs(table.sum(0)).sum()
    expected_ari = (index - a * b / pairs(n)) / ((a + b) / 2 - a * b / pairs(n))
    scores = clustering_scores(labels, clusters)
    assert scores["v_measure"] == pytest.approx(2 * homogeneity * completeness / (homogeneity + completeness))
    assert scores["v_measure"] == pytest.approx(0.3437, abs=1e-4)
    assert scores["ari"] == pytest.approx(expected_ari)


def test_clustering_task_separable_blobs_score_one() -> None:
    rng = np.random.default_rng(2)
    centers = {"x": [5, 0, 0], "y": [0, 5, 0], "z": [0, 0, 5]}
    texts = [f"{c}{i}" for c in centers for i in range(8)]
    vectors = {t: (np.array(centers[t[0]]) + rng.normal(scale=0.1, size=3)).tolist() for t in texts}
    metrics = ClusteringTask(texts, [t[0] for t in texts]).evaluate(table_vectors(vectors))
    assert metrics["v_measure"] == pytest.approx(1.0) and metrics["ari"] == pytest.approx(1.0)
    assert metrics["k"] == 3


def test_classification_equals_sklearn_probes(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(3)
    texts = [f"t{i}" for i in range(60)]
    labels = [str(i % 3) for i in range(60)]
    vectors = {t: (rng.normal(size=5) + np.eye(5)[int(t[1:]) % 3] * 1.5).tolist() for t in texts}
    rows = "".join(f"{t},{label}\n" for t, label in zip(texts, labels, strict=True))
    task = load_classification(write(tmp_path / "c.csv", "text,label\n" + rows), test_size=0.25, seed=7)
    assert len(task.test_texts) == 15 and sorted(set(task.test_labels)) == ["0", "1", "2"]  # stratified
    metrics = task.evaluate(table_vectors(vectors), settings=EvalSettings(seed=7))
    train = np.array([vectors[t] for t in task.train_texts])
    test = np.array([vectors[t] for t in task.test_texts])
    knn = KNeighborsClassifier(5, metric="cosine").fit(train, task.train_labels).predict(test)
    lr = LogisticRegression(max_iter=1000, random_state=7).fit(train, task.train_labels).predict(test)
    assert metrics["knn_accuracy"] == pytest.approx(accuracy_score(task.test_labels, knn), abs=1e-6)
    assert metrics["logreg_macro_f1"] == pytest.approx(f1_score(task.test_labels, lr, average="macro"), abs=1e-6)
    easy = ClassificationTask(["a", "b"], ["0", "1"], ["a2", "b2"], ["0", "1"], k=1)
    vectors = {"a": [1, 0], "b": [0, 1], "a2": [1, 0.1], "b2": [0.1, 1]}
    assert easy.evaluate(table_vectors(vectors))["knn_accuracy"] == 1.0


# -- retrieval -----------------------------------------------------------------------------------------------
QRELS = {"q1": {"d2": 1, "d4": 2}, "q2": {"d3": 1}, "q3": {"d12": 1, "d1": 0}, "q4": {"d1": 0}}


def test_retrieval_metrics_hand_made_example() -> None:
    docs = [f"d{i}" for i in range(1, 13)]
    run = {"q1": ["d1", "d2", "d3", "d4"], "q2": ["d3", "d1"], "q3": docs, "q4": ["d1"]}
    ndcg_q1 = (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert ndcg_q1 == pytest.approx(0.567207, abs=1e-6)
    scores = retrieval_scores(run, QRELS)
    assert scores["queries"] == 3  # q4 has no relevant document
    assert scores["ndcg@10"] == pytest.approx((ndcg_q1 + 1 + 0) / 3)
    assert scores["mrr@10"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores["recall@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["recall@100"] == pytest.approx(1.0)
    assert recall_at(["d4"], QRELS["q1"], 100) == 0.5


def test_ndcg_equals_sklearn() -> None:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(4)
    grades = rng.integers(0, 4, 30)
    scores = rng.normal(size=30)
    ranked = [f"d{i}" for i in np.argsort(-scores)]
    judged = {f"d{i}": int(g) for i, g in enumerate(grades)}
    assert ndcg_at(ranked, judged, 10) == pytest.approx(ndcg_score([grades], [scores], k=10), abs=1e-12)


def test_retrieval_task_from_beir_folder(tmp_path: Path) -> None:
    corpus = {f"d{i}": f"doc {i}" for i in range(1, 13)}
    queries = {"q1": "query one", "q2": "query two", "q3": "query three", "q4": "no judgement", "q5": "unused"}
    root = write_beir(tmp_path / "beir", corpus, queries, QRELS)
    order = {"q1": ["d1", "d2", "d3", "d4"], "q2": ["d3", "d1"], "q3": [f"d{i}" for i in range(1, 13)], "q4": ["d1"]}
    query_of = {v: k for k, v in queries.items()}

    def vector(_ins: str | None, text: str) -> list[float]:
        if text.startswith("doc"):
            return np.eye(12)[int(text.split()[1]) - 1].tolist()
        q = order[query_of[text]]
        return sum(np.eye(12)[int(d[1:]) - 1] * (20 - r) for r, d in enumerate(q)).tolist()

    fake = Fake(vector)
    task = load_beir(root, query_instruction="Q:", doc_instruction="D:")
    assert set(task.queries) == {"q1", "q2", "q3", "q4"}  # q5 has no judgements
    assert task.evaluate(fake) == {**retrieval_scores(order, QRELS), "documents": 12.0}
    assert [c[1] for c in fake.calls] == ["D:", "Q:"]
    assert rank(np.eye(3)[:1], np.eye(3), ["a", "b", "c"], top=2)[0][0] == "a"
    assert len(load_beir(root, limit=2).queries) == 2


# -- awareness and robustness --------------------------------------------------------------------------------
def crossed_fixture(tmp_path: Path) -> Path:
    rows = [{"text": f"i{i} d{d} {j}", "intent": f"i{i}", "domain": f"d{d}"}
            for i in range(3) for d in range(3) for j in range(3)]
    return jsonl(tmp_path / "aware.jsonl", rows)


def follower(ins: str | None, text: str) -> list[float]:
    """Groups by the axis the instruction asks about (plus a little noise)."""
    intent, domain, j = (int(part[-1]) for part in text.split())
    axis = intent if ins and "want" in ins else domain
    noise = np.random.default_rng(hash(text) % 2**32).normal(scale=0.05, size=3)
    return (np.eye(3)[axis] + noise).tolist()


def ignorer(_ins: str | None, text: str) -> list[float]:
    """The same vector whatever the instruction."""
    intent, domain, _ = (int(part[-1]) for part in text.split())
    return np.r_[np.eye(3)[intent], 0.9 * np.eye(3)[domain]].tolist()


def test_awareness_orders_following_above_ignoring(tmp_path: Path) -> None:
    task = load_awareness(crossed_fixture(tmp_path), {"intent": "What does the user want?",
                                                      "domain": "Which area is this about?"})
    follows, ignores = task.run(Fake(follower)), task.run(Fake(ignorer), baseline=True)
    assert follows.matrix["intent"]["intent"] == pytest.approx(1.0)
    assert follows.matrix["intent"]["domain"] == pytest.approx(0.0, abs=1e-9)
    assert follows.summary == pytest.approx(1.0)
    assert ignores.summary == pytest.approx(0.0, abs=1e-9)
    assert ignores.baseline is not None and set(ignores.baseline) == {"intent", "domain"}
    metrics = follows.metrics()
    assert metrics["summary"] == task.evaluate(Fake(follower))["summary"]
    assert metrics["gain.intent"] == pytest.approx(1.0)
    png = heatmap(ignores, tmp_path / "heat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_awareness_needs_two_axes_and_known_columns(tmp_path: Path) -> None:
    path = crossed_fixture(tmp_path)
    with pytest.raises(InputError, match="two or more axes"):
        load_awareness(path, {"intent": "x"})
    with pytest.raises(InputError, match=r"aware.jsonl: no column 'intnet'.*Did you mean 'intent'"):
        load_awareness(path, {"intnet": "x", "domain": "y"})
    with pytest.raises(InputError, match="single label"):
        AwarenessTask(["a", "b"], {"x": ["1", "1"], "y": ["1", "2"]}, {"x": "?", "y": "?"})


def test_robustness_reports_each_instruction_and_spread() -> None:
    score = {"right": [1, 0], "also right": [1, 0.2], "hint": [1, 0.5], "wrong": [0, 1]}
    task = TripletTask(["a"], ["p"], ["n"])
    fake = Fake(lambda ins, text: {"a": [1, 0], "p": score[ins], "n": [0.7, 0.7]}[text])
    result = robustness(task, fake, {"correct": ["right", "also right"], "implicit": ["hint"],
                                     "incorrect": ["wrong"]})
    metrics = result.metrics()
    assert metrics["correct.mean"] == 1.0 and metrics["correct.std"] == 0.0
    assert metrics["incorrect.mean"] == 0.0 and metrics["gap"] == 1.0
    assert [r["instruction"] for r in result.per_instruction()] == ["right", "also right", "hint", "wrong"]
    assert metrics["implicit.range"] == 0.0
    with pytest.raises(InputError, match="not valid"):
        robustness(task, fake, {"corect": ["x"]})


# -- latency and results -------------------------------------------------------------------------------------
def test_latency_counts_tokens_and_restores_the_model(tiny_bert: Any, tmp_path: Path) -> None:
    texts = [f"the cat number {i} sat on the mat" for i in range(10)]
    before = tiny_bert.encoder.embed_batch
    metrics = measure_latency(tiny_bert, texts, settings=EvalSettings(batch_size=4), warmup=1)
    assert metrics["batches"] == 3 and metrics["texts"] == 10
    assert 0 < metrics["batch_p50_ms"] <= metrics["batch_p95_ms"]
    assert metrics["texts_per_s"] == pytest.approx(10 / metrics["total_s"])
    tokenizer = tiny_bert.encoder.tokenizer
    assert metrics["tokens"] == sum(len(tokenizer(t)["input_ids"]) for t in texts)
    assert "embed_batch" not in vars(tiny_bert.encoder) and tiny_bert.encoder.embed_batch == before
    assert "tokens_per_s" not in measure_latency(Fake(lambda _i, _t: [1.0]), texts)
    assert len(load_latency(write(tmp_path / "t.txt", "a\n\nb\nc\n"), limit=2).texts) == 2


def test_result_file_round_trip_and_report(tiny_bert: Any, tmp_path: Path) -> None:
    data = write(tmp_path / "d.csv", "text,label\na,1\n")
    result = make_result("sts", tiny_bert, {"spearman": 0.5, "pearson": float("nan")}, primary="spearman",
                         data=[data], settings={"seed": 0}, timings={"eval_s": 1.23456}, matrix={"a": {"b": 1.0}})
    assert result["data"][0]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert result["model"]["family"] == tiny_bert.family and result["model"]["dim"] == tiny_bert.dim
    assert {"torch", "numpy", "python"} <= set(result["versions"]) and result["date"].endswith("+00:00")
    back = read_result(write_result(result, tmp_path / "r.json"))
    assert back["metrics"] == {"spearman": 0.5, "pearson": None} and back["matrix"] == {"a": {"b": 1.0}}
    assert back["timings"] == {"eval_s": 1.235}
    table = report([back])
    assert "| sts |" in table and "| spearman | 0.5000 |" in table and "d.csv" in table
    with pytest.raises(InputError, match="primary metric"):
        make_result("sts", tiny_bert, {"x": 1.0}, primary="spearman")
    with pytest.raises(InputError, match="not an inbedder result"):
        read_result(write(tmp_path / "bad.json", "[]"))


# -- bad data: one clear error naming file, row and column ---------------------------------------------------
@pytest.mark.parametrize(("name", "content", "loader", "pattern"), [
    ("s.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "b", '
                '"score": NaN}\n', load_sts, r"s.jsonl: row 2 \(line 2\), column 'score': nan is not a valid number"),
    ("s.csv", "sentence1,sentence2,score\na,b,1\na,b,nan\n", load_sts,
     r"s.csv: row 2 \(line 3\), column 'score': 'nan' is not a valid number"),
    ("s.csv", "sentence1,sentence2,score\na,b,high\n", load_sts,
     r"row 1 \(line 2\), column 'score': expected a number"),
    ("s.csv", "sentence1,sentence_2,score\na,b,1\n", load_sts, r"s.csv: no column 'sentence2'.*Did you mean"),
    ("s.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "score": 2}\n', load_sts,
     r"s.jsonl: row 2 \(line 2\), column 'sentence2': missing"),
    ("s.jsonl", "", load_sts, r"s.jsonl: the file has no rows"),
    ("s.csv", "sentence1,sentence2,score\n", load_sts, r"s.csv: the file has no rows"),
    ("t.tsv", "anchor\tpositive\tnegative\na\t\tc\n", load_triplets, r"row 1 \(line 2\), column 'positive': empty"),
    ("t.txt", "a,b", load_triplets, r"cannot tell the format"),
    ("c.jsonl", '{"text": "a", "label": null}\n', load_text_evaluation, r"no column 'candidate'"),
])
def test_bad_data_errors_name_file_row_and_column(tmp_path: Path, name: str, content: str,
                                                  loader: Callable[..., Any], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        loader(write(tmp_path / name, content))


def test_semicolon_files_and_label_types(tmp_path: Path) -> None:
    path = write(tmp_path / "emotion.txt", "text;label_name\ni am sad;sadness\ni am happy;joy\n")
    from inbedder.evaluation import load_clustering

    task = load_clustering(path, label_column="label_name", delimiter=";")
    assert task.labels == ["sadness", "joy"]
    task = load_clustering(jsonl(tmp_path / "l.jsonl", [{"text": "a", "label": 3}, {"text": "b", "label": "3"}]))
    assert task.labels == ["3", "3"]
    with pytest.raises(InputError, match=r"row 1 \(line 1\), column 'label': expected text"):
        load_clustering(jsonl(tmp_path / "n.jsonl", [{"text": "a", "label": None}]))
    with pytest.raises(InputError, match="columns differ in length"):
        STSTask(["a", "b"], ["c"], [1.0, 2.0])
    with pytest.raises(InputError, match="at least 2 candidates"):
        TextEvaluationTask(["a"], [["b"]], [1.0])
