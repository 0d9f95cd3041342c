"""``inbedder cluster``, ``search index|query`` and ``cache stats|clear`` on the tiny models.

Outputs equal the library's; every user error exits 1 with one line on stderr.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from helpers.cli_checks import assert_one_error_line, ok
from inbedder.apps.clustering import cluster as run_cluster
from inbedder.apps.search import SearchIndex
from inbedder.cli import main

FRUIT = ["red apple pie with cream", "green apple tart", "banana and apple smoothie", "apple orchard harvest",
         "ripe banana bread"]
CARS = ["fast red car on the road", "slow car engine noise", "electric car battery", "car tyres and wheels",
        "a diesel engine for the truck"]
TEXTS = FRUIT + CARS
INSTRUCTION = "Represent the topic: "
ENV_NAMES = ("MODEL", "BATCH_SIZE", "NORMALIZE", "DEVICE", "DTYPE", "CACHE")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default cache file of every command run here is in the test's folder, never the user's."""
    monkeypatch.setenv("INBEDDER_CACHE", str(tmp_path / "default-cache.sqlite"))


def run(*args: Any, input: str | bytes | None = None) -> Result:
    clean = {f"INBEDDER_{name}": None for name in ENV_NAMES if name != "CACHE"}
    return CliRunner(env=clean, catch_exceptions=False).invoke(main, [os.fspath(a) for a in args], input=input)


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def topics(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "topics.jsonl", [{"id": f"t{i}", "text": t, "topic": "fruit" if i < 5 else "cars"}
                                                   for i, t in enumerate(TEXTS)])


# -- cluster --------------------------------------------------------------------------------------------------
def test_cluster_file_with_labels_summary_report_and_png(tiny_bert: Any, tiny_bert_dir: Path, topics: Path,
                                                         tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    out.mkdir()
    result = ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "-i", topics, "--instruction", INSTRUCTION,
                    "-k", "2", "--label-column", "topic", "--summary", out / "s.json", "--report", out / "r.html",
                    "--png", out / "p.png", "--no-cache"))
    rows = jsonl(result.stdout)
    want = run_cluster(TEXTS, tiny_bert, INSTRUCTION, k=2, labels=["fruit"] * 5 + ["cars"] * 5)
    assert [r["cluster"] for r in rows] == want.labels.tolist()
    assert rows[0] == {"index": 0, "id": "t0", "text": TEXTS[0], "cluster": want.labels[0],
                       "cluster_name": want.clusters[want.labels[0]].name, "label": "fruit"}
    summary = json.loads((out / "s.json").read_text())
    assert summary["metrics"] == pytest.approx(want.metrics)
    assert [c["name"] for c in summary["clusters"]] == [c.name for c in want.clusters]
    assert "v_measure=" in result.stderr and "nearest text" in result.stderr  # the table goes to stderr
    page = (out / "r.html").read_text(encoding="utf-8")
    assert page.count("<circle") == len(TEXTS) and "<svg" in page and "v-measure" in page
    assert " src=" not in page and "<link" not in page and "<script" not in page  # nothing to fetch
    command = (f"inbedder cluster --model {tiny_bert_dir} --device cpu --no-cache --input {topics} --instruction "
               f"'{INSTRUCTION}' --clusters 2 --label-column topic --summary {out / 's.json'}")
    assert f"<pre>{html.escape(command)} --report" in page  # the command that produced it
    assert (out / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cluster_stdin_arguments_csv_and_auto_k(tiny_bert: Any, tiny_bert_dir: Path, tmp_path: Path) -> None:
    common = ["-m", tiny_bert_dir, "--device", "cpu", "--instruction", INSTRUCTION, "-q"]
    piped = jsonl(ok(run("cluster", *common, "-k", "2", input="\n".join(TEXTS) + "\n")).stdout)
    args = jsonl(ok(run("cluster", *common, "-k", "2", *TEXTS)).stdout)
    assert piped == args and [r["text"] for r in piped] == TEXTS
    source = tmp_path / "docs.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["body", "id"], *[[t, i] for i, t in enumerate(TEXTS)]])
    out = tmp_path / "clusters.csv"
    result = ok(run("cluster", *common, "-i", source, "--text-column", "body", "--auto-k", "2-3", "-o", out,
                    "--summary", tmp_path / "s.json"))
    assert result.stdout == "" and result.stderr == ""  # -q: no table
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == TEXTS and rows[3]["id"] == "3"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary["k_scores"]) == {"2", "3"} and summary["k"] in (2, 3)
    want = run_cluster(TEXTS, tiny_bert, INSTRUCTION, auto_k=range(2, 4))
    assert [int(r["cluster"]) for r in rows] == want.labels.tolist()


