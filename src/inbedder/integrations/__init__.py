"""Adapters to other frameworks. Each module imports its framework lazily, on first use.

* :mod:`inbedder.integrations.langchain` — ``InbedderEmbeddings`` for LangChain (extra ``langchain``)
* :mod:`inbedder.integrations.haystack` — ``InbedderTextEmbedder`` / ``InbedderDocumentEmbedder`` (extra ``haystack``)
* :mod:`inbedder.integrations.sentence_transformers` — ``export`` an INSTRUCTOR-family model to a directory that
  ``sentence_transformers.SentenceTransformer`` loads with the same vectors
"""
