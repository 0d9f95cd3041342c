"""Several instructions, ``dimensions`` and ``long_text`` through every door: the library's cached helper (served
without loading the model), ``inbedder embed`` (click and the fast cached path) and the server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from inbedder.cli import main
from inbedder.cli.fast import serve_cached
from inbedder.load_free import encode_cached

TEXTS = ["a cat sat on the mat", "the bank raised its rate", "a dog ran in the park"]
QUESTIONS = ["What is the animal?", "What is the topic?"]
LONG = "the cat sat on the mat and purred " * 12 + "interest rates rose at the central bank " * 12


def run(*args: Any) -> Result:
    env = {name: None for name in ("INBEDDER_MODEL", "INBEDDER_CACHE", "INBEDDER_DEVICE", "INBEDDER_DTYPE",
                                   "INBEDDER_NORMALIZE", "INBEDDER_BATCH_SIZE")}
    result = CliRunner(env=env, catch_exceptions=False).invoke(main, [os.fspath(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.filterwarnings("ignore:.*were truncated")
@pytest.mark.parametrize("options", [{"dimensions": 8}, {"instructions": QUESTIONS},
                                     {"long_text": "chunk", "chunk_overlap": 4},
                                     {"instructions": QUESTIONS, "dimensions": 5}], ids=str)
def test_cached_helper_serves_every_option_without_loading(tiny_bert: Any, model_dir: Path, tmp_path: Path,
                                                           loads: list[str], options: dict[str, Any]) -> None:
    texts = [*TEXTS, LONG]
    asked = None if "instructions" in options else "Represent the sentence:"
    expected = tiny_bert.encode(texts, asked, **options)
    cache = tmp_path / "c.sqlite"
    first = encode_cached(model_dir, texts, asked, cache=cache, device="cpu", **options)
    again = encode_cached(model_dir, texts, asked, cache=cache, device="cpu", **options)
    assert len(loads) == 1  # the second call was served from the cache
    assert again.shape == expected.shape == first.shape
    np.testing.assert_allclose(again, expected, atol=1e-5)


def test_cached_helper_names_a_bad_dimension_instead_of_serving(model_dir: Path, tmp_path: Path) -> None:
    from inbedder.errors import InputError

    cache = tmp_path / "c.sqlite"
    encode_cached(model_dir, TEXTS, cache=cache, device="cpu")
    with pytest.raises(InputError, match="dimensions=99 is out of range"):
        encode_cached(model_dir, TEXTS, cache=cache, device="cpu", dimensions=99)


def test_embed_with_several_instructions_writes_each_text_under_each(tiny_bert: Any, model_dir: Path,
                                                                     tmp_path: Path) -> None:
    args = ["embed", "-m", model_dir, "--device", "cpu", *[a for q in QUESTIONS for a in ("--instruction", q)],
            "--dimensions", "6", *TEXTS]
    got = rows(run(*args).stdout)
    assert [(r["index"], r["text"], r["instruction"]) for r in got] == [
        (j * len(TEXTS) + i, t, q) for j, q in enumerate(QUESTIONS) for i, t in enumerate(TEXTS)]
    expected = tiny_bert.encode(TEXTS, instructions=QUESTIONS, dimensions=6).reshape(-1, 6)
    np.testing.assert_allclose(np.array([r["embedding"] for r in got]), expected, atol=1e-5)
    # the same call with a cache: the second run is answered by the fast path, with the same bytes
    cache = tmp_path / "c.sqlite"
    computed, served = rows(run(*args, "--cache", cache).stdout), rows(run(*args, "--cache", cache).stdout)
    assert [{**r, "embedding": None} for r in served] == [{**r, "embedding": None} for r in computed]
    np.testing.assert_allclose([r["embedding"] for r in served], [r["embedding"] for r in computed], atol=1e-6)


def test_fast_path_serves_several_instructions_and_the_new_options(model_dir: Path, tmp_path: Path,
                                                                   capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    cache = tmp_path / "c.sqlite"
    args = [os.fspath(a) for a in ["embed", "-m", model_dir, "--device", "cpu", "--instruction", QUESTIONS[0],
                                   "--instruction", QUESTIONS[1], "--long-text", "chunk", "--chunk-overlap", "2",
                                   "--dimensions", "4", "--cache", cache, *TEXTS]]
    written = run(*args).stdout_bytes
    capsysbinary.readouterr()
    assert serve_cached(args)
    assert capsysbinary.readouterr().out == written


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_embed_long_text_chunk_equals_the_library(tiny_bert: Any, model_dir: Path) -> None:
    got = rows(run("embed", "-m", model_dir, "--device", "cpu", "--long-text", "chunk", "--chunk-overlap", "4",
                   LONG).stdout)
    expected = tiny_bert.encode([LONG], long_text="chunk", chunk_overlap=4)
    np.testing.assert_allclose(np.array([r["embedding"] for r in got]), expected, atol=1e-5)


def test_embed_rejects_several_instructions_with_per_row_ones(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "a", "instruction": "Q"}\n{"text": "b"}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["embed", "-m", os.fspath(model_dir), "--device", "cpu", "-i", os.fspath(data),
                                       "--instruction", "A", "--instruction", "B"])
    assert result.exit_code == 1 and "row 0 carries its own instruction" in result.output
