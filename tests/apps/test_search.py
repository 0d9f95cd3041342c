"""Search index: exact top-k (numpy and FAISS agree), round-trip on disk, and refusing another model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inbedder.apps.search import Backend, Hit, IndexMismatchError, SearchIndex, parse_backend
from inbedder.errors import InputError, ModelLoadError

DOCS = ["The Federal Reserve raised its benchmark interest rate.", "A cat sat on the mat.",
        "Parton energy loss in QCD matter.", "The funds rose less than 0.5 per cent on Friday.",
        "Where is the food stored in a yam plant?", "I love cat! I love dog!"]
DOC_INSTRUCTION = "Represent the Wikipedia document for retrieval: "
QUERY_INSTRUCTION = "Represent the question for retrieving documents: "


def synthetic_index(n: int, dim: int = 32, seed: int = 0, backend: str = "numpy") -> SearchIndex:
    rng = np.random.default_rng(seed)
    config = {"model": {"name": "synthetic", "family": "none", "dim": dim, "settings": {}, "weights_fingerprint": ""}}
    return SearchIndex(rng.normal(size=(n, dim)), [f"d{i}" for i in range(n)], [f"text {i}" for i in range(n)],
                       config, backend=backend)


# -- exact search -----------------------------------------------------------------------------------------------
def test_numpy_top_k_is_the_exact_cosine_ranking() -> None:
    index = synthetic_index(300)
    queries = np.random.default_rng(1).normal(size=(7, 32))
    scores, rows = index.top_k(queries, k=10)
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = unit_q @ index.vectors.T
    want = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    assert rows.tolist() == want.tolist()
    np.testing.assert_allclose(scores, np.take_along_axis(sims, want, axis=1), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, rtol=1e-6)


def test_unit_vectors_are_kept_bit_for_bit() -> None:
    x = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    config = {"model": {"name": "x", "dim": 32}}
    np.testing.assert_array_equal(SearchIndex(unit, range(300), ["t"] * 300, config, backend="numpy").vectors, unit)
    scaled = SearchIndex(3 * unit, range(300), ["t"] * 300, config, backend="numpy").vectors
    np.testing.assert_allclose(np.linalg.norm(scaled, axis=1), 1.0, rtol=1e-6)


def test_ties_are_broken_by_row_and_k_is_clipped_to_the_corpus() -> None:
    config = {"model": {"name": "x", "dim": 2}}
    index = SearchIndex(np.array([[0, 1], [1, 0], [2, 0], [0, 3]]), ["a", "b", "c", "d"], list("abcd"), config,
                        backend="numpy")
    scores, rows = index.top_k(np.array([[1.0, 0.0]]), k=10)
    assert rows.tolist() == [[1, 2, 0, 3]] and scores[0, :2].tolist() == [1.0, 1.0]
    hits = index.search_vectors(np.array([[0.0, 1.0]]), k=1)
    assert hits == [[Hit(rank=1, score=1.0, id="a", text="a", row=0)]]


def test_faiss_and_numpy_give_the_same_top_10_on_5000_vectors() -> None:
    pytest.importorskip("faiss")
    exact, fast = synthetic_index(5000, dim=64, backend="numpy"), synthetic_index(5000, dim=64, backend="faiss")
    assert fast.backend is Backend.FAISS and exact.backend is Backend.NUMPY
    queries = np.random.default_rng(2).normal(size=(50, 64))
    s1, r1 = exact.top_k(queries, 10)
    s2, r2 = fast.top_k(queries, 10)
    assert r1.tolist() == r2.tolist()
    np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_backend_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    with pytest.raises(InputError, match="Did you mean 'faiss'"):
        parse_backend("fais")
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    assert parse_backend("auto") is Backend.NUMPY
    with pytest.raises(ImportError, match=r'pip install "inbedder\[faiss\]"'):
        parse_backend("faiss")


# -- build, save, load, query ---------------------------------------------------------------------------------
def test_round_trip_keeps_vectors_ids_texts_and_results(tiny_bert: Any, tmp_path: Path) -> None:
    index = SearchIndex.build(DOCS, tiny_bert, DOC_INSTRUCTION, ids=[f"doc{i}" for i in range(len(DOCS))])
    want = tiny_bert.encode(DOCS, instruction=DOC_INSTRUCTION, normalize=True)
    np.testing.assert_allclose(index.vectors, want, atol=1e-6)
    path = index.save(tmp_path / "idx")
    assert sorted(p.name for p in path.iterdir()) == ["index.json", "rows.jsonl", "vectors.safetensors"]
    config = json.loads((path / "index.json").read_text())
    assert config["format_version"] == 1 and config["document_instruction"] == DOC_INSTRUCTION
    assert config["model"]["weights_fingerprint"] and config["model"]["settings"]["family"] == "instructor"
    loaded = SearchIndex.load(path, model=tiny_bert)
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert (loaded.ids, loaded.texts) == (index.ids, index.texts)
    queries = ["cat on a mat", "interest rates"]
    assert loaded.query(queries, QUERY_INSTRUCTION, k=3) == index.query(queries, QUERY_INSTRUCTION, k=3)
    single = loaded.query("cat on a mat", QUERY_INSTRUCTION, k=2)
    assert [h.rank for h in single] == [1, 2] and all(isinstance(h, Hit) for h in single)
    q = tiny_bert.encode(["cat on a mat"], instruction=QUERY_INSTRUCTION)  # top_k scales it to length 1
    assert single == loaded.search_vectors(q, k=2)[0]


def test_a_document_is_its_own_best_match_under_the_same_instruction(tiny_bert: Any) -> None:
    index = SearchIndex.build(DOCS, tiny_bert, DOC_INSTRUCTION)
    for i, doc in enumerate(DOCS):
        top = index.query(doc, DOC_INSTRUCTION, k=1)[0]
        assert (top.id, top.text, top.row) == (i, doc, i) and top.score == pytest.approx(1.0, abs=1e-5)


def test_per_row_instructions_are_kept(tiny_bert: Any, tmp_path: Path) -> None:
    instructions = [DOC_INSTRUCTION, None] * 3
    index = SearchIndex.build(DOCS, tiny_bert, instructions)
    np.testing.assert_allclose(index.vectors, tiny_bert.encode(DOCS, instruction=instructions, normalize=True),
                               atol=1e-6)
    loaded = SearchIndex.load(index.save(tmp_path / "idx"))
    assert loaded.instructions == instructions and loaded.config["document_instruction"] is None


def test_an_index_refuses_another_model(tiny_bert: Any, plain_bert_dir: Path, tmp_path: Path) -> None:
    from inbedder import load

    path = SearchIndex.build(DOCS, tiny_bert, DOC_INSTRUCTION).save(tmp_path / "idx")
    other = load(plain_bert_dir, device="cpu")  # same size and family, other weights
    with pytest.raises(IndexMismatchError) as info:
        SearchIndex.load(path, model=other)
    message = str(info.value)
    assert "weights differ" in message and tiny_bert.name in message and "rebuild the index" in message
    index = SearchIndex.load(path)
    with pytest.raises(IndexMismatchError):
        index.query("cat", QUERY_INSTRUCTION, model=other)
    with pytest.raises(InputError, match="no model to embed the queries"):
        index.query("cat")


def test_an_index_refuses_other_settings(tiny_bert: Any, tmp_path: Path) -> None:
    index = SearchIndex.build(DOCS, tiny_bert, DOC_INSTRUCTION)
    index.config["model"]["settings"]["max_length"] = 12
    with pytest.raises(IndexMismatchError, match=r"settings differ: max_length=48 \(index: 12\)"):
        index.check_model(tiny_bert)


@pytest.mark.parametrize("break_it, needle", [
    (lambda p: (p / "index.json").unlink(), "has no index.json"),
    (lambda p: (p / "vectors.safetensors").unlink(), "vectors.safetensors is missing"),
    (lambda p: (p / "vectors.safetensors").write_bytes(b"junk"), "cannot read"),
    (lambda p: (p / "index.json").write_text("{"), "not valid JSON"),
    (lambda p: (p / "index.json").write_text(json.dumps({**json.loads((p / "index.json").read_text()),
                                                         "format_version": 99})), "format version 99"),
    (lambda p: (p / "rows.jsonl").write_text('{"id": 0, "text": "a"}\n'), "inconsistent"),
    (lambda p: (p / "rows.jsonl").write_text("nope\n"), "line 1"),
])
def test_broken_index_directories_are_named(tiny_bert: Any, tmp_path: Path, break_it: Any, needle: str) -> None:
    path = SearchIndex.build(DOCS[:3], tiny_bert).save(tmp_path / "idx")
    break_it(path)
    with pytest.raises(ModelLoadError, match=needle):
        SearchIndex.load(path)


def test_save_refuses_to_clobber(tiny_bert: Any, tmp_path: Path) -> None:
    index = SearchIndex.build(DOCS[:2], tiny_bert)
    index.save(tmp_path / "idx")
    with pytest.raises(InputError, match="already holds an index"):
        index.save(tmp_path / "idx")
    index.save(tmp_path / "idx", overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an index directory"):
        index.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(ModelLoadError, match="does not exist"):
        SearchIndex.load(tmp_path / "missing")


def test_bad_build_and_query_arguments(tiny_bert: Any) -> None:
    with pytest.raises(InputError, match="rows 0 and 1 both have id 'x'"):
        SearchIndex.build(DOCS[:2], tiny_bert, ids=["x", "x"])
    with pytest.raises(InputError, match="1 ids for 2 texts"):
        SearchIndex.build(DOCS[:2], tiny_bert, ids=["x"])
    with pytest.raises(InputError, match="0 texts"):
        SearchIndex.build([], tiny_bert)
    index = SearchIndex.build(DOCS[:2], tiny_bert)
    with pytest.raises(InputError, match="k must be a positive int"):
        index.query("a", k=0)
    with pytest.raises(IndexMismatchError, match="3 dimensions"):
        index.search_vectors(np.ones((1, 3)))
    assert index.query([], k=3) == []


# -- queries from the cache: no model, no torch ---------------------------------------------------------------
QUERIES = ["cat on a mat", "interest rates"]


def test_the_index_knows_its_models_cache_key_without_the_model(tiny_bert: Any, tmp_path: Path) -> None:
    index = SearchIndex.build(DOCS, tiny_bert, DOC_INSTRUCTION)
    assert index.model_key() == tiny_bert.model_key({})[0]
    assert SearchIndex.load(index.save(tmp_path / "idx")).model_key() == tiny_bert.model_key({})[0]
    assert synthetic_index(3).model_key() is None  # no fingerprint recorded: nothing is served from a cache
    assert index.config["model"]["reencoder"] is None
    index.config["model"]["reencoder"] = "minilm"  # vectors of a second model: not keyed by this one
    assert index.model_key() is None
    del index.config["model"]["reencoder"]
    assert index.model_key() == tiny_bert.model_key({})[0]  # an index written before the field: fine ...
    index.config["model"]["family"] = "causal"
    assert index.model_key() is None  # ... unless an answer family, whose vectors may have been a reencoder's


def test_a_query_embedded_before_needs_no_model(tiny_bert: Any, plain_bert_dir: Path, tmp_path: Path) -> None:
    from inbedder import load
    from inbedder.cache import EmbeddingCache

    cache = tmp_path / "c.sqlite"
    built = SearchIndex.build(DOCS, tiny_bert, DOC_INSTRUCTION)
    want = built.query(QUERIES, QUERY_INSTRUCTION, k=3, cache=cache)  # embeds the queries into the cache
    index = SearchIndex.load(built.save(tmp_path / "idx"))  # no model
    assert index.query(QUERIES, QUERY_INSTRUCTION, k=3, cache=cache) == want
    one = built.query(QUERIES[0], QUERY_INSTRUCTION, k=3, cache=cache)  # one row: another product than two
    assert index.query(QUERIES[0], QUERY_INSTRUCTION, k=3, cache=str(cache)) == one
    assert EmbeddingCache(cache).stats()["last_run"] == {**EmbeddingCache(cache).stats()["last_run"], "hits": 1,
                                                          "misses": 0}
    with pytest.raises(InputError, match="no model to embed the queries"):
        index.query(QUERIES, "Another instruction: ", k=3, cache=cache)  # not cached under this instruction
    other = tmp_path / "other.sqlite"  # the same queries cached for another model are not the index's vectors
    load(plain_bert_dir, device="cpu").encode(QUERIES, instruction=QUERY_INSTRUCTION, cache=other)
    assert index.cached_vectors(QUERIES, QUERY_INSTRUCTION, other) is None
    with pytest.raises(InputError, match="k must be a positive int"):
        index.query(QUERIES, QUERY_INSTRUCTION, k=0, cache=cache)


def test_auto_backend_searches_small_work_with_numpy() -> None:
    from inbedder.apps.search import AUTO_FAISS_WORK

    assert parse_backend("auto", work=10) is Backend.NUMPY
    index = synthetic_index(50)  # backend="numpy"
    auto = SearchIndex(index.vectors, index.ids, index.texts, index.config, backend="auto")
    assert auto.backend is Backend.AUTO and auto._faiss is None
    query = np.random.default_rng(3).normal(size=(2, 32))
    assert auto.top_k(query, 5)[1].tolist() == index.top_k(query, 5)[1].tolist() and auto._faiss is None
    pytest.importorskip("faiss")
    assert parse_backend("auto", work=AUTO_FAISS_WORK) is Backend.FAISS


@pytest.fixture()
def cli_index(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    from click.testing import CliRunner

    from inbedder.cli import main

    result = CliRunner().invoke(main, ["search", "index", "-m", str(tiny_bert_dir), "--device", "cpu", "--index",
                                       str(tmp_path / "idx"), "--instruction", DOC_INSTRUCTION, "--no-cache", *DOCS])
    assert result.exit_code == 0, result.output
    return tmp_path / "idx"


def test_search_query_again_loads_no_model(cli_index: Path, tiny_bert_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from inbedder.cli import main

    args = ["search", "query", "--index", str(cli_index), "--instruction", QUERY_INSTRUCTION, "-k", "3",
            "--cache", str(tmp_path / "c.sqlite"), *QUERIES]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output

    def no_load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("inbedder.loading.load", no_load)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
    same_model = CliRunner().invoke(main, [*args, "-m", str(tiny_bert_dir)])  # named, and known to the cache
    assert same_model.exit_code == 0 and same_model.stdout == first.stdout, same_model.output
    assert CliRunner().invoke(main, [*args, "--dtype", "float32"]).stdout == first.stdout  # the index's dtype
    for needs_a_load in (["a query never asked"], ["--dtype", "bfloat16"]):  # another dtype: loaded (and refused)
        result = CliRunner().invoke(main, [*args, *needs_a_load])
        assert result.exit_code == 1 and "the model was loaded" in str(result.exception), needs_a_load


def test_search_query_from_the_cache_imports_no_torch(cli_index: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cache = tmp_path / "c.sqlite"
    args = ["search", "query", "--index", str(cli_index), "-k", "2", "--cache", str(cache), "--format", "table",
            QUERIES[0]]
    script = ("import sys; from inbedder.cli import run; sys.argv = ['inbedder', *sys.argv[1:]]\n"
              "try:\n    run()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
              "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    runs = [subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                           timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    first, again = (r.stdout.splitlines() for r in runs)
    assert first[-1] == "torch imported" and again[-1] == "no torch"
    assert first[:-1] == again[:-1] and again[0] == f"query 0: {QUERIES[0]}"


def test_search_query_with_another_model_is_refused_even_when_cached(cli_index: Path, plain_bert_dir: Path,
                                                                     tmp_path: Path) -> None:
    from click.testing import CliRunner

    from helpers.cli_checks import assert_one_error_line
    from inbedder.cli import main

    args = ["search", "query", "--index", str(cli_index), "--cache", str(tmp_path / "c.sqlite"), QUERIES[0]]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert_one_error_line(CliRunner().invoke(main, [*args, "-m", str(plain_bert_dir)]), "weights differ")
    assert_one_error_line(CliRunner().invoke(main, [*args, "-m", str(plain_bert_dir)]), "weights differ")
