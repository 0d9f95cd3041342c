"""The causal-LM answer family (InBedder), one module a job: encoder, passes, readouts, questions, settings, pooling.

``encoder`` loads a decoder, builds and tokenizes the prompts and dispatches a batch; ``settings`` reads what a call
asks for, once, into a frozen ``CallSettings``; ``passes`` runs the forward pass and ``generate()``, reading several
layers at once; ``pooling`` turns hidden states into vectors; ``readouts`` reads every value at every layer of one
batch; ``questions`` reads one text under several questions. Names are imported on first use, so reading the
settings loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .encoder import CausalEncoder
    from .pooling import MIN_SHARED_PREFIX, pool, shared_prefix
    from .readouts import Readouts, Sweep
    from .settings import INBEDDER_PATTERN, CallSettings, Generation, OutputValue

__all__ = ["INBEDDER_PATTERN", "MIN_SHARED_PREFIX", "CallSettings", "CausalEncoder", "Generation", "OutputValue",
           "Readouts", "Sweep", "pool", "shared_prefix"]

_WHERE = {"CausalEncoder": "encoder", "MIN_SHARED_PREFIX": "pooling", "pool": "pooling", "shared_prefix": "pooling",
          "Readouts": "readouts", "Sweep": "readouts", "INBEDDER_PATTERN": "settings", "CallSettings": "settings",
          "Generation": "settings", "OutputValue": "settings"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
