"""LangChain: ``InbedderEmbeddings`` used as LangChain's own examples use embeddings."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("langchain_core")
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from inbedder.errors import InputTypeError  # noqa: E402
from inbedder.integrations.langchain import (  # noqa: E402
    DEFAULT_EMBED_INSTRUCTION,
    DEFAULT_QUERY_INSTRUCTION,
    InbedderEmbeddings,
)

TEXTS = ["The Federal Reserve on Wednesday raised its benchmark interest rate.",
         "3D ActionSLAM: wearable person tracking in multi-floor environments",
         "I love cat! I love dog!",
         "Parton energy loss in QCD matter.\nThe Chiral Phase Transition in Dissipative Dynamics."]
QUERY = "What did the Federal Reserve do?"


def test_vectors_are_those_of_encode(tiny_t5):
    embeddings = InbedderEmbeddings(model=tiny_t5, embed_instruction="Represent the document:",
                                    query_instruction="Represent the question:")
    assert isinstance(embeddings, Embeddings)
    docs = embeddings.embed_documents(TEXTS)
    assert isinstance(docs, list) and isinstance(docs[0], list) and isinstance(docs[0][0], float)
    np.testing.assert_allclose(docs, tiny_t5.encode(TEXTS, instruction="Represent the document:"), atol=1e-6)
    np.testing.assert_allclose(embeddings.embed_query(QUERY),
                               tiny_t5.encode(QUERY, instruction="Represent the question:"), atol=1e-6)
    assert np.abs(np.asarray(embeddings.embed_query(TEXTS[0])) - docs[0]).max() > 1e-4  # two instructions


def test_async_variants_from_the_base_class(tiny_t5):
    embeddings = InbedderEmbeddings(model=tiny_t5)
    docs = asyncio.run(embeddings.aembed_documents(TEXTS))
    query = asyncio.run(embeddings.aembed_query(QUERY))
    np.testing.assert_allclose(docs, tiny_t5.encode(TEXTS, instruction=DEFAULT_EMBED_INSTRUCTION), atol=1e-6)
    np.testing.assert_allclose(query, tiny_t5.encode(QUERY, instruction=DEFAULT_QUERY_INSTRUCTION), atol=1e-6)


def test_in_memory_vector_store_as_in_langchain_docs(tiny_t5, tiny_t5_dir):
    embeddings = InbedderEmbeddings(model_name=str(tiny_t5_dir), model_kwargs={"device": "cpu"},
                                    encode_kwargs={"normalize": True, "batch_size": 2})
    vectorstore = InMemoryVectorStore.from_texts(TEXTS, embedding=embeddings)
    stored = np.asarray([vectorstore.store[i]["vector"] for i in vectorstore.store])
    ours = tiny_t5.encode(TEXTS, instruction=DEFAULT_EMBED_INSTRUCTION, normalize=True)
    np.testing.assert_allclose(stored, ours, atol=1e-6)
    found = vectorstore.similarity_search(QUERY, k=2)
    query = tiny_t5.encode(QUERY, instruction=DEFAULT_QUERY_INSTRUCTION, normalize=True)
    best = np.argsort(-(ours @ query))[:2]
    assert [d.page_content for d in found] == [TEXTS[i] for i in best]
    retriever = vectorstore.as_retriever(search_kwargs={"k": 1})
    assert retriever.invoke(QUERY)[0].page_content == TEXTS[best[0]]


def test_no_instruction_and_bad_input(tiny_t5):
    embeddings = InbedderEmbeddings(model=tiny_t5, embed_instruction=None, query_instruction=None)
    np.testing.assert_allclose(embeddings.embed_documents(TEXTS[:2]), tiny_t5.encode(TEXTS[:2]), atol=1e-6)
    with pytest.raises(InputTypeError, match="list of texts"):
        embeddings.embed_documents("one text")
    with pytest.raises(InputTypeError, match="embed_query takes one str"):
        embeddings.embed_query(["a"])  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="embed_instruction"):
        InbedderEmbeddings(model=tiny_t5, embed_instruction=3)  # type: ignore[arg-type]
