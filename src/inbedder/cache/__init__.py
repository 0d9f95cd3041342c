"""Embedding caches.

- ``store.py``      :class:`EmbeddingCache`: the content-addressed SQLite store shared by library, CLI and server
- ``directory.py``  ``encode(..., cache_dir=DIR)``: one call's vectors kept in a folder (safetensors)
- ``packed.py``     :class:`~inbedder.cache.packed.PackedRows`: cached vectors as the bytes they are stored as
- ``keys.py``       the request key and the model files' stats (serving a fully cached run without a load is
                    :mod:`inbedder.load_free`, above the engine)

Importing this package imports neither torch nor numpy (a fully cached CLI run relies on it).
"""

from __future__ import annotations

from .store import EmbeddingCache, default_path, open_cache, row_key

__all__ = ["EmbeddingCache", "default_path", "open_cache", "row_key"]
