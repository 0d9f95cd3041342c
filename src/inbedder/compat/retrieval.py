"""``encode_queries`` / ``encode_corpus``, the retrieval-evaluation methods of the reference encoders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class QueriesCorpusMixin:
    """Adds the reference encoders' ``encode_queries`` and ``encode_corpus`` on top of ``encode``."""

    encode: Callable[..., Any]  # provided by the class this is mixed into

    def encode_queries(self, queries: list[str], batch_size: int, **kwargs: Any) -> Any:
        return self.encode(queries, batch_size=batch_size, **kwargs)

    def encode_corpus(self, corpus: Any, batch_size: int, **kwargs: Any) -> Any:
        """Corpus as a list of str, a list of ``{"title", "text"}`` dicts, or a dict of lists (as in the original)."""
        if isinstance(corpus, dict):
            sentences = [(corpus["title"][i] + " " + corpus["text"][i]).strip() if "title" in corpus
                         else corpus["text"][i].strip() for i in range(len(corpus["text"]))]
        elif isinstance(corpus, list) and corpus and isinstance(corpus[0], str):
            sentences = corpus
        else:
            sentences = [(d["title"] + " " + d["text"]).strip() if "title" in d else d["text"].strip() for d in corpus]
        return self.encode(sentences, batch_size=batch_size, **kwargs)
