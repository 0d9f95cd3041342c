"""The causal-LM answer family (InBedder), one module a job: the encoder, its passes, its questions, settings, pooling.

``encoder`` loads a decoder, builds and tokenizes the prompts and dispatches a batch; ``settings`` checks what a call
asks for; ``pooling`` turns hidden states into vectors; ``questions`` reads one text under several questions. Names
are imported on first use, so reading the settings loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .encoder import CausalEncoder
    from .pooling import MIN_SHARED_PREFIX, pool, shared_prefix
    from .settings import INBEDDER_PATTERN, Generation, OutputValue

__all__ = ["INBEDDER_PATTERN", "MIN_SHARED_PREFIX", "CausalEncoder", "Generation", "OutputValue", "pool",
           "shared_prefix"]

_WHERE = {"CausalEncoder": "encoder", "MIN_SHARED_PREFIX": "pooling", "pool": "pooling",
          "shared_prefix": "pooling", "INBEDDER_PATTERN": "settings", "Generation": "settings",
          "OutputValue": "settings"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
