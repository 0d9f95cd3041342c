"""encode(long_text="chunk"): windows, overlap, token weights, and equality with a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from inbedder.errors import InputError
from inbedder.long_text import LongTexts, split_long, windows

INSTRUCTION = "Represent the sentence: "
LONG = " ".join(["the quick brown fox jumps over the lazy dog."] * 20)


def test_windows_cover_the_text_with_overlap() -> None:
    assert windows(10, size=4, overlap=1) == [(0, 4), (3, 7), (6, 10)]
    assert windows(3, size=4, overlap=1) == [(0, 3)]
    assert windows(8, size=4, overlap=0) == [(0, 4), (4, 8)]


@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_chunk_is_the_weighted_mean_of_the_windows(tiny_bert) -> None:
    chunks = split_long(tiny_bert.encoder, [(INSTRUCTION, LONG), (INSTRUCTION, "short")], LongTexts("chunk", 4), {})
    assert chunks.split == 1 and chunks.owner[-1] == 1 and chunks.pieces[-1] == (INSTRUCTION, "short")
    lengths, limit = tiny_bert.encoder.row_lengths(chunks.pieces)
    assert max(lengths) <= limit and len(chunks.pieces) > 3
    pieces = [p for p, o in zip(chunks.pieces, chunks.owner, strict=True) if o == 0]
    weights = np.array([w for w, o in zip(chunks.weight, chunks.owner, strict=True) if o == 0], dtype=np.float32)
    by_hand = (tiny_bert.encode([t for _, t in pieces], instruction=INSTRUCTION) * weights[:, None]).sum(0)
    by_hand /= weights.sum()
    got = tiny_bert.encode([LONG, "short"], instruction=INSTRUCTION, long_text="chunk", chunk_overlap=4)
    np.testing.assert_allclose(got[0], by_hand, atol=1e-5)
    np.testing.assert_allclose(got[1], tiny_bert.encode("short", instruction=INSTRUCTION), atol=1e-5)  # as truncate
    assert np.abs(got[0] - tiny_bert.encode(LONG, instruction=INSTRUCTION)).max() > 1e-3


def test_chunk_in_every_family(tiny_t5, llama) -> None:
    for model in (tiny_t5, llama):
        vector = model.encode(LONG * 2, instruction="What is it?", long_text="chunk")
        assert np.isfinite(vector).all() and vector.shape == (model.dim,)
    assert abs(np.linalg.norm(tiny_t5.encode(LONG, long_text="chunk")) - 1) < 1e-5  # Normalize: length 1 again


def test_bad_settings_are_named(tiny_bert) -> None:
    with pytest.raises(InputError, match="long_text='sideways' is not valid"):
        tiny_bert.encode("a", long_text="sideways")
    with pytest.raises(InputError, match="chunk_overlap must be >= 0"):
        tiny_bert.encode("a", long_text="chunk", chunk_overlap=-1)
    with pytest.raises(InputError, match="sentence vectors only"):
        tiny_bert.encode("a", long_text="chunk", output="token")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_second_subject_pulls_the_chunked_vector() -> None:
    """A text whose second half is about another subject moves towards that subject in chunk mode."""
    from inbedder import load

    model = load("minilm", device="cpu")
    cooking = "Simmer the tomato sauce with garlic, basil and olive oil, then stir in the boiled pasta. " * 14
    football = "The striker scored twice in the second half and the goalkeeper saved a late penalty. " * 14
    text = cooking + football
    probe = model.encode("a football match: goals, players and the score", normalize=True)
    truncated = model.encode(text, normalize=True)
    chunked = model.encode(text, long_text="chunk", normalize=True)
    assert float(chunked @ probe) > float(truncated @ probe) + 0.1
