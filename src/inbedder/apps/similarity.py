"""Cosine similarity between two lists of texts, each embedded under its own instruction.

>>> similarity(model, ["Parton energy loss in QCD matter"], ["The Chiral Phase Transition"],
...            instruction="Represent the Science sentence:")            # doctest: +SKIP
array([[0.71]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError


def similarity(model: Any, a: Any, b: Any, instruction: str | list[str | None] | None = None, *,
               instruction_b: str | list[str | None] | None = None, batch_size: int = 32, cache: Any = None,
               **options: Any) -> np.ndarray:
    """The ``(len(a), len(b))`` cosine matrix. ``instruction`` is for ``a`` and, unless ``instruction_b`` is
    given, for ``b`` too. Either list may also hold ``[instruction, text]`` pairs (then give no instruction)."""
    if isinstance(a, str) or isinstance(b, str):
        raise InputError("similarity compares two lists of texts; wrap a single text in a list")
    b_instruction = instruction if instruction_b is None else instruction_b
    x = model.encode(a, instruction=instruction, normalize=True, batch_size=batch_size, cache=cache, **options)
    y = model.encode(b, instruction=b_instruction, normalize=True, batch_size=batch_size, cache=cache, **options)
    return np.asarray(x @ y.T, dtype=np.float32).reshape(len(x), len(y))
