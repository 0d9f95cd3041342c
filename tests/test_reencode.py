"""``reencoder=``: an answer family's generated answers embedded by another model (the reference's re_encode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inbedder import load
from inbedder.errors import InputError

TEXTS = ["I love cat!", "I dislike dog!", "The funds rose less than 0.5 per cent on Friday.", "I love cat!"]
ANIMAL = "What is the animal mentioned here?"


def test_vectors_are_the_reencoder_vectors_of_the_answers(llama, tiny_bert) -> None:
    _, answers = llama.encode(TEXTS, instruction=ANIMAL, return_generations=True)
    assert any(answers)
    vectors, again = llama.encode(TEXTS, instruction=ANIMAL, reencoder=tiny_bert, return_generations=True)
    assert again == answers
    np.testing.assert_allclose(vectors, tiny_bert.encode(answers), atol=1e-6)
    assert vectors.shape == (len(TEXTS), tiny_bert.dim)
    single = llama.encode(TEXTS[0], instruction=ANIMAL, reencoder=tiny_bert, normalize=True)
    np.testing.assert_allclose(single, tiny_bert.encode(answers[0], normalize=True), atol=1e-6)


def test_load_sets_a_default_reencoder_by_name(llama_dir: Path, tiny_bert_dir: Path, tiny_bert) -> None:
    model = load(llama_dir, device="cpu", max_new_tokens=4, reencoder=str(tiny_bert_dir))
    assert model.dim == tiny_bert.dim
    vectors, answers = model.encode(TEXTS, instruction=ANIMAL, return_generations=True)
    np.testing.assert_allclose(vectors, tiny_bert.encode(answers), atol=1e-6)
    by_name = model.encode(TEXTS, instruction=ANIMAL, reencoder=str(tiny_bert_dir))
    np.testing.assert_allclose(by_name, vectors, atol=1e-6)
    assert list(model.loaded_reencoders) == [str(tiny_bert_dir)]  # loaded once, reused


def test_reencoder_with_an_encode_method_and_the_cache(llama, tmp_path: Path) -> None:
    class Lengths:
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t), 1.0] for t in texts])

    _, answers = llama.encode(TEXTS, instruction=ANIMAL, return_generations=True)
    for _ in range(2):  # the second call reads the answers from the cache
        vectors = llama.encode(TEXTS, instruction=ANIMAL, reencoder=Lengths(), cache=tmp_path / "c.sqlite")
        np.testing.assert_array_equal(vectors, Lengths().encode(answers).astype(np.float32))


def test_reencoder_errors(llama, tiny_bert) -> None:
    with pytest.raises(InputError, match="'instructor', which has none"):
        tiny_bert.encode(TEXTS, reencoder=tiny_bert)
    with pytest.raises(InputError, match="sentence vectors only"):
        llama.encode(TEXTS, instruction=ANIMAL, reencoder=tiny_bert, output="token")
    with pytest.raises(InputError, match="encode"):
        llama.encode(TEXTS, instruction=ANIMAL, reencoder=42)


def test_a_model_directory_carries_its_defaults(llama_dir: Path, tiny_bert_dir: Path, tiny_bert,
                                                tmp_path: Path) -> None:
    """``inbedder.json`` {"defaults": {...}} in a model directory: load() options the caller can override."""
    import json
    import shutil

    from inbedder.errors import ModelLoadError

    model_dir = Path(shutil.copytree(llama_dir, tmp_path / "trained"))
    defaults = {"output_value": "avg_gen", "max_new_tokens": 4, "reencoder": str(tiny_bert_dir)}
    (model_dir / "inbedder.json").write_text(json.dumps({"defaults": defaults}), encoding="utf-8")
    model = load(model_dir, device="cpu")
    assert model.default_reencoder is not None and model.dim == tiny_bert.dim
    vectors, answers = model.encode(TEXTS, instruction=ANIMAL, return_generations=True)
    np.testing.assert_allclose(vectors, tiny_bert.encode(answers), atol=1e-6)
    own = load(model_dir, device="cpu", reencoder=False, output_value="fst_gen")  # the caller's options win
    assert own.default_reencoder is None and own.encoder.output_value.value == "fst_gen"
    np.testing.assert_allclose(own.encode(TEXTS, instruction=ANIMAL),
                               load(llama_dir, device="cpu").encode(TEXTS, instruction=ANIMAL), atol=1e-6)
    (model_dir / "inbedder.json").write_text('{"defaults": [1]}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="inbedder.json"):
        load(model_dir, device="cpu")
