"""Everything that runs on Ray (the ``ray`` extra; Ray is imported when a function runs).

- ``dataset.py``  :func:`embed_dataset` and :class:`EmbedBatch`: add a vector column to a ``ray.data.Dataset``
- ``shards.py``   :func:`~inbedder.distributed.shards.embed_files`: parquet files in, a resumable folder of
  parquet files out (``inbedder embed --ray``)
"""

from __future__ import annotations

from .dataset import DEFAULT_COLUMN, EmbedBatch, actor_pool, embed_dataset, user_error

__all__ = ["DEFAULT_COLUMN", "EmbedBatch", "actor_pool", "embed_dataset", "user_error"]
