"""What one ``encode`` call asks for, validated once: :class:`EncodeSettings`.

The load-free cached path (:mod:`inbedder.load_free`) checks ``batch_size`` here too, before it reads the cache, so
a bad value is refused the same way whether or not a model is loaded. Importing this module imports no torch.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError


def check_batch_size(batch_size: Any) -> int:
    """``batch_size``, a positive int (rows, or texts with several instructions, per batch)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int; got {batch_size!r}")
    return batch_size
