"""Haystack: the inbedder embedders in pipelines shaped like Haystack's own retrieval examples."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("haystack")
from haystack import Document, Pipeline  # noqa: E402
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever  # noqa: E402
from haystack.components.writers import DocumentWriter  # noqa: E402
from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: E402

from inbedder.errors import InputTypeError  # noqa: E402
from inbedder.integrations.haystack import InbedderDocumentEmbedder, InbedderTextEmbedder  # noqa: E402

DOC_INSTRUCTION = "Represent the document for retrieval:"
QUERY_INSTRUCTION = "Represent the question for retrieving supporting documents:"
DOCS = [Document(content="My name is Wolfgang and I live in Berlin", meta={"title": "Wolfgang"}),
        Document(content="I saw a black horse running", meta={"title": "Horse"}),
        Document(content="Germany has many big cities", meta={"title": None}),
        Document(content="The Federal Reserve on Wednesday raised its benchmark interest rate.")]
QUERY = "Who lives in Berlin?"


@pytest.fixture()
def embedders(tiny_t5_dir):
    options = {"device": "cpu", "progress_bar": False, "batch_size": 2}
    return (InbedderDocumentEmbedder(model=str(tiny_t5_dir), instruction=DOC_INSTRUCTION, **options),
            InbedderTextEmbedder(model=str(tiny_t5_dir), instruction=QUERY_INSTRUCTION, **options))


def test_retrieval_pipelines_as_in_haystack_docs(embedders, tiny_t5):
    document_embedder, text_embedder = embedders
    document_store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    indexing = Pipeline()
    indexing.add_component("embedder", document_embedder)
    indexing.add_component("writer", DocumentWriter(document_store=document_store))
    indexing.connect("embedder.documents", "writer.documents")
    indexing.run({"embedder": {"documents": DOCS}})

    stored = {d.content: d.embedding for d in document_store.filter_documents()}
    ours = tiny_t5.encode([d.content for d in DOCS], instruction=DOC_INSTRUCTION)
    np.testing.assert_allclose([stored[d.content] for d in DOCS], ours, atol=1e-6)

    query_pipeline = Pipeline()
    query_pipeline.add_component("text_embedder", text_embedder)
    query_pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=document_store, top_k=2))
    query_pipeline.connect("text_embedder.embedding", "retriever.query_embedding")
    result = query_pipeline.run({"text_embedder": {"text": QUERY}})

    query = tiny_t5.encode(QUERY, instruction=QUERY_INSTRUCTION)
    cosine = ours @ query / np.linalg.norm(ours, axis=1) / np.linalg.norm(query)
    assert [d.content for d in result["retriever"]["documents"]] == [DOCS[i].content for i in np.argsort(-cosine)[:2]]
    np.testing.assert_allclose(text_embedder.run(text=QUERY)["embedding"], query, atol=1e-6)


def test_meta_fields_prefix_and_normalize(tiny_t5, tiny_t5_dir):
    embedder = InbedderDocumentEmbedder(model=str(tiny_t5_dir), device="cpu", meta_fields_to_embed=["title"],
                                        embedding_separator=" | ", prefix="doc: ", normalize_embeddings=True,
                                        progress_bar=False)
    embedder.warm_up()
    out = embedder.run(documents=DOCS)["documents"]
    assert [d.id for d in out] == [d.id for d in DOCS] and all(d.embedding is None for d in DOCS)
    texts = ["doc: Wolfgang | My name is Wolfgang and I live in Berlin", "doc: Horse | I saw a black horse running",
             "doc: Germany has many big cities", "doc: " + DOCS[3].content]
    assert [embedder.text_to_embed(d) for d in DOCS] == texts
    np.testing.assert_allclose([d.embedding for d in out], tiny_t5.encode(texts, normalize=True), atol=1e-6)
    assert embedder.run(documents=[]) == {"documents": []}


def test_serialization_round_trip(embedders):
    for component in embedders:
        data = component.to_dict()
        assert data["type"].startswith("inbedder.integrations.haystack.")
        again = type(component).from_dict(data)
        assert again.to_dict() == data
    pipeline = Pipeline()
    pipeline.add_component("embedder", embedders[0])
    again = Pipeline.loads(pipeline.dumps(), allowed_modules=["inbedder.integrations.haystack"])
    assert again.get_component("embedder").to_dict() == embedders[0].to_dict()


def test_wrong_input_types(embedders):
    document_embedder, text_embedder = embedders
    with pytest.raises(InputTypeError, match="list of Documents \\(item 1 is a str\\)"):
        document_embedder.run(documents=[DOCS[0], "text"])
    with pytest.raises(InputTypeError, match="expects one string"):
        text_embedder.run(text=["a list"])
