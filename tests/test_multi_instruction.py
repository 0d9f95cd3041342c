"""encode(texts, instructions=[...]): equal to k separate calls; the causal family computes each input once."""

from __future__ import annotations

import numpy as np
import pytest

from inbedder.errors import InbedderError

TEXTS = ["I love cat!", "I dislike dog!", "The funds rose less than 0.5 per cent on Friday.", "Where is the food?",
         "Parton energy loss in QCD matter. " * 5, "a", ""]
QS = ["What is the animal mentioned here?", "What is the emotion?", " leading space?",
      "What is the animal mentioned here?"]


@pytest.mark.parametrize("value", ["fst_gen", "avg_ppt"])
@pytest.mark.parametrize("layer", [1, -1])
@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.filterwarnings("ignore:.*were truncated")
def test_many_instructions_equal_separate_calls(llama, value: str, layer: int, batch_size: int) -> None:
    many = llama.encode(TEXTS, instructions=QS, output_value=value, layer=layer, batch_size=batch_size)
    sep = np.stack([llama.encode(TEXTS, instruction=q, output_value=value, layer=layer, batch_size=batch_size)
                    for q in QS])
    assert many.shape == (4, len(TEXTS), 32) and np.abs(many - sep).max() <= 1e-5


def test_both_instruction_arguments_are_refused(llama) -> None:
    with pytest.raises(InbedderError, match="not both"):
        llama.encode(TEXTS, instruction="q", instructions=QS)
    with pytest.raises(InbedderError, match=r"instructions\[1\]"):
        llama.encode(TEXTS, instructions=["q", 3])
