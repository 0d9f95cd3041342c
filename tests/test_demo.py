"""The showcase corpus that ships with the package, and `make demo` (slow: real offline models)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from inbedder import DEFAULT_ANSWER_MODEL, load
from inbedder.data import path, showcase
from inbedder.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_showcase_has_two_balanced_independent_label_axes() -> None:
    rows = showcase()
    assert path("showcase.jsonl").is_file()
    assert 40 <= len(rows) <= 60
    assert [r["id"] for r in rows] == list(range(len(rows)))
    assert len({r["text"] for r in rows}) == len(rows)
    pairs = Counter((r["topic"], r["sentiment"]) for r in rows)
    assert set(pairs) == {(t, s) for t in ("food", "travel", "work", "sport") for s in ("positive", "negative")}
    assert set(pairs.values()) == {len(rows) // 8}
    assert all(isinstance(r["text"], str) and 20 < len(r["text"]) < 120 for r in rows)


def test_unknown_data_file_names_the_ones_there_are() -> None:
    with pytest.raises(InputError, match="showcase.jsonl"):
        path("showcase.json")


def test_cli_reads_the_showcase_with_its_labels(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from inbedder.cli import main

    out = tmp_path / "rows.jsonl"
    result = CliRunner(env={"INBEDDER_CACHE": str(tmp_path / "c.sqlite")}).invoke(
        main, ["cluster", "-m", str(tiny_bert_dir), "--device", "cpu", "-i", str(path()), "-k", "2",
               "--label-column", "sentiment", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(showcase())


@pytest.mark.slow
def test_demo_runs_offline_and_writes_its_reports(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INBEDDER_DEMO_OUT": str(tmp_path)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "V-measure against each label" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "minilm-topic.html").is_file() and (tmp_path / "minilm-sentiment.html").is_file()
    assert f"the default answer model ({DEFAULT_ANSWER_MODEL!r})" in proc.stdout and "skipped" not in proc.stdout
    slug = DEFAULT_ANSWER_MODEL.split("-")[0]
    assert (tmp_path / f"{slug}-topic.html").is_file() and (tmp_path / f"{slug}-sentiment.html").is_file()
    print(f"demo took {elapsed:.0f}s")


@pytest.mark.slow
def test_the_default_answer_model_groups_the_showcase_by_the_question_asked() -> None:
    """What the demo shows: under the topic question the clusters follow topic, under the sentiment question
    sentiment (measured V 0.84 and 0.87 on the instructed axis, under 0.1 off it; SmolLM2 gives 0.58 on topic
    under both questions and 0.00 on sentiment). Its prompt is the model's own chat template asking for one word."""
    from inbedder.evaluation import AwarenessTask, EvalSettings

    model = load(DEFAULT_ANSWER_MODEL)
    assert model.encoder.output_value.value == "fst_gen"
    rows = showcase()
    (prompt,), _, _ = model.encoder.prompts([("Q?", rows[0]["text"])])
    assert prompt == model.encoder.tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{rows[0]['text']}\n\nQ? Answer with one word."}], tokenize=False,
        add_generation_prompt=True)
    questions = {"topic": "What is the topic of this text?", "sentiment": "Is this text positive or negative?"}
    task = AwarenessTask([r["text"] for r in rows], {axis: [r[axis] for r in rows] for axis in questions}, questions)
    matrix = task.run(model, EvalSettings(batch_size=16, seed=0, progress=False)).matrix
    assert matrix["topic"]["topic"] >= 0.6 and matrix["sentiment"]["sentiment"] >= 0.6, matrix
    assert matrix["sentiment"]["topic"] <= 0.2 and matrix["topic"]["sentiment"] <= 0.2, matrix
