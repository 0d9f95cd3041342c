"""``inbedder eval`` against a tiny model: results equal the library's, user errors are one line, exit 1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from helpers.cli_checks import ok
from inbedder.cli import main
from inbedder.evaluation import EvalSettings, load_awareness, load_sts

ENV = {f"INBEDDER_{name}": None for name in ("MODEL", "BATCH_SIZE", "DEVICE", "DTYPE")}
TEXTS = ["A cat sat on the mat.", "The Federal Reserve raised its rate.", "Dynamical degree of freedom in gravity",
         "I love dog!", "The funds rose on Friday.", "Parton energy loss in QCD matter."]


def run(*args: str | os.PathLike[str]) -> Result:
    return CliRunner(env=ENV, catch_exceptions=False).invoke(main, ["eval", *map(os.fspath, args)])


def one_line_error(result: Result, *parts: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def sts_file(tmp_path: Path) -> Path:
    rows = [{"sentence1": TEXTS[i], "sentence2": TEXTS[(i + 1) % 6], "score": float(i % 4)} for i in range(6)]
    return jsonl(tmp_path / "sts.jsonl", rows)


@pytest.fixture
def aware_file(tmp_path: Path) -> Path:
    rows = [{"text": t, "topic": f"t{i % 2}", "tone": f"n{i % 3}"} for i, t in enumerate(TEXTS)]
    return jsonl(tmp_path / "aware.jsonl", rows)


def test_sts_result_equals_library(tiny_bert: Any, tiny_bert_dir: Path, sts_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "sts.json"
    result = ok(run("sts", "-m", tiny_bert_dir, "--device", "cpu", "-i", sts_file, "--instruction", "Represent:",
                    "-o", out))
    assert "sts: spearman = " in result.stderr
    saved = json.loads(out.read_text())
    expected = load_sts(sts_file).evaluate(tiny_bert, instruction="Represent:")
    assert saved["metrics"] == pytest.approx(expected)
    assert saved["primary_metric"] == "spearman" and saved["task"] == "sts"
    assert saved["settings"]["instruction"] == "Represent:" and saved["data"][0]["path"] == str(sts_file)
    assert {"read_s", "load_s", "eval_s"} <= set(saved["timings"])


def test_awareness_matrix_heatmap_and_summary(tiny_bert: Any, tiny_bert_dir: Path, aware_file: Path,
                                              tmp_path: Path) -> None:
    out, png = tmp_path / "a.json", tmp_path / "a.png"
    ok(run("awareness", "-m", tiny_bert_dir, "--device", "cpu", "-i", aware_file, "--axis", "topic=What topic?",
           "--axis", "tone=What tone?", "-o", out, "--png", png, "--baseline"))
    saved = json.loads(out.read_text())
    axes = {"topic": "What topic?", "tone": "What tone?"}
    expected = load_awareness(aware_file, axes).run(tiny_bert, EvalSettings())
    assert {a: pytest.approx(row) for a, row in expected.matrix.items()} == saved["matrix"]
    assert saved["summary"] == pytest.approx(expected.summary)
    assert set(saved["baseline"]) == {"topic", "tone"} and saved["settings"]["axes"] == axes
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_robustness_lists_and_report(tiny_bert_dir: Path, tmp_path: Path) -> None:
    rows = [{"anchor": TEXTS[i], "positive": TEXTS[i + 1], "negative": TEXTS[i + 2]} for i in range(4)]
    data = jsonl(tmp_path / "t.jsonl", rows)
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps({"correct": ["What topic?", "Which topic?"], "incorrect": ["What tone?"]}))
    out = tmp_path / "robust.json"
    ok(run("triplet", "-m", tiny_bert_dir, "--device", "cpu", "-i", data, "--instructions-file", lists, "-o", out))
    saved = json.loads(out.read_text())
    assert [r["instruction"] for r in saved["per_instruction"]] == ["What topic?", "Which topic?", "What tone?"]
    assert saved["primary_metric"] == "correct.mean" and "gap" in saved["metrics"]
    ok(run("triplet", "-m", tiny_bert_dir, "--device", "cpu", "-i", data, "--correct", "A", "-o", tmp_path / "b.json"))
    table = ok(run("report", out, tmp_path / "b.json")).stdout
    assert table.count("| triplet |") == 2 and "correct.mean" in table


def test_other_tasks_run(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from inbedder.evaluation.retrieval import write_beir

    model = ["-m", str(tiny_bert_dir), "--device", "cpu"]
    labels = jsonl(tmp_path / "l.jsonl", [{"text": t, "label": str(i % 2)} for i, t in enumerate(TEXTS * 2)])
    assert "v_measure" in json.loads(ok(run("clustering", *model, "-i", labels)).stdout)["metrics"]
    result = json.loads(ok(run("classification", *model, "-i", labels, "--test", labels)).stdout)
    assert result["metrics"]["n_test"] == 12
    beir = write_beir(tmp_path / "beir", {f"d{i}": t for i, t in enumerate(TEXTS)}, {"q": "cat"}, {"q": {"d0": 1}})
    assert "ndcg@10" in json.loads(ok(run("retrieval", *model, "-i", beir)).stdout)["metrics"]
    text = jsonl(tmp_path / "x.jsonl", [{"candidate": t, "references": [TEXTS[0]], "score": i} for i, t in
                                        enumerate(TEXTS)])
    assert "pearson" in json.loads(ok(run("text", *model, "-i", text)).stdout)["metrics"]
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(TEXTS), encoding="utf-8")
    metrics = json.loads(ok(run("latency", *model, "-i", lines, "--batch-size", "2")).stdout)["metrics"]
    assert metrics["batches"] == 3 and metrics["tokens_per_s"] > 0


@pytest.mark.parametrize(("content", "args", "parts"), [
    ('{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "sentence2": "b", "score": NaN}\n',
     ["sts"], ["bad.jsonl: row 2 (line 2), column 'score'", "not a valid number"]),
    ('{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "score": 2}\n',
     ["sts"], ["bad.jsonl: row 2 (line 2), column 'sentence2': missing"]),
    ("", ["sts"], ["bad.jsonl: the file has no rows"]),
    ('{"text": "a", "topic": "x"}\n', ["awareness", "--axis", "topic=?", "--axis", "tonne=?"],
     ["bad.jsonl: no column 'tonne'", "columns: 'text', 'topic'"]),
    ('{"text": "a", "topic": "x"}\n', ["awareness", "--axis", "topic"], ["is not NAME=VALUE"]),
    ('{"text": "a", "label": "x"}\n', ["clustering", "--correct", "a", "--instructions-file", "x.json"],
     ["not both"]),
])
def test_bad_data_exits_1_with_one_line(tiny_bert_dir: Path, tmp_path: Path, content: str, args: list[str],
                                        parts: list[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    one_line_error(run(*args, "-m", tiny_bert_dir, "-i", bad), *parts)


def test_without_model_awareness_uses_the_default_answer_model_as_cluster_does(
        tiny_bert: Any, aware_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inbedder
    from inbedder.cli import common

    asked: list[str] = []

    def load_model(model: str, *_: Any, **__: Any) -> Any:
        asked.append(model)
        return tiny_bert

    monkeypatch.setattr(common, "load_model", load_model)
    axes = ["--axis", "topic=What topic?", "--axis", "tone=What tone?"]
    saved = json.loads(ok(run("awareness", "-i", aware_file, *axes, "--no-cache")).stdout)
    assert asked == [inbedder.DEFAULT_ANSWER_MODEL] and saved["settings"]["model_loaded"] is True
    help_text = " ".join(ok(run("awareness", "--help")).stdout.split())
    assert f"[default: {inbedder.DEFAULT_ANSWER_MODEL}]" in help_text
    assert help_text.count("[default: qwen") == 1


def test_missing_model_and_output_folder(sts_file: Path, tmp_path: Path) -> None:
    one_line_error(run("sts", "-m", "", "-i", sts_file), "no model given")
    one_line_error(run("sts", "-m", "minilm", "-i", sts_file, "-o", tmp_path / "nope" / "r.json"), "does not exist")
    one_line_error(run("report", tmp_path / "missing.json"), "missing.json")
