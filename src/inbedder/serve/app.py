"""The FastAPI application: the :mod:`.routes` over a :class:`~.service.Service`, with error bodies, the
OpenAPI document of this server's limits, the body-size guard, and a lifespan that starts and drains the workers.

>>> app = create_app({"minilm": load("minilm")}, ServeConfig(api_keys=("secret",)))   # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8080)                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from ..version import __version__
from .config import ServeConfig
from .errors import install
from .guard import Guard
from .openapi import document
from .routes import PATHS, router
from .service import Service

DESCRIPTION = ("OpenAI-compatible instruction-following embeddings. `instruction` is the one field OpenAI does not "
               "have: one string for every input, or one per input; `instructions` asks several of every input.")


def create_app(models: dict[str, Any], config: ServeConfig | None = None, cache: Any = None) -> FastAPI:
    """An app serving ``models`` (served id → loaded :class:`~inbedder.Embedder`).

    ``cache``: None (no cache), True (the default file) or a path of the shared SQLite cache.
    """
    config = config or ServeConfig()
    service = Service(models, config, cache)
    app = FastAPI(title="inbedder", version=__version__, lifespan=_lifespan(service), description=DESCRIPTION)
    install(app)
    app.state.service = service
    app.include_router(router)
    document(app, config, {name: w.model.dim for name, w in service.workers.items()})
    app.add_middleware(Guard, max_body_bytes=config.max_body_bytes, metrics=service.metrics,  # type: ignore[arg-type]
                       paths=PATHS)
    return app


def _lifespan(service: Service) -> Any:
    running = [0]  # lifespans entered and not left (test clients may nest them)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running[0] += 1
        for worker in service.workers.values():
            worker.start()
        try:
            yield
        finally:
            running[0] -= 1
            if not running[0]:
                for worker in service.workers.values():  # uvicorn has finished the in-flight requests; drain the
                    # rest (what is still queued after request_timeout has timed out: no reason to wait longer)
                    await anyio.to_thread.run_sync(worker.stop, service.config.request_timeout)

    return lifespan
