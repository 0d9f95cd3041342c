"""What the embeddings are for, each over a loaded model's ``encode``:

- ``clustering.py``  cluster texts under an instruction and name the clusters (:func:`cluster`)
- ``report.py``      the cluster report: 2-D projection, HTML page, PNG
- ``search.py``      an instruction-aware search index (:class:`SearchIndex`)
- ``similarity.py``  cosine matrix of two lists, each under its own instruction (:func:`similarity`)
- ``benchmark.py``   ``inbedder bench``: throughput against sentence-transformers
"""