def test_cluster_uses_the_cache_and_cache_commands_report_it(tiny_bert_dir: Path, topics: Path,
                                                             tmp_path: Path) -> None:
    store = tmp_path / "c.sqlite"
    args = ["cluster", "-m", tiny_bert_dir, "--device", "cpu", "-i", topics, "-k", "2", "-q", "--cache", store]
    first, second = ok(run(*args)), ok(run(*args))
    assert first.stdout == second.stdout
    stats = json.loads(ok(run("cache", "stats", "--cache", store, "--json")).stdout)
    assert stats["rows"] == len(TEXTS) and stats["last_run"]["hits"] == len(TEXTS)
    assert [m["name"] for m in stats["models"]] == [str(tiny_bert_dir)]
    text = ok(run("cache", "stats", "--cache", store)).stdout
    assert f"rows: {len(TEXTS)}" in text and "hit rate 100.0%" in text
    assert_one_error_line(run("cache", "clear", "--cache", store, "--model", "minilm"), "'minilm'",
                          str(tiny_bert_dir))
    cleared = ok(run("cache", "clear", "--cache", store, "--model", str(tiny_bert_dir))).stdout
    assert cleared.startswith(f"deleted {len(TEXTS)} rows")
    assert json.loads(ok(run("cache", "stats", "--cache", store, "--json")).stdout)["rows"] == 0
    # the default file ($INBEDDER_CACHE here) is used without --cache; --no-cache writes nothing
    ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "-k", "2", "-q", "--no-cache", *TEXTS))
    assert "does not exist yet" in ok(run("cache", "stats")).stdout
    ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "-k", "2", "-q", *TEXTS))
    assert f"rows: {len(TEXTS)}" in ok(run("cache", "stats")).stdout
    assert ok(run("cache", "clear")).stdout.startswith(f"deleted {len(TEXTS)} rows")
    assert "nothing to clear" in ok(run("cache", "clear", "--cache", tmp_path / "none.sqlite")).stdout


# -- search ---------------------------------------------------------------------------------------------------
@pytest.fixture()
def index_dir(tiny_bert_dir: Path, topics: Path, tmp_path: Path) -> Path:
    ok(run("search", "index", "-m", tiny_bert_dir, "--device", "cpu", "-i", topics, "--instruction", INSTRUCTION,
           "--index", tmp_path / "idx", "--no-cache"))
    return tmp_path / "idx"


def test_search_index_and_query_equal_the_library(tiny_bert: Any, index_dir: Path, tmp_path: Path) -> None:
    library = SearchIndex.build(TEXTS, tiny_bert, INSTRUCTION, ids=[f"t{i}" for i in range(len(TEXTS))])
    saved = SearchIndex.load(index_dir, model=tiny_bert)
    np.testing.assert_allclose(saved.vectors, library.vectors, atol=1e-6)
    assert saved.ids == library.ids and saved.texts == TEXTS
    want = library.query(["apple cake", "truck engine"], "Represent the query: ", k=3)
    got = jsonl(ok(run("search", "query", "--index", index_dir, "--instruction", "Represent the query: ", "-k", "3",
                       "apple cake", "truck engine", "--no-cache")).stdout)  # the model comes from the index
    assert [g["query"] for g in got] == ["apple cake", "truck engine"]
    for row, hits in zip(got, want, strict=True):
        assert [(h["id"], h["text"]) for h in row["results"]] == [(h.id, h.text) for h in hits]
        assert [h["score"] for h in row["results"]] == pytest.approx([h.score for h in hits], abs=1e-5)
    piped = ok(run("search", "query", "--index", index_dir, "--instruction", "Represent the query: ", "-k", "3",
                   "--format", "json", input="apple cake\ntruck engine\n"))
    assert json.loads(piped.stdout) == got
    queries = write_jsonl(tmp_path / "q.jsonl", [{"text": "apple cake"}, {"text": "truck engine"}])
    table = ok(run("search", "query", "--index", index_dir, "-m", tiny_bert.source, "-i", queries,
                   "--instruction", "Represent the query: ", "-k", "2", "--format", "table")).stdout
    lines = table.splitlines()
    assert lines[0] == "query 0: apple cake" and len(lines) == 6
    assert lines[1].split()[:3] == ["1", f"{want[0][0].score:.4f}", want[0][0].id]


