"""``inbedder serve``: an OpenAI-compatible embeddings service (FastAPI + uvicorn, the ``serve`` extra).

The modules, one idea each:

- ``config.py``   limits, batching and auth settings (a validated frozen dataclass)
- ``schemas.py``  request and response bodies (they make the OpenAPI schema)
- ``batcher.py``  dynamic batching: one queue and one worker thread per model
- ``metrics.py``  Prometheus text metrics
- ``errors.py``   the OpenAI error body and the exception handlers
- ``service.py``  the served models' workers and the checks every request passes before it is queued
- ``routes.py``   the routes: they check input and shape output
- ``guard.py``    ASGI middleware: the body-size limit and the request metrics
- ``app.py``      the FastAPI application: routes over a service, error bodies, the guard, the lifespan
- ``openapi.py``  the published schema: the errors answered, this server's limits and model ids

The ``inbedder serve`` command is :mod:`inbedder.cli.serve`; FastAPI is imported when it runs, so ``inbedder --help``
works without the extra.

>>> from inbedder import load
>>> from inbedder.serve.app import create_app                      # doctest: +SKIP
>>> app = create_app({"minilm": load("minilm")})                   # doctest: +SKIP
"""
