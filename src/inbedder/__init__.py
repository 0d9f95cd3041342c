"""inbedder: instruction-following text embeddings.

>>> from inbedder import load
>>> model = load("minilm")                                                       # doctest: +SKIP
>>> model.encode("A cat sat on the mat.", instruction="Represent the sentence:").shape   # doctest: +SKIP
(384,)
"""

from __future__ import annotations

from .engine import Embedder
from .errors import InbedderError
from .loading import load
from .prompts import instruction_template

__version__ = "0.1.0"
__all__ = ["Embedder", "InbedderError", "__version__", "instruction_template", "load"]
