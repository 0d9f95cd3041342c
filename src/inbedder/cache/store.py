"""A persistent, content-addressed embedding cache in one SQLite file, shared by the library, CLI and server.

A row's key is a hash of the model key (weights fingerprint + the settings that change vectors) and of the
instruction and the text; it holds the float32 vector and, for answer families, the generated answer.
``encode(..., cache=True)`` computes only the missing rows and writes each batch as soon as it is done, so
an interrupted run keeps what it finished and a rerun resumes. Several processes may share one file: WAL
mode, one writer at a time, retries while the file is busy.

>>> cache = EmbeddingCache("/tmp/demo.sqlite")              # doctest: +SKIP
>>> model.encode(texts, instruction="...", cache=cache)       # doctest: +SKIP
>>> cache.stats()["last_run"]["hit_rate"]                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InputError

if TYPE_CHECKING:  # torch and numpy stay unimported: a fully cached CLI run needs neither
    import numpy as np

    from ..encoders.base import Pair

FORMAT_VERSION = 1
# keys per SELECT: SQLite's variable limit is 32766 from 3.32 on, 999 before
_CHUNK = 30000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (model_key TEXT PRIMARY KEY, name TEXT NOT NULL, about TEXT NOT NULL,
                                   created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, model_key TEXT NOT NULL, dim INTEGER NOT NULL,
                                       vector BLOB NOT NULL, answer TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_model ON embeddings (model_key);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, model_key TEXT NOT NULL,
                                 hits INTEGER NOT NULL, misses INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS requests (request_key TEXT PRIMARY KEY, model_key TEXT NOT NULL, about TEXT NOT NULL,
                                     created REAL NOT NULL);
"""


def default_path() -> Path:
    """The cache file ``cache=True`` and the command line use: ``$INBEDDER_CACHE``, else :func:`user_cache_path`."""
    if os.environ.get("INBEDDER_CACHE"):
        return Path(os.environ["INBEDDER_CACHE"]).expanduser()
    return user_cache_path()


