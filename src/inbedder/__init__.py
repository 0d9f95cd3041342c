"""inbedder: instruction-following text embeddings.

>>> from inbedder import load
>>> model = load("minilm")                                                       # doctest: +SKIP
>>> model.encode("A cat sat on the mat.", instruction="Represent the sentence:").shape   # doctest: +SKIP
(384,)

``load``, ``Embedder``, ``cluster`` and ``SearchIndex`` are imported on first use, so ``import inbedder``
(and the CLI's start) stays fast: torch is loaded only when a model is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import InbedderError
from .prompts import instruction_template

if TYPE_CHECKING:
    from .clustering import cluster
    from .engine import Embedder
    from .loading import load
    from .search import SearchIndex

__version__ = "0.1.0"
__all__ = ["Embedder", "InbedderError", "SearchIndex", "__version__", "cluster", "instruction_template", "load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from .loading import load

        return load
    if name == "Embedder":
        from .engine import Embedder

        return Embedder
    if name == "cluster":
        from .clustering import cluster

        return cluster
    if name == "SearchIndex":
        from .search import SearchIndex

        return SearchIndex
    raise AttributeError(f"module 'inbedder' has no attribute {name!r}")
