"""The decoder family (Qwen3-Embedding style) against sentence-transformers' own output on a tiny random Qwen2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.tiny_decoder import QUERY_PROMPT, build_tiny_qwen2_embedder
from inbedder import load
from inbedder.encoders.decoder import DEFAULT_FORMAT, format_of_prompts
from inbedder.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:.*were truncated")
TASK = "Given a web search query, retrieve relevant passages that answer the query"
TEXTS = ["I love cat!", "The funds rose less than 0.5 per cent on Friday. " * 4, "short",
         "What is the animal mentioned here? I love dog!  ", "x", "Parton energy loss in QCD matter.",
         "Where is the food stored in a yam plant?", "Capitalism has been dominant in the Western world. " * 2]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_embedder(tmp_path_factory.mktemp("qwen2_embedder"))


@pytest.fixture(scope="module")
def qwen(qwen_dir: Path):
    return load(qwen_dir, device="cpu")


@pytest.fixture(scope="module")
def st_model(qwen_dir: Path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    return sentence_transformers.SentenceTransformer(str(qwen_dir), device="cpu")


def test_detected_from_the_layout(qwen) -> None:
    assert qwen.family == "decoder"
    assert qwen.encoder.prompt_format == "Instruct: {task}\nQuery:"  # Qwen3-Embedding's: no space after Query:
    assert qwen.encoder.normalize and qwen.dim == 32


@pytest.mark.parametrize("batch_size", [1, 7])
def test_matches_sentence_transformers(qwen, st_model, batch_size: int) -> None:
    counts = qwen.encoder.row_lengths([(TASK, t) for t in TEXTS])[0]
    assert len(set(counts)) > 3 and max(counts) > qwen.encoder.max_length  # mixed lengths, one cut
    documents = qwen.encode(TEXTS, batch_size=batch_size)
    np.testing.assert_allclose(documents, st_model.encode(TEXTS, batch_size=batch_size), atol=1e-5, rtol=0)
    queries = qwen.encode(TEXTS, instruction=TASK, batch_size=batch_size)
    np.testing.assert_allclose(queries, st_model.encode(TEXTS, prompt=QUERY_PROMPT, batch_size=batch_size),
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(qwen.encode(TEXTS, instruction="query", batch_size=batch_size),
                               st_model.encode(TEXTS, prompt_name="query", batch_size=batch_size), atol=1e-5, rtol=0)
    assert np.abs(queries - documents).max() > 1e-2  # the instruction changes the vectors
    short = qwen.encode(TEXTS, instruction=TASK, batch_size=batch_size, dimensions=8)
    expected = st_model.encode(TEXTS, prompt=QUERY_PROMPT, batch_size=batch_size, truncate_dim=8)
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert short.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(short, expected, atol=1e-5, rtol=0)


def test_mixed_rows_queries_and_documents(qwen) -> None:
    """Per-row instructions: queries get the prompt, documents (None) none; a ready prompt is kept as it is."""
    mixed = qwen.encode(TEXTS[:4], instruction=[TASK, None, f"Instruct: {TASK}\nQuery:", None])
    np.testing.assert_allclose(mixed[0], qwen.encode(TEXTS[0], instruction=TASK), atol=1e-6)
    np.testing.assert_allclose(mixed[2], qwen.encode(TEXTS[2], instruction=TASK), atol=1e-6)
    np.testing.assert_allclose(mixed[1], qwen.encode(TEXTS[1]), atol=1e-6)


def test_prompt_format_from_the_prompts(qwen_dir: Path, tmp_path: Path) -> None:
    assert format_of_prompts({"query": "Instruct: Retrieve passages\nQuery: "}) == DEFAULT_FORMAT
    assert format_of_prompts({}) == DEFAULT_FORMAT
    spaced = shutil.copytree(qwen_dir, tmp_path / "gte_style")
    config = json.loads((spaced / "config_sentence_transformers.json").read_text())
    config["prompts"]["query"] = QUERY_PROMPT + " "  # gte-Qwen2-instruct's and e5-mistral's format
    (spaced / "config_sentence_transformers.json").write_text(json.dumps(config))
    model = load(spaced, device="cpu")
    assert model.encoder.prompt("Find the animal") == "Instruct: Find the animal\nQuery: "
    assert load(spaced, device="cpu", prompt_format="Task: {task}\n").encoder.prompt("x") == "Task: x\n"


def test_bad_input_is_named(qwen, qwen_dir: Path) -> None:
    with pytest.raises(InputError, match="dimensions=64 is out of range.*32"):
        qwen.encode(["a"], dimensions=64)
    with pytest.raises(InputError, match="sentence vectors only"):
        qwen.encode(["a"], output="token")
    with pytest.raises(InputError, match="must contain \\{task\\}"):
        load(qwen_dir, device="cpu", prompt_format="no placeholder")


def test_server_dimensions(qwen) -> None:
    """The server's ``dimensions`` gives what ``encode(dimensions=...)`` gives."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from inbedder.serve.app import create_app

    with TestClient(create_app({"qwen": qwen})) as client:
        response = client.post("/v1/embeddings", json={"input": TEXTS[:3], "instruction": TASK, "dimensions": 8,
                                                         "truncate": True})  # TEXTS[1] is over the limit
    assert response.status_code == 200
    got = np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, qwen.encode(TEXTS[:3], instruction=TASK, dimensions=8), atol=1e-6)
