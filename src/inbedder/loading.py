"""Look at a model's files, pick its family, build the engine.

>>> model = load("minilm")            # doctest: +SKIP
>>> model.family                      # doctest: +SKIP
'instructor'
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .adapters import adapter_base, default_quantize, merge_adapter
from .choices import Backend, DType, Family, Quantize, parse_choice, parse_device
from .encoders import FAMILIES
from .engine import Embedder
from .errors import InbedderError, InputError, ModelLoadError, did_you_mean
from .model_files import broken_file, layout
from .onnx_backend import apply_backend, check_backend
from .registry import Location, directory_defaults, resolve
from .speed import apply_quantization, check_dtype, check_quantize, parse_quantize, resolve_quantize


def detect_family(location: Location) -> Family:
    """The family a model's files call for. Lists the layouts tried when none fits."""
    path = location.path
    if path.is_file() and path.suffix == ".gguf":
        return Family.CAUSAL
    if (path / "modules.json").exists():
        return Family.DECODER if _pools_last_token(path) else Family.INSTRUCTOR
    if (path / "config.json").exists():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc
        if not isinstance(config, dict):
            raise ModelLoadError(f"{path / 'config.json'} must hold a JSON object; got {type(config).__name__}")
        archs = [str(a) for a in config.get("architectures") or []]
        if any(a.endswith("ForMaskedLM") for a in archs):
            return Family.MASKED
        if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            return Family.CAUSAL
        if config.get("is_encoder_decoder") and any(a.endswith("ForConditionalGeneration") for a in archs):
            return Family.SEQ2SEQ
        return Family.INSTRUCTOR
    raise ModelLoadError(
        f"no model layout recognised in {path}. Tried: sentence-transformers (modules.json), "
        "transformers (config.json), GGUF (*.gguf file)"
    )


