"""encode(..., cache_dir=DIR): reuse of the same call, refusal of a different one, atomic files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inbedder import load
from inbedder.errors import InputError

TEXTS = ["I love cat!", "I love dog!", "", "I dislike cat!"]
INSTR = "What is the animal mentioned here?"


def test_second_call_reuses_the_directory_without_running_the_model(tiny_bert, tmp_path: Path, monkeypatch) -> None:
    first = tiny_bert.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"embeddings.safetensors", "manifest.json"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["rows"] == 4 and manifest["dim"] == tiny_bert.dim and manifest["format_version"] == 1

    def fail(*args, **kwargs):
        raise AssertionError("the model ran although the cache holds this call")

    monkeypatch.setattr(tiny_bert.encoder, "embed_batch", fail)
    again = tiny_bert.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    normalized = tiny_bert.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1, atol=1e-6)


@pytest.mark.parametrize(
    ("texts", "instruction", "what"),
    [(TEXTS[:3], INSTR, "inputs"), (TEXTS, "What is the emotion expressed here?", "inputs")],
)
def test_a_cache_of_other_inputs_is_refused(tiny_bert, tmp_path: Path, texts, instruction, what) -> None:
    tiny_bert.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)
    with pytest.raises(InputError, match=f"other {what}"):
        tiny_bert.encode(texts, instruction=instruction, cache_dir=tmp_path)


def test_a_cache_of_another_model_or_other_weights_is_refused(tiny_bert, tiny_t5, tiny_bert_dir, tmp_path) -> None:
    tiny_bert.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)
    with pytest.raises(InputError, match="other model, weights, settings"):
        tiny_t5.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)
    changed = load(tiny_bert_dir, device="cpu")
    with torch.no_grad():
        for p in changed.encoder.transformer.parameters():
            p.add_(0.01)
    with pytest.raises(InputError, match="other weights"):
        changed.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)
    shorter = load(tiny_bert_dir, device="cpu", max_length=8)
    with pytest.raises(InputError, match="other settings"):
        shorter.encode(TEXTS, instruction=INSTR, cache_dir=tmp_path)


def test_no_temporary_files_are_left_and_token_output_is_refused(tiny_bert, tmp_path: Path) -> None:
    tiny_bert.encode(TEXTS, cache_dir=tmp_path / "c")
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]
    with pytest.raises(InputError, match="sentence vectors only"):
        tiny_bert.encode(TEXTS, output="token", cache_dir=tmp_path / "d")
