"""Haystack components: ``InbedderTextEmbedder`` (a query → ``embedding``) and ``InbedderDocumentEmbedder``
(documents → the same documents with ``embedding`` set), shaped like Haystack's SentenceTransformers embedders.

>>> from haystack import Document, Pipeline                                                  # doctest: +SKIP
>>> docs = InbedderDocumentEmbedder(model="minilm", instruction="Represent the document:")       # doctest: +SKIP
>>> docs.warm_up()                                                                          # doctest: +SKIP
>>> docs.run(documents=[Document(content="Cats purr.")])["documents"][0].embedding[:3]     # doctest: +SKIP

Both take ``instruction`` (the query instruction for the text embedder, the document instruction for the
document embedder), ``prefix`` / ``suffix`` added to each text, ``batch_size``, ``progress_bar``,
``normalize_embeddings``, ``device``, ``dtype`` and ``model_kwargs`` (more :func:`inbedder.load` options).
The model is loaded by ``warm_up()`` (or the first ``run``), once per process for the same settings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..errors import InputTypeError, require

require("haystack", "haystack")

from haystack import Document, component, default_from_dict, default_to_dict  # noqa: E402

_MODELS: dict[str, Any] = {}  # loaded models, shared by the components of a process


def _load(model: str, device: str | None, dtype: str, model_kwargs: dict[str, Any]) -> Any:
    key = json.dumps([model, device, dtype, model_kwargs], sort_keys=True, default=str)
    if key not in _MODELS:
        from ..loading import load

        _MODELS[key] = load(model, device=device, dtype=dtype, **model_kwargs)
    return _MODELS[key]


class _Base:
    def __init__(self, model: str = "minilm", *, instruction: str | None = None, prefix: str = "", suffix: str = "",
                 batch_size: int = 32, progress_bar: bool = True, normalize_embeddings: bool = False,
                 device: str | None = None, dtype: str = "float32", model_kwargs: dict[str, Any] | None = None):
        if instruction is not None and not isinstance(instruction, str):
            raise InputTypeError(f"instruction must be a str or None; got {type(instruction).__name__}")
        self.model = model
        self.instruction = instruction
        self.prefix = prefix
        self.suffix = suffix
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.normalize_embeddings = normalize_embeddings
        self.device = device
        self.dtype = dtype
        self.model_kwargs = dict(model_kwargs or {})
        self.embedder: Any = None

    def warm_up(self) -> None:
        """Load the model (once; later calls do nothing)."""
        if self.embedder is None:
            self.embedder = _load(self.model, self.device, self.dtype, self.model_kwargs)

    def _params(self) -> dict[str, Any]:
        return {"model": self.model, "instruction": self.instruction, "prefix": self.prefix, "suffix": self.suffix,
                "batch_size": self.batch_size, "progress_bar": self.progress_bar,
                "normalize_embeddings": self.normalize_embeddings, "device": self.device, "dtype": self.dtype,
                "model_kwargs": self.model_kwargs}

    def _encode(self, texts: Any) -> Any:
        self.warm_up()
        return self.embedder.encode(texts, instruction=self.instruction, batch_size=self.batch_size,
                                    normalize=self.normalize_embeddings, show_progress_bar=self.progress_bar)


@component
class InbedderTextEmbedder(_Base):
    """Embeds one string (a query) under ``instruction``: ``run(text=...)`` → ``{"embedding": [...]}``."""

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._params())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InbedderTextEmbedder:
        return default_from_dict(cls, data)

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise InputTypeError("InbedderTextEmbedder expects one string as input; to embed a list of documents "
                                 "use InbedderDocumentEmbedder")
        vector = self._encode(self.prefix + text + self.suffix)
        return {"embedding": [float(x) for x in vector]}


@component
class InbedderDocumentEmbedder(_Base):
    """Embeds documents under ``instruction``; ``meta_fields_to_embed`` are joined before the content with
    ``embedding_separator``. ``run(documents=[...])`` → ``{"documents": [...]}`` with ``embedding`` set."""

    def __init__(self, model: str = "minilm", *, meta_fields_to_embed: list[str] | None = None,
                 embedding_separator: str = "\n", **options: Any):
        _Base.__init__(self, model, **options)
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._params(), meta_fields_to_embed=self.meta_fields_to_embed,
                               embedding_separator=self.embedding_separator)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InbedderDocumentEmbedder:
        return default_from_dict(cls, data)

    def text_to_embed(self, document: Document) -> str:
        """The document's chosen meta values and its content, joined by ``embedding_separator``."""
        meta = [str(document.meta[key]) for key in self.meta_fields_to_embed if document.meta.get(key) is not None]
        return self.prefix + self.embedding_separator.join([*meta, document.content or ""]) + self.suffix

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        if not isinstance(documents, list) or any(not isinstance(d, Document) for d in documents):
            bad = next((i for i, d in enumerate(documents) if not isinstance(d, Document)), None) \
                if isinstance(documents, list) else None
            where = f" (item {bad} is a {type(documents[bad]).__name__})" if bad is not None else ""
            raise InputTypeError("InbedderDocumentEmbedder expects a list of Documents" + where + "; to embed one "
                                 "string use InbedderTextEmbedder")
        if not documents:
            return {"documents": []}
        vectors = self._encode([self.text_to_embed(d) for d in documents])
        return {"documents": [replace(d, embedding=[float(x) for x in v])
                              for d, v in zip(documents, vectors, strict=True)]}