def _pools_last_token(path: Path) -> bool:
    """Whether a sentence-transformers directory's Pooling reads the last token (a decoder embedder's layout)."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        pooling = [m for m in modules if str(m.get("type", "")).endswith("Pooling")]
        config = json.loads((path / pooling[0].get("path", "") / "config.json").read_text(encoding="utf-8")) \
            if pooling else {}
    except (OSError, json.JSONDecodeError, AttributeError, TypeError) as exc:
        problem = broken_file(path) or f"{type(exc).__name__}: {exc}"
        raise ModelLoadError(f"cannot read the sentence-transformers modules of {path}, read as {layout(path)}: "
                             f"{problem}") from exc
    return bool(config.get("pooling_mode_lasttoken")) or str(config.get("pooling_mode", "")).lower() == "lasttoken"


def load(name_or_path: str | os.PathLike[str], *, family: str | None = None, device: str | torch.device | None = None,
         dtype: str | torch.dtype = "float32", quantize: str | None = None, backend: str = "torch",
         trust_remote_code: bool = False, reencoder: Any = None, **options: Any) -> Embedder:
    """Load a model by alias, local directory, ``.gguf`` file or hub id.

    The family is detected from the files; ``family=`` overrides. ``device=None`` picks CUDA when present.
    ``dtype`` is the dtype of the weights and of the computation (pooling and normalization stay float32).
    ``quantize="int8"`` (CPU only; ``device=None`` then means CPU) replaces the linear layers by int8 ones
    after loading (:mod:`inbedder.speed`); ``"auto"`` does so on a CPU where int8 measured faster than float32
    (measured once a CPU and model, then remembered: :func:`inbedder.speed.resolve_quantize`); ``"none"`` keeps
    them float32. ``None``: the model's default, ``"auto"`` for the default answer model, else none.
    ``backend="onnx"`` (CPU, float32; the instructor and decoder families; ``pip install "inbedder[onnx]"``) runs
    the transformer on ONNX Runtime, exported once into the user cache; ``backend="auto"`` does so only where it
    measures faster on this machine with the same vectors (:mod:`inbedder.onnx_backend`).
    ``reencoder`` (a name or a loaded model) makes an answer family embed its generated answers with that model;
    ``reencoder=False`` turns off one that the model's defaults name. A model directory's defaults are the
    ``{"defaults": {...}}`` of its ``inbedder.json`` (a trained model's readout, say); options given here win.
    """
    dt = parse_choice(DType, dtype, "dtype")
    engine = parse_choice(Backend, backend, "backend")
    parse_quantize(quantize)  # an unknown value fails before anything is read
    path = Path(os.fspath(name_or_path)).expanduser()
    base = adapter_base(path)
    if base is not None:  # a LoRA adapter folder (`inbedder train distill`): its base model with the adapter added in
        return _load_adapter(path, base, str(name_or_path), family=family, device=device, dt=dt, quantize=quantize,
                             engine=engine, trust_remote_code=trust_remote_code, reencoder=reencoder, options=options)
    location = resolve(name_or_path)
    options = {**location.options, **options}  # the model's defaults (alias, inbedder.json), then the caller's
    quant, dev = _quantize_and_device(quantize, options.pop("quantize", None), device, engine)
    check_dtype(dt, dev)
    fam = parse_choice(Family, family, "family") if family is not None else detect_family(location)
    try_onnx = check_backend(engine, fam, dev, dt, quant is Quantize.INT8)
    default_reencoder = options.pop("reencoder", None)
    reencoder = default_reencoder if reencoder is None else reencoder
    with quiet_transformers():
        encoder = _build(fam, location.path, dt.torch, trust_remote_code, options)
    model = Embedder(encoder, name=str(name_or_path), source=str(location.path), loader=load)
    model.to(dev)
    _finish(encoder, quant, dev, dt, str(location.path), engine if try_onnx else None)
    if reencoder is not None:
        model.default_reencoder = model.reencoder_for(reencoder)
    return model


def _quantize_and_device(quantize: str | None, default: Any, device: Any, engine: Backend
                         ) -> tuple[Quantize | None, torch.device]:
    """The quantization asked for (``quantize``, else the model's ``default``) and the device: ``device=None`` means
    CPU for int8 or ONNX Runtime, else CUDA when present. A model's default ``auto`` gives way to
    ``backend="onnx"``, which runs float32."""
    quant = parse_quantize(quantize if quantize is not None else default)
    if quant is Quantize.AUTO and engine is Backend.ONNX:
        quant = None
    cpu_only = quant is Quantize.INT8 or engine is Backend.ONNX
    dev = parse_device("cpu" if device is None and cpu_only else device)
    if quant is not None:
        check_quantize(quant, dev)
    return quant, dev


def _finish(encoder: Any, quant: Quantize | None, dev: torch.device, dt: DType, key: str, onnx: Backend | None,
            keep_export: bool = True, depth: int = 1) -> None:
    """Quantize (``auto`` decided here, ``key`` naming the weights) or move onto ONNX Runtime (``onnx``: the
    backend to try, which an int8 model never is; ``keep_export``: the export may be kept in the user cache),
    after the weights are in place. ``depth``: the frames between ``load``'s caller and here (for warnings)."""
    chosen, kernel = resolve_quantize(quant, encoder, dev, dt, key)
    if chosen is not None:
        apply_quantization(encoder, chosen, dev, kernel, stacklevel=3 + depth)
    elif onnx is not None:
        apply_backend(encoder, onnx, cache=keep_export)


def _load_adapter(path: Path, base: str, name: str, *, family: str | None, device: Any, dt: DType,
                  quantize: str | None, engine: Backend, trust_remote_code: bool, reencoder: Any,
                  options: dict[str, Any]) -> Embedder:
    """A LoRA adapter folder: its base model in float32 (by its defaults and the folder's), the adapter added into
    its weights, then quantized (by ``quantize``, else the folder's or the base's default) or moved onto ONNX
    Runtime."""
    options = {**directory_defaults(path), **options}
    quant, dev = _quantize_and_device(quantize, default_quantize(path, options), device, engine)
    options.pop("quantize", None)
    model = load(base, family=family, device=dev, dtype=dt.value, quantize="none", trust_remote_code=trust_remote_code,
                 reencoder=reencoder, **options)
    merged: Any = model.encoder
    merge_adapter(merged.model, path)
    model.name, model.source = name, str(path)
    try_onnx = check_backend(engine, Family(model.family), dev, dt, quant is Quantize.INT8)
    # keep_export=False: the export cache is keyed by the base's weights file, not by these merged weights
    _finish(merged, quant, dev, dt, str(path.resolve()), engine if try_onnx else None, keep_export=False, depth=2)
    return model


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' logging and its "Loading weights" bars for the duration; restore them after."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _build(family: Family, path: Path, dtype: torch.dtype, trust_remote_code: bool, options: dict[str, Any]) -> Any:
    """Build the family's encoder; each family's ``from_pretrained`` validates its own options."""
    target = FAMILIES.get(family.value)
    if target is None:
        raise ModelLoadError(
            f"the {family.value} family is not available in this version of inbedder (model at {path}); "
            f"available: {', '.join(sorted(FAMILIES))}"
        )
    module, _, cls_name = target.partition(":")
    encoder_cls = getattr(importlib.import_module(module), cls_name)
    allowed = [p for p in inspect.signature(encoder_cls.from_pretrained).parameters
               if p not in ("path", "dtype", "trust_remote_code")]
    for key in options:
        if key not in allowed:
            raise InputError(f"option {key!r} is not used by the {family.value} family (options it takes: "
                             f"{', '.join(allowed) or 'none'}).{did_you_mean(key, allowed)}")
    try:
        return encoder_cls.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code, **options)
    except Exception as exc:  # a broken file fails deep in transformers or safetensors: name the file
        problem = broken_file(path)
        if isinstance(exc, InbedderError) and (problem is None or not isinstance(exc, ModelLoadError)):
            raise
        if isinstance(exc, ModelLoadError):
            raise ModelLoadError(f"{exc}; read as {layout(path)}: {problem}") from exc
        raise ModelLoadError(f"cannot load {path} as a model of the {family.value} family, read as {layout(path)}: "
                             f"{problem or f'{type(exc).__name__}: {exc}'}") from exc