def test_search_backends_agree_on_the_cli(index_dir: Path) -> None:
    pytest.importorskip("faiss")
    args = ["search", "query", "--index", index_dir, "-k", "10", "apple", "car", "banana bread"]
    exact = jsonl(ok(run(*args, "--backend", "numpy")).stdout)
    fast = jsonl(ok(run(*args, "--backend", "faiss")).stdout)
    assert [[h["id"] for h in r["results"]] for r in exact] == [[h["id"] for h in r["results"]] for r in fast]


def test_search_query_refuses_another_model(index_dir: Path, plain_bert_dir: Path) -> None:
    assert_one_error_line(run("search", "query", "--index", index_dir, "-m", plain_bert_dir, "apple"),
                          "weights differ", "rebuild the index")


# -- user errors: exit 1, one line ------------------------------------------------------------------------------
FILES = {"empty.txt": "", "empty.jsonl": "\n", "header.csv": "text\n", "docs.csv": "id,body\n1,hello\n2,world\n",
         "latin1.txt": b"caf\xe9\n", "nolabel.jsonl": '{"text": "a"}\n{"text": "b"}\n',
         "dupes.jsonl": '{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "two.txt": "a\nb\n"}
CLUSTER = ["cluster", "-m", "{model}"]
INDEX = ["search", "index", "-m", "{model}", "--index", "{tmp}/new-idx"]
QUERY = ["search", "query", "--index", "{idx}"]
ERRORS = [
    *[(cmd + args, needles) for cmd in (CLUSTER, INDEX, QUERY) for args, needles in [
        (["-i", "{tmp}/missing.txt"], ["missing.txt", "No such file or directory"]),
        (["-i", "{tmp}/folder.txt"], ["folder.txt", "Is a directory"]),
        (["-i", "{tmp}/latin1.txt"], ["latin1.txt", "not UTF-8"]),
        (["-i", "{tmp}/empty.txt"], ["empty.txt", "no texts"]),
        (["-i", "{tmp}/empty.jsonl"], ["empty.jsonl", "no texts"]),
        (["-i", "{tmp}/header.csv"], ["header.csv", "no texts"]),
        (["-i", "{tmp}/docs.csv"], ["no column 'text'", "'id', 'body'"]),
        ([], ["no texts", "stdin"]),
    ]],
    (CLUSTER + ["a", "b", "c", "-k", "5"], ["k=5", "number of texts (3)"]),
    (CLUSTER + ["a", "-k", "2", "--auto-k", "2-4"], ["-k or --auto-k"]),
    (CLUSTER + ["a", "--auto-k", "1-4"], ["--auto-k '1-4'", "2-20"]),
    (CLUSTER + ["a", "--method", "kmean"], ["'kmean'", "Did you mean 'kmeans'"]),
    (CLUSTER + ["a", "--projection", "tsne"], ["'tsne'", "pca"]),
    (CLUSTER + ["a", "-o", "{tmp}/out.xml"], ["out.xml", ".jsonl"]),
    (CLUSTER + ["a", "--report", "{tmp}/no/dir/r.html"], ["cannot write report", "does not exist"]),
    (CLUSTER + ["-i", "{tmp}/nofile.txt", "--label-column", "topic"], ["nofile.txt"]),
    (CLUSTER + ["-i", "{tmp}/two.txt", "--label-column", "topic"],
     ["--label-column needs a table file", ".jsonl", ".tsv", ".parquet"]),
    (CLUSTER + ["a", "b", "--label-column", "topic"], ["--label-column needs -i FILE"]),
    (CLUSTER + ["-i", "{tmp}/nolabel.jsonl", "--label-column", "topic"],
     ["nolabel.jsonl: no column 'topic' for --label-column", "'text'"]),
    (CLUSTER + ["-i", "{tmp}/docs.csv", "--text-column", "body", "--label-column", "topik"],
     ["column 'topik'", "docs.csv"]),
    (["cluster", "-m", "no-such-model", "a", "b"], ["unknown model 'no-such-model'"]),
    (INDEX + ["-i", "{tmp}/dupes.jsonl"], ["ids must be distinct", "rows 0 and 1"]),
    (["search", "index", "-m", "{model}", "--index", "{idx}", "a"], ["already holds an index", "--overwrite"]),
    (["search", "index", "-m", "{model}", "--index", "{tmp}/no/dir/idx", "a"], ["does not exist"]),
    (["search", "query", "--index", "{tmp}/missing-idx", "a"], ["missing-idx", "not a search index"]),
    (QUERY + ["a", "--format", "yaml"], ["'yaml'", "table"]),
    (QUERY + ["a", "-k", "0"], ["k must be a positive int"]),
    (QUERY + ["a", "--backend", "annoy"], ["'annoy'", "numpy"]),
    (["cache", "clear", "--cache", "{tmp}/none.sqlite", "--model", "minilm"], ["nothing to clear", "'minilm'"]),
    (["cache", "stats", "--cache", "{tmp}/latin1.txt"], ["latin1.txt", "not a usable SQLite file"]),
]


@pytest.mark.parametrize("args, needles", ERRORS, ids=[" ".join(a)[:48] for a, _ in ERRORS])
def test_user_errors_exit_1_with_one_line(tiny_bert: Any, tiny_bert_dir: Path, tmp_path: Path, args: list[str],
                                          needles: list[str]) -> None:
    for name, content in FILES.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "folder.txt").mkdir()
    idx = tmp_path / "idx"
    SearchIndex.build(TEXTS[:3], tiny_bert).save(idx)
    fill = {"{model}": str(tiny_bert_dir), "{tmp}": str(tmp_path), "{idx}": str(idx)}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    assert_one_error_line(run(*args, input=""), *needles)


