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
from .registry import DEFAULT_ANSWER_MODEL
from .version import __version__

if TYPE_CHECKING:
    from .apps.clustering import cluster
    from .apps.search import SearchIndex
    from .apps.similarity import similarity
    from .engine import Embedder
    from .loading import load

__all__ = ["DEFAULT_ANSWER_MODEL", "Embedder", "InbedderError", "SearchIndex", "__version__", "cluster",
           "instruction_template", "load", "similarity"]


_LAZY = {"load": "loading", "Embedder": "engine", "cluster": "apps.clustering", "SearchIndex": "apps.search",
         "similarity": "apps.similarity"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'inbedder' has no attribute {name!r}")