def user_cache_path() -> Path:
    """The user cache: ``$INBEDDER_USER_CACHE``, else ``$XDG_CACHE_HOME/inbedder/embeddings.sqlite`` (``~/.cache``
    when XDG_CACHE_HOME is not set). ``INBEDDER_USER_CACHE`` moves only this file (not the model files kept beside
    it), which is what a test suite needs to keep off the user's cache."""
    if os.environ.get("INBEDDER_USER_CACHE"):
        return Path(os.environ["INBEDDER_USER_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "inbedder" / "embeddings.sqlite"


def row_key(model_key: str, pair: Pair) -> bytes:
    instruction, text = pair
    marker = "\x01" if instruction is None else "\x00" + instruction
    return hashlib.sha256(f"{model_key}\x00{marker}\x00{text}".encode()).digest()


class EmbeddingCache:
    """One SQLite file of cached vectors. Safe to share between threads of a process and between processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float = 60.0):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
                found = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
                if found is None:
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
                elif int(found[0]) != FORMAT_VERSION:
                    raise InputError(f"cache {str(self.path)!r} has format version {found[0]}; this inbedder "
                                     f"reads version {FORMAT_VERSION}. Use another --cache file or clear it.")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cache {str(self.path)!r} is not a usable SQLite file: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            yield db
        finally:
            db.close()

    def _retry(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction, retrying while another writer holds the file."""
        delay, deadline = 0.05, time.monotonic() + self.timeout
        while True:
            try:
                with self._connect() as db:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(db)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                    return result
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- used by the engine -------------------------------------------------------------------------------
    def register_model(self, model_key: str, name: str, about: dict[str, Any]) -> None:
        self._retry(lambda db: db.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?)",
                                          (model_key, name, json.dumps(about, sort_keys=True), time.time())))

    def get_many(self, model_key: str, pairs: Sequence[Pair]) -> dict[Pair, tuple[np.ndarray, str | None]]:
        """The cached rows among ``pairs``: pair → (float32 vector, answer or None)."""
        import numpy as np

        return {pair: (np.frombuffer(vector, dtype=np.float32).copy(), answer)
                for pair, (vector, answer) in self.get_many_raw(model_key, pairs).items()}

    def get_many_raw(self, model_key: str, pairs: Sequence[Pair]) -> dict[Pair, tuple[bytes, str | None]]:
        """As :meth:`get_many`, with each vector as its stored bytes (little-endian float32)."""
        keys = {row_key(model_key, p): p for p in pairs}
        found: dict[Pair, tuple[bytes, str | None]] = {}
        items = list(keys)
        with self._connect() as db:
            for start in range(0, len(items), _CHUNK):
                chunk = items[start:start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, vector, answer in db.execute(
                        f"SELECT key, vector, answer FROM embeddings WHERE key IN ({marks})", chunk):
                    found[keys[bytes(key)]] = (bytes(vector), answer)
        return found

    def put_many(self, model_key: str, pairs: Sequence[Pair], vectors: np.ndarray,
                 answers: Sequence[str] | None = None) -> None:
        import numpy as np

        now = time.time()
        if len(vectors) != len(pairs):
            raise InputError(f"put_many got {len(vectors)} vectors for {len(pairs)} rows")
        rows = [(row_key(model_key, p), model_key, int(vectors[i].shape[0]),
                 np.asarray(vectors[i], dtype=np.float32).tobytes(), None if answers is None else answers[i], now)
                for i, p in enumerate(pairs)]
        self._retry(lambda db: db.executemany(  # a row cached without its answer gets the answer later
            "INSERT INTO embeddings VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET answer = excluded.answer "
            "WHERE embeddings.answer IS NULL", rows))

    def record_run(self, model_key: str, hits: int, misses: int) -> None:
        self._retry(lambda db: db.execute("INSERT INTO runs (model_key, hits, misses, at) VALUES (?, ?, ?, ?)",
                                          (model_key, hits, misses, time.time())))

    # -- load-free lookups (inbedder.cache.keys) ---------------------------------------------------------------
    def remember_request(self, request_key: str, model_key: str, about: dict[str, Any]) -> None:
        """Record that loading a model as described by ``request_key`` gives the model key ``model_key``."""
        self._retry(lambda db: db.execute("INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?)",
                                          (request_key, model_key, json.dumps(about, sort_keys=True), time.time())))

    def request(self, request_key: str) -> tuple[str, dict[str, Any]] | None:
        """The model key and the ``about`` recorded for ``request_key``, or None."""
        with self._connect() as db:
            found = db.execute("SELECT model_key, about FROM requests WHERE request_key = ?",
                               (request_key,)).fetchone()
        return None if found is None else (str(found[0]), json.loads(found[1]))

    # -- for people -----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Rows, size on disk, rows per model, and the last run's hits, misses and hit rate."""
        with self._connect() as db:
            rows = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            models = [{"name": name, "model_key": key, "rows": n} for key, name, n in db.execute(
                "SELECT m.model_key, m.name, COUNT(e.key) FROM models m LEFT JOIN embeddings e "
                "ON e.model_key = m.model_key GROUP BY m.model_key ORDER BY m.name")]
            last = db.execute("SELECT hits, misses, at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        last_run = None
        if last is not None:
            hits, misses, at = last
            last_run = {"hits": hits, "misses": misses, "hit_rate": hits / max(1, hits + misses), "at": at}
        return {"path": str(self.path), "rows": rows, "size_bytes": size, "models": models, "last_run": last_run}

    def clear(self, model: str | None = None) -> int:
        """Delete every row, or the rows of models whose name is ``model``; returns the number deleted."""
        def work(db: sqlite3.Connection) -> int:
            if model is None:
                n = db.execute("DELETE FROM embeddings").rowcount
                db.execute("DELETE FROM models")
                db.execute("DELETE FROM runs")
                db.execute("DELETE FROM requests")
                return int(n)
            keys = [k for (k,) in db.execute("SELECT model_key FROM models WHERE name = ?", (model,))]
            if not keys:
                names = [n for (n,) in db.execute("SELECT DISTINCT name FROM models ORDER BY name")]
                raise InputError(f"no model named {model!r} in cache {str(self.path)!r}; "
                                 f"models there: {', '.join(names) or 'none'}")
            marks = ",".join("?" * len(keys))
            n = db.execute(f"DELETE FROM embeddings WHERE model_key IN ({marks})", keys).rowcount
            db.execute(f"DELETE FROM models WHERE model_key IN ({marks})", keys)
            db.execute(f"DELETE FROM requests WHERE model_key IN ({marks})", keys)
            return int(n)

        deleted = self._retry(work)
        with self._connect() as db:
            db.execute("VACUUM")
        return deleted


def open_cache(cache: Any) -> EmbeddingCache | None:
    """``encode``'s ``cache=`` argument: None/False → no cache, True → the default file, a path, or a cache."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return EmbeddingCache()
    if isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return EmbeddingCache(cache)
    raise InputError(f"cache must be True, a path or an EmbeddingCache; got {type(cache).__name__}")
