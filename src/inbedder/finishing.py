"""The last step of every ``encode``: sentence vectors checked for NaN and infinity, and (for rows read back from
the cache) cut to ``dimensions`` and scaled to length 1.

Both the engine (:meth:`inbedder.engine.Embedder.encode`) and the load-free cached path (:mod:`inbedder.load_free`)
finish through here, so a bad row is reported the same way whichever path served it. The engine normalizes on the
model's device with torch before it calls :func:`check_finite`; a row read from the cache is float32 bytes, which
:func:`finish_rows` normalizes with numpy. Importing this module imports neither torch nor numpy.

>>> finish_rows(np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32), normalize=True)   # doctest: +SKIP
array([[0.6, 0.8], [1. , 0. ]], dtype=float32)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NonFiniteError

if TYPE_CHECKING:
    import numpy as np


def check_finite(vectors: np.ndarray) -> None:
    """Raise :class:`~inbedder.errors.NonFiniteError` naming the first rows of ``(n, d)`` ``vectors`` that hold a
    NaN or an infinity."""
    import numpy as np

    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1)).tolist()
    if bad:
        raise NonFiniteError(f"non-finite values in the vectors of rows {bad[:10]}; "
                             "this happens with float16 overflow: try dtype='float32' or 'bfloat16'")


def finish_rows(vectors: np.ndarray, normalize: bool = False, dimensions: int | None = None) -> np.ndarray:
    """``(n, d)`` rows as float32, checked; ``dimensions`` keeps the first ones scaled back to length 1 (as
    ``normalize`` scales whole rows; a zero row stays zero)."""
    import numpy as np

    if dimensions is not None:
        vectors, normalize = vectors[:, :dimensions], True
    check_finite(vectors)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, np.float32(1e-12))
    return vectors.astype(np.float32, copy=False)
