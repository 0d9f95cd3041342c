"""The OpenAPI schema a server publishes: the errors it really answers, and its own limits and model ids.

FastAPI builds the schema from the bodies in :mod:`.schemas`; this adds what only a running server knows, so
a client (or a schema-driven fuzzer) can see the limits before it hits them:

- ``input``, ``instruction`` and ``instructions``: ``maxLength`` (``--max-input-chars``), ``maxItems``
  (``--max-inputs``); an input string's ``minLength`` of 1;
- ``model``: the served ids as an ``enum`` (required when several models are served, else optional);
- ``dimensions``: the largest dimension served, as ``maximum``;
- the 400 this service answers instead of FastAPI's default 422, and error bodies as ``application/json`` on
  routes whose success is plain text (``/metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from .config import ServeConfig


def document(app: FastAPI, config: ServeConfig, dims: Mapping[str, int]) -> None:
    """Make ``app.openapi()`` describe this server; ``dims``: served id → embedding dimension."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    responses = operation.get("responses", {})
                    responses.pop("422", None)
                    for status, response in responses.items():
                        content = response.get("content", {})
                        if status[:1] in ("4", "5") and "text/plain" in content and "application/json" not in content:
                            response["content"] = {"application/json": content.pop("text/plain")}
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            for name in ("EmbeddingRequest", "AnswerRequest"):
                if name in components:
                    _limit(components[name], config, dims)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _limit(body: dict[str, Any], config: ServeConfig, dims: Mapping[str, int]) -> None:
    properties = body.get("properties", {})
    for field in ("input", "instruction", "instructions"):
        for option in _options(properties.get(field, {})):
            if option.get("type") == "string":
                option["maxLength"] = config.max_input_chars
                if field == "input":
                    option["minLength"] = 1
            elif option.get("type") == "array":
                option["maxItems"] = config.max_inputs
                if field == "input":
                    option["minItems"] = 1
                for item in _options(option.get("items", {})):
                    if item.get("type") == "string":
                        item["maxLength"] = config.max_input_chars
                        if field == "input":
                            item["minLength"] = 1
    if "model" in properties:
        served: dict[str, Any] = {"type": "string", "enum": sorted(dims)}
        if len(dims) > 1:  # several served: model is required
            properties["model"] = {**properties["model"], **served}
            properties["model"].pop("anyOf", None)
            properties["model"].pop("default", None)
            body["required"] = sorted({*body.get("required", []), "model"})
        else:
            properties["model"]["anyOf"] = [served, {"type": "null"}]
    for option in _options(properties.get("dimensions", {})):
        if option.get("type") == "integer" and dims:
            option["maximum"] = max(dims.values())


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))
