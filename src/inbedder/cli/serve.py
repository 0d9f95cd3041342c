"""``inbedder serve``: load the named models once, then serve them over HTTP (OpenAI-compatible).

FastAPI and uvicorn (the ``serve`` extra) are imported when the command runs, so ``inbedder --help`` works
without them.
"""

from __future__ import annotations

import logging

import click

from ..errors import InputError, require
from ..serve.config import ServeConfig, is_loopback
from .common import batch_size_option, cache_path_option, device_option, dtype_option, quantize_option

_LIMITS = ServeConfig()


def served_names(specs: tuple[str, ...]) -> dict[str, str]:
    """``-m minilm -m mine=/models/x`` → ``{"minilm": "minilm", "mine": "/models/x"}`` (served id → source)."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        name, source = (name.strip(), source.strip()) if sep else (spec, spec)
        if not name or not source:
            raise InputError(f"-m {spec!r}: give NAME or ID=NAME (the id clients send, then the model)")
        if name in out:
            raise InputError(f"model id {name!r} is given twice; name one of them with -m ID=NAME")
        out[name] = source
    return out


@click.command("serve")
@click.option("-m", "--model", "model_specs", multiple=True, required=True, envvar="INBEDDER_MODEL",
              show_envvar=True, metavar="[ID=]NAME",
              help="A model to serve (repeat for more): alias, local directory, .gguf file or hub id. "
                   "ID=NAME serves it under the id ID. Only these models are ever loaded.")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="INBEDDER_HOST", show_envvar=True)
@click.option("--port", type=int, default=8080, show_default=True, envvar="INBEDDER_PORT", show_envvar=True)
@click.option("--api-key", "api_keys", multiple=True, envvar="INBEDDER_API_KEY", show_envvar=True,
              help="Require 'Authorization: Bearer KEY' (repeat for several keys).")
@click.option("--allow-public", is_flag=True,
              help="Allow a non-loopback --host without --api-key (anyone who can reach it can use it).")
@cache_path_option("SQLite embedding cache shared with the CLI [default: ~/.cache/inbedder/embeddings.sqlite].")
@click.option("--no-cache", is_flag=True, help="Compute every request; read and write no cache.")
@device_option()
@dtype_option
@quantize_option
@batch_size_option(_LIMITS.batch_size, "Rows per forward pass.")
@click.option("--max-batch-rows", type=int, default=_LIMITS.max_batch_rows, show_default=True,
              envvar="INBEDDER_MAX_BATCH_ROWS", show_envvar=True, help="Rows in one merged batch of requests.")
@click.option("--max-batch-tokens", type=int, default=_LIMITS.max_batch_tokens, show_default=True,
              envvar="INBEDDER_MAX_BATCH_TOKENS", show_envvar=True, help="Tokens in one merged batch of requests.")
@click.option("--max-wait-ms", type=float, default=_LIMITS.max_wait_ms, show_default=True,
              envvar="INBEDDER_MAX_WAIT_MS", show_envvar=True, help="How long a request waits for others to join.")
@click.option("--max-queue-rows", type=int, default=_LIMITS.max_queue_rows, show_default=True,
              envvar="INBEDDER_MAX_QUEUE_ROWS", show_envvar=True, help="Rows waiting per model; beyond: 429.")
@click.option("--max-inputs", type=int, default=_LIMITS.max_inputs, show_default=True,
              envvar="INBEDDER_MAX_INPUTS", show_envvar=True, help="Inputs per request.")
@click.option("--max-input-chars", type=int, default=_LIMITS.max_input_chars, show_default=True,
              envvar="INBEDDER_MAX_INPUT_CHARS", show_envvar=True, help="Characters per input or instruction.")
@click.option("--max-body-bytes", type=int, default=_LIMITS.max_body_bytes, show_default=True,
              envvar="INBEDDER_MAX_BODY_BYTES", show_envvar=True, help="Request body size.")
@click.option("--request-timeout", type=float, default=_LIMITS.request_timeout, show_default=True,
              envvar="INBEDDER_REQUEST_TIMEOUT", show_envvar=True, help="Seconds a request may take (then 408).")
@click.option("--shutdown-timeout", type=int, default=30, show_default=True,
              help="Seconds SIGTERM waits for in-flight requests.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(model_specs: tuple[str, ...], host: str, port: int, api_keys: tuple[str, ...], allow_public: bool,
          cache_path: str | None, no_cache: bool, device: str | None, dtype: str | None, quantize: str | None,
          batch_size: int, max_batch_rows: int, max_batch_tokens: int, max_wait_ms: float, max_queue_rows: int,
          max_inputs: int, max_input_chars: int, max_body_bytes: int, request_timeout: float, shutdown_timeout: int,
          log_level: str) -> None:
    """Serve models over HTTP: POST /v1/embeddings (OpenAI-compatible, plus `instruction`), POST /v1/answers,
    GET /v1/models, /health and /metrics.

    \b
    inbedder serve -m minilm
    inbedder serve -m minilm -m inbedder=./my-roberta --port 9000 --api-key "$KEY"
    curl localhost:8080/v1/embeddings -H 'Content-Type: application/json' \\
        -d '{"model": "minilm", "input": ["A cat sat."], "instruction": "Represent the sentence:"}'
    """
    from .common import check_load_options, user_errors

    with user_errors():
        check_load_options(dtype, quantize=quantize)
        require("fastapi", "serve")
        require("uvicorn", "serve")
        if not is_loopback(host) and not api_keys and not allow_public:
            raise click.ClickException(f"--host {host} is reachable from other machines: give --api-key KEY "
                                       "(or set INBEDDER_API_KEY), or --allow-public to serve without a key")
        config = ServeConfig(max_inputs=max_inputs, max_input_chars=max_input_chars, max_body_bytes=max_body_bytes,
                             request_timeout=request_timeout, max_batch_rows=max_batch_rows,
                             max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms,
                             max_queue_rows=max_queue_rows, batch_size=batch_size, api_keys=tuple(api_keys))
        names = served_names(model_specs)
        cache = None if no_cache else (cache_path or True)
        from ..cache.store import open_cache
        from ..loading import load, parse_device, quiet_transformers
        from ..serve.app import create_app

        parse_device(device)
        if cache is not None:
            open_cache(cache)  # a bad cache file fails here, before the models load
        with quiet_transformers():
            models = {}
            for name, source in names.items():
                click.echo(f"Loading {source} as {name!r}...", err=True)
                models[name] = load(source, device=device, dtype=dtype or "float32", quantize=quantize)
        app = create_app(models, config, cache=cache)
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=shutdown_timeout)
