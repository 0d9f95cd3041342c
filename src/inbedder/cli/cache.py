"""``inbedder cache stats|clear``: look at or empty the embedding cache (:mod:`inbedder.cache`): by default the
one every embedding command reads and adds to (``$INBEDDER_CACHE``, else the user cache).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from .common import cache_path_option

cache_file_option = cache_path_option("Cache file [default: the one every command uses: $INBEDDER_CACHE, else the "
                                      "user cache, ~/.cache/inbedder/embeddings.sqlite].", env=False)


@click.group("cache")
def cache_group() -> None:
    """Look at or empty the embedding cache."""


def _cache_file(cache_path: str | None) -> Path:
    from ..cache.store import default_path

    return Path(cache_path).expanduser() if cache_path else default_path()


@cache_group.command("stats")
@cache_file_option
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def cache_stats(cache_path: str | None, as_json: bool) -> None:
    """Rows, size on disk, models and the hit rate of the last run."""
    from ..cache.store import EmbeddingCache
    from .common import user_errors

    with user_errors():
        path = _cache_file(cache_path)
        if not path.is_file():
            stats: dict[str, Any] = {"path": str(path), "rows": 0, "size_bytes": 0, "models": [], "last_run": None}
        else:
            stats = EmbeddingCache(path).stats()
        if as_json:
            click.echo(json.dumps(stats, indent=2))
            return
        last = stats.get("last_run")
        click.echo(f"path: {stats['path']}{'' if path.is_file() else ' (does not exist yet)'}")
        click.echo(f"rows: {stats['rows']}\nsize: {stats['size_bytes'] / 1e6:.2f} MB")
        for m in stats["models"]:
            click.echo(f"model: {m['name']} ({m['rows']} rows)")
        click.echo(f"last run: {last['hits']} hits, {last['misses']} misses, hit rate {last['hit_rate']:.1%}"
                   if last else "last run: none")


@cache_group.command("clear")
@click.option("--model", help="Delete only the rows of this model (the name it was loaded by).")
@cache_file_option
def cache_clear(model: str | None, cache_path: str | None) -> None:
    """Delete cached vectors: all of them, or one model's."""
    from ..cache.store import EmbeddingCache
    from .common import user_errors

    with user_errors():
        path = _cache_file(cache_path)
        if not path.is_file():
            if model:
                raise InputError(f"no cache at {str(path)!r}: nothing to clear for model {model!r}")
            click.echo(f"no cache at {path}: nothing to clear")
            return
        deleted = EmbeddingCache(path).clear(model)
        click.echo(f"deleted {deleted} rows{f' of model {model}' if model else ''} from {path}")