def test_missing_extras_are_named(tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert_one_error_line(run("cluster", "-m", tiny_bert_dir, "a", "b", "--png", tmp_path / "p.png"),
                          'pip install "inbedder[report]"')
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert_one_error_line(run("cluster", "-m", tiny_bert_dir, "a", "b"), 'pip install "inbedder[cluster]"')


@pytest.mark.slow
def test_report_screenshot_in_headless_chromium(tiny_bert_dir: Path, topics: Path, tmp_path: Path) -> None:
    """scripts/report_screenshot.sh renders the report in headless Chromium and checks the plot is drawn."""
    script = Path(__file__).parents[2] / "scripts" / "report_screenshot.sh"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    ok(run("cluster", "-m", tiny_bert_dir, "-i", topics, "-k", "2", "-q", "--report", tmp_path / "r.html"))
    proc = subprocess.run(["bash", str(script), str(tmp_path / "r.html"), str(tmp_path / "shot.png")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "plot drawn" in proc.stdout


def test_cluster_without_model_uses_the_default_answer_model(monkeypatch: pytest.MonkeyPatch, tiny_bert: Any
                                                            ) -> None:
    import inbedder
    from inbedder.cli import cluster as cluster_command

    asked: list[str] = []

    def load_model(model: str, *_: Any, **__: Any) -> Any:
        asked.append(model)
        return tiny_bert

    monkeypatch.setattr(cluster_command, "load_model", load_model)
    ok(run("cluster", "-k", "2", "-q", "--no-cache", *TEXTS))
    assert asked == [inbedder.DEFAULT_ANSWER_MODEL]
    # INBEDDER_MODEL still wins over the default
    ok(CliRunner(env={"INBEDDER_MODEL": "minilm"}).invoke(main, ["cluster", "-k", "2", "-q", "--no-cache", *TEXTS]))
    assert asked[-1] == "minilm"
    assert "[default: qwen2.5-coder-0.5b-instruct]" in " ".join(ok(run("cluster", "--help")).stdout.split())


# -- the user cache by default: a rerun loads no model ------------------------------------------------------------
def test_cluster_rerun_with_another_k_or_method_loads_no_model_from_the_user_cache(
        tiny_bert_dir: Path, topics: Path, tmp_path: Path, loads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No --cache and no INBEDDER_CACHE: the user cache is used; --no-cache opts out."""
    monkeypatch.delenv("INBEDDER_CACHE")
    user_cache = Path(os.environ["INBEDDER_USER_CACHE"])  # conftest: a file of this test's own
    args = ["cluster", "-m", tiny_bert_dir, "--device", "cpu", "-i", topics, "--instruction", INSTRUCTION, "-q"]
    first = ok(run(*args, "-k", "2"))
    assert len(loads) == 1 and user_cache.is_file()
    again = [ok(run(*args, "-k", "3")), ok(run(*args, "-k", "2", "--method", "agglomerative")),
             ok(run(*args, "-k", "2"))]
    assert len(loads) == 1  # another k, another method, the same call: all from the cache
    assert again[2].stdout == first.stdout
    assert {r["cluster"] for r in jsonl(again[0].stdout)} == {0, 1, 2}
    computed = ok(run(*args, "-k", "3", "--no-cache"))
    assert len(loads) == 2 and computed.stdout == again[0].stdout
    several = args + ["--instruction", "What is the sentiment?"]  # several instructions: cached by the first run too
    first = ok(run(*several, "-k", "2"))
    assert len(loads) == 3
    assert ok(run(*several, "-k", "2")).stdout == first.stdout and len(loads) == 3


@pytest.mark.parametrize("family", ["encoder", "answers"])
def test_eval_awareness_after_cluster_on_the_same_texts_and_questions_loads_no_model(
        tiny_bert_dir: Path, llama_dir: Path, tmp_path: Path, loads: list[str], family: str) -> None:
    rows = [{"text": t, "topic": "fruit" if i < 5 else "cars", "tone": f"n{i % 2}"} for i, t in enumerate(TEXTS)]
    data = write_jsonl(tmp_path / "aware.jsonl", rows)
    questions = {"topic": "What topic?", "tone": "What tone?"}
    axes = [a for axis, q in questions.items() for a in ("--axis", f"{axis}={q}")]
    model_dir = tiny_bert_dir if family == "encoder" else llama_dir
    model = ["-m", model_dir, "--device", "cpu"]
    computed = json.loads(ok(run("eval", "awareness", *model, "-i", data, *axes, "--no-cache")).stdout)
    assert len(loads) == 1 and computed["settings"]["model_loaded"]
    for question in questions.values():
        ok(run("cluster", *model, "-i", data, "--instruction", question, "-k", "2", "-q"))
    assert len(loads) == 3
    served = json.loads(ok(run("eval", "awareness", *model, "-i", data, *axes)).stdout)
    assert len(loads) == 3 and served["settings"]["model_loaded"] is False
    assert served["matrix"] == {a: pytest.approx(row, abs=1e-6) for a, row in computed["matrix"].items()}
    assert served["model"]["name"] == str(model_dir) and served["model"]["dim"] == computed["model"]["dim"]
    ok(run("eval", "awareness", *model, "-i", data, *axes, "--baseline"))  # no-instruction rows: not cached yet
    assert len(loads) == 4


def test_similarity_rerun_uses_the_user_cache_and_no_cache_opts_out(tiny_bert_dir: Path, tmp_path: Path,
                                                                     loads: list[str]) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(FRUIT) + "\n", encoding="utf-8")
    b.write_text("\n".join(CARS) + "\n", encoding="utf-8")
    args = ["similarity", "-m", tiny_bert_dir, "--device", "cpu", "-a", a, "-b", b, "--format", "json"]
    first, again = (json.loads(ok(run(*args)).stdout) for _ in range(2))
    assert len(loads) == 1  # the rerun read both lists from the user cache
    np.testing.assert_allclose(again["cosine"], first["cosine"], rtol=0, atol=2e-6)
    ok(run(*args, "--no-cache"))
    assert len(loads) == 2


# -- every check before a load ------------------------------------------------------------------------------------
BEFORE_LOAD = [
    (["similarity", "-a", "{tmp}/two.txt", "-b", "{tmp}/empty.txt"], ["empty.txt", "no texts"]),
    (["similarity", "-a", "{tmp}/two.txt", "-b", "{tmp}/docs.csv"], ["no column 'text'"]),
    (["similarity", "-a", "{tmp}/two.txt", "-b", "{tmp}/two.txt", "--batch-size", "0"], ["batch_size", "0"]),
    (["similarity", "-a", "{tmp}/two.txt", "-b", "{tmp}/two.txt", "--dtype", "float99"], ["'float99'"]),
    (["similarity", "-a", "{tmp}/two.txt", "-b", "{tmp}/two.txt", "-o", "{tmp}/no/dir/s.csv"], ["does not exist"]),
    (["embed", "--long-text", "bogus", "a"], ["'bogus'", "truncate"]),
    (["embed", "--chunk-overlap", "-1", "a"], ["chunk_overlap must be >= 0"]),
    (["embed", "--dimensions", "0", "a"], ["dimensions=0"]),
    (["embed", "--dtype", "float99", "a"], ["'float99'"]),
    (["embed", "--batch-size", "0", "a"], ["batch_size", "0"]),
    (["embed", "-i", "{tmp}/docs.csv"], ["no column 'text'"]),
    (["embed", "a", "-o", "{tmp}/out.xml"], ["out.xml"]),
    (["eval", "awareness", "-i", "{tmp}/aware.jsonl", "--axis", "topic=?", "--axis", "tonne=?"], ["'tonne'"]),
    (["eval", "awareness", "-i", "{tmp}/aware.jsonl", "--axis", "topic=?", "--axis", "tone=?", "--dtype", "x"],
     ["dtype='x'"]),
    (["eval", "awareness", "-i", "{tmp}/aware.jsonl", "--axis", "topic=?", "--axis", "tone=?", "--batch-size", "0"],
     ["batch_size"]),
    (["eval", "awareness", "-i", "{tmp}/aware.jsonl", "--axis", "topic=?", "--axis", "tone=?", "--png",
      "{tmp}/no/dir/a.png"], ["does not exist"]),
    (["eval", "clustering", "-i", "{tmp}/aware.jsonl", "--label-column", "topic", "--limit", "-3"], ["limit"]),
    (["eval", "sts", "-i", "{tmp}/aware.jsonl"], ["no column 'sentence1'"]),
]


@pytest.mark.parametrize("args, needles", BEFORE_LOAD, ids=[" ".join(a)[:60] for a, _ in BEFORE_LOAD])
def test_argument_file_and_column_errors_come_before_any_load(tiny_bert_dir: Path, tmp_path: Path,
                                                              loads: list[str], args: list[str],
                                                              needles: list[str]) -> None:
    for name, content in FILES.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    write_jsonl(tmp_path / "aware.jsonl", [{"text": t, "topic": str(i % 2), "tone": str(i % 3)}
                                           for i, t in enumerate(TEXTS)])
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    command = args[:2] if args[0] == "eval" else args[:1]
    assert_one_error_line(run(*command, "-m", tiny_bert_dir, *args[len(command):]), *needles)
    assert loads == []  # not even started: the load itself checks nothing of these


def test_an_unwritable_user_cache_is_a_warning_and_an_asked_for_cache_an_error(tiny_bert_dir: Path, tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.delenv("INBEDDER_CACHE")
    monkeypatch.setenv("INBEDDER_USER_CACHE", str(blocker / "embeddings.sqlite"))
    result = ok(run("cluster", "-m", tiny_bert_dir, "--device", "cpu", "-k", "2", "-q", *TEXTS))
    assert result.stderr.startswith(f"Warning: the user cache {blocker / 'embeddings.sqlite'} cannot be written")
    assert len(jsonl(result.stdout)) == len(TEXTS)
    assert_one_error_line(run("cluster", "-m", tiny_bert_dir, "-k", "2", "--cache", blocker / "c.sqlite", *TEXTS),
                          "a-file")
