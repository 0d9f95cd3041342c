from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("INBEDDER_GGUF_CACHE", "off")  # no converted GGUF copies in the user's cache (tests turn it on)

from helpers.tiny_causal import build_tiny_llama  # noqa: E402
from helpers.tiny_models import build_plain_bert, build_tiny_bert, build_tiny_t5  # noqa: E402


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def plain_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_plain_bert(tmp_path_factory.mktemp("plain_bert"))


@pytest.fixture(scope="session")
def tiny_t5(tiny_t5_dir: Path):
    from inbedder import load

    return load(tiny_t5_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir: Path):
    from inbedder import load

    return load(tiny_bert_dir, device="cpu")


@pytest.fixture(autouse=True)
def _own_user_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user cache (the commands' default cache) of every test is a file of its own, never the user's."""
    monkeypatch.setenv("INBEDDER_USER_CACHE", str(tmp_path_factory.mktemp("user_cache") / "embeddings.sqlite"))


@pytest.fixture(scope="session", autouse=True)
def _one_thread_for_tiny_models():
    """Tiny models run fastest on one thread (no synchronisation cost), and steadier on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("INBEDDER_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the InBedder reference checkout are marked ``reference`` (see `make test-reference`)."""
    for item in items:
        if {"reference", "reference_repo"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.reference)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-style causal LM with a BPE tokenizer (one per test module)."""
    return build_tiny_llama(tmp_path_factory.mktemp("causal_llama"))


@pytest.fixture(scope="module")
def llama(llama_dir: Path):
    from inbedder import load

    return load(llama_dir, device="cpu", max_new_tokens=4)


@pytest.fixture()
def model_dir(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny BERT, so a test may change its files."""
    import shutil

    return Path(shutil.copytree(tiny_bert_dir, tmp_path / "model"))


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model load, by name."""
    import inbedder.loading

    seen: list[str] = []
    original = inbedder.loading.load

    def counting(name: Any, **kwargs: Any) -> Any:
        seen.append(str(name))
        return original(name, **kwargs)

    monkeypatch.setattr(inbedder.loading, "load", counting)
    return seen


@pytest.fixture(scope="session")
def sts_sentences() -> list[str]:
    """300 STS-B test sentences (both sides of every ninth pair) from the public datasets beside the checkout."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark" / "sts-test.jsonl"
    if not data.exists():
        pytest.skip(f"no STS-B test split at {data}")
    with open(data, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [t for r in rows[::9] for t in (r["sentence1"], r["sentence2"])][:300]
