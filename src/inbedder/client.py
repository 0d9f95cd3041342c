"""A small client for ``inbedder serve`` (needs httpx, from the ``serve`` extra).

>>> from inbedder.client import Client
>>> client = Client("http://127.0.0.1:8080", api_key=None)                        # doctest: +SKIP
>>> client.embed(["A cat sat.", "Stocks fell."], instruction="Represent the sentence:").shape  # doctest: +SKIP
(2, 384)

Any OpenAI client works too; ``instruction`` then goes in ``extra_body``.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .errors import InbedderError, require


class ServiceError(InbedderError, RuntimeError):
    """The server answered with an error: ``status``, and the error body's ``param`` and ``code``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(f"HTTP {status}: {message}" + (f" (param: {param})" if param else ""))
        self.status, self.param, self.code = status, param, code


class Client:
    """Calls ``/v1/embeddings``, ``/v1/answers`` and ``/v1/models`` of an ``inbedder serve`` server."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None, *,
                 timeout: float = 120.0):
        require("httpx", "serve")
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/").removesuffix("/v1"), headers=headers,
                                  timeout=timeout)

    def embed(self, texts: str | list[str], instruction: str | list[str | None] | None = None, *,
              model: str | None = None, dimensions: int | None = None, truncate: bool = False) -> np.ndarray:
        """Vectors as float32: ``(d,)`` for one text, ``(n, d)`` for a list, rows in the order given.

        A text longer than the model's limit (its instruction included) is refused (:class:`ServiceError`, status
        413, naming the text's tokens and the limit) unless ``truncate=True``, which cuts it."""
        body: dict[str, Any] = {"input": texts, "encoding_format": "base64"}
        for key, value in (("instruction", instruction), ("model", model), ("dimensions", dimensions),
                           ("truncate", truncate or None)):
            if value is not None:
                body[key] = value
        data = sorted(self._post("/v1/embeddings", body)["data"], key=lambda row: row["index"])
        vectors = np.stack([np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in data])
        return vectors[0] if isinstance(texts, str) else vectors

    def answers(self, texts: str | list[str], instruction: str | list[str | None] | None = None, *,
                model: str | None = None, truncate: bool = False) -> str | list[str]:
        """The answers an answer-family model generates (and embeds) for each text (``truncate``: as in
        :meth:`embed`)."""
        body: dict[str, Any] = {"input": texts}
        for key, value in (("instruction", instruction), ("model", model), ("truncate", truncate or None)):
            if value is not None:
                body[key] = value
        data = sorted(self._post("/v1/answers", body)["data"], key=lambda row: row["index"])
        out = [str(row["answer"]) for row in data]
        return out[0] if isinstance(texts, str) else out

    def models(self) -> list[dict[str, Any]]:
        return list(self._get("/v1/models")["data"])

    def health(self) -> dict[str, Any]:
        return dict(self._get("/health"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(self._http.post(path, json=body))

    def _get(self, path: str) -> dict[str, Any]:
        return self._check(self._http.get(path))

    @staticmethod
    def _check(response: Any) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            error = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(error, dict):
                raise ServiceError(response.status_code, str(error.get("message")), error.get("param"),
                                   error.get("code"))
            raise ServiceError(response.status_code, response.text[:200])
        if not isinstance(payload, dict):
            raise ServiceError(response.status_code, f"expected a JSON object; got {response.text[:200]!r}")
        return payload
