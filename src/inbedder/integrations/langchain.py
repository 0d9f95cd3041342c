"""LangChain ``Embeddings`` backed by an inbedder model, with one instruction for documents and one for queries.

The parameters mirror LangChain's ``HuggingFaceInstructEmbeddings`` (``model_name``, ``model_kwargs``,
``encode_kwargs``, ``embed_instruction``, ``query_instruction``, ``show_progress``), so code written for
INSTRUCTOR models keeps working:

>>> from langchain_core.vectorstores import InMemoryVectorStore              # doctest: +SKIP
>>> embeddings = InbedderEmbeddings(model_name="minilm")                     # doctest: +SKIP
>>> store = InMemoryVectorStore.from_texts(["Cats purr.", "Rates rose."], embeddings)   # doctest: +SKIP
>>> store.similarity_search("Which animal purrs?", k=1)[0].page_content     # doctest: +SKIP
'Cats purr.'

``aembed_documents`` / ``aembed_query`` come from LangChain's base class (run in a thread pool).
"""

from __future__ import annotations

from typing import Any

from ..errors import InputTypeError, require

require("langchain_core", "langchain")

from langchain_core.embeddings import Embeddings  # noqa: E402

DEFAULT_EMBED_INSTRUCTION = "Represent the document for retrieval: "
DEFAULT_QUERY_INSTRUCTION = "Represent the question for retrieving supporting documents: "


class InbedderEmbeddings(Embeddings):
    """Embed documents under ``embed_instruction`` and queries under ``query_instruction``.

    ``model_name`` is anything :func:`inbedder.load` takes (loaded with ``model_kwargs``, e.g. ``{"device":
    "cpu", "dtype": "bfloat16"}``); or pass an already loaded ``model``. ``encode_kwargs`` go to every
    ``encode`` call (``batch_size``, ``normalize``, ...). An instruction of ``None`` embeds without one.
    """

    def __init__(self, model_name: str = "minilm", *, model: Any = None, model_kwargs: dict[str, Any] | None = None,
                 encode_kwargs: dict[str, Any] | None = None,
                 embed_instruction: str | None = DEFAULT_EMBED_INSTRUCTION,
                 query_instruction: str | None = DEFAULT_QUERY_INSTRUCTION, show_progress: bool = False):
        for name, value in (("embed_instruction", embed_instruction), ("query_instruction", query_instruction)):
            if value is not None and not isinstance(value, str):
                raise InputTypeError(f"{name} must be a str or None; got {type(value).__name__}")
        self.model_name = model_name if model is None else (getattr(model, "name", "") or model_name)
        self.model_kwargs = dict(model_kwargs or {})
        self.encode_kwargs = dict(encode_kwargs or {})
        self.embed_instruction = embed_instruction
        self.query_instruction = query_instruction
        self.show_progress = show_progress
        if model is None:
            from ..loading import load

            model = load(model_name, **self.model_kwargs)
        self.client = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, under ``embed_instruction``."""
        if isinstance(texts, str):
            raise InputTypeError("embed_documents takes a list of texts; for one query use embed_query")
        vectors = self.client.encode(list(texts), instruction=self.embed_instruction, **self._options())
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query, under ``query_instruction``."""
        if not isinstance(text, str):
            raise InputTypeError(f"embed_query takes one str; got {type(text).__name__}")
        vector = self.client.encode(text, instruction=self.query_instruction, **self._options())
        return [float(x) for x in vector]

    def _options(self) -> dict[str, Any]:
        return {"show_progress_bar": self.show_progress, **self.encode_kwargs}
