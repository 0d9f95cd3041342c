"""ONNX Runtime in place of torch for a family's transformer (``load(..., backend="onnx" | "auto")``).

Only the transformer moves (token ids and attention mask in, last hidden states out); everything around it stays
the family's torch code: tokenization, the instruction-masked pooling, Dense, Normalize, the last-token read-out.
The transformer is exported once with ``torch.onnx.export`` into the user's cache, keyed by its weights file the
way a GGUF file's converted copy is (:mod:`inbedder.converted`: the file's path, size and modification time; written
to a temporary folder under a file lock, then moved into place; ``INBEDDER_GGUF_CACHE=off`` turns the cache off
and each load exports anew), and run by an ONNX Runtime session on the CPU with torch's thread count. float32
only: its hidden states match torch's within 1e-5. ONNX Runtime's own int8 (``quantize_dynamic``) is not offered:
one activation scale per call gives min cosine 0.93 on all-MiniLM-L6-v2 over STS-B (docs/benchmarks.md).

``backend="auto"`` exports, then times torch and ONNX Runtime on one batch of 32 short texts (once per weights
file and process, as :func:`inbedder.speed.cpu_bf16_ratio` is measured once) and keeps ONNX Runtime only where it
is at least :data:`AUTO_MARGIN` times faster and its vectors have cosine >= :data:`AUTO_PARITY` to torch's; it
falls back to torch where ONNX Runtime cannot serve the load (not installed, GPU, half precision, int8).

>>> model = load("minilm", backend="onnx")         # doctest: +SKIP
>>> model.encoder.backend                          # doctest: +SKIP
'onnx'
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import converted
from .choices import Backend, DType, Family
from .errors import InputError, ModelLoadError, require
from .speed import best_seconds

FAMILIES = (Family.INSTRUCTOR, Family.DECODER)
FORMAT = 1  # of the exported folder; a folder of another format is not read
FILE, INFO = "model.onnx", "inbedder-onnx.json"
OPSET = 17
INPUTS, OUTPUT = ("input_ids", "attention_mask"), "last_hidden_state"
AUTO_MARGIN = 1.05  # ONNX Runtime must be at least this much faster for backend="auto" to choose it
AUTO_PARITY = 0.9999  # and its probe vectors this close to torch's (cosine, every row)
_CHOSEN: dict[str, tuple[bool, float]] = {}  # weights file -> (ONNX Runtime chosen, torch / ONNX Runtime time)


def check_backend(backend: Backend, family: Family, device: torch.device, dtype: DType, quantized: bool) -> bool:
    """Whether ONNX Runtime is to be tried for this load. ``backend="onnx"`` that cannot be served is an
    :class:`InputError` (or :class:`~inbedder.errors.MissingExtraError` without onnxruntime) before anything is
    loaded; ``auto`` then quietly means torch."""
    if backend is Backend.TORCH:
        return False
    why = None
    if family not in FAMILIES:
        why = f"runs the {', '.join(f.value for f in FAMILIES)} families; this model is {family.value!r}"
    elif device.type != "cpu":
        why = f"runs on CPU only (ONNX Runtime's CPU provider); got device={str(device)!r}"
    elif dtype is not DType.FLOAT32:
        why = f"runs float32 only; got dtype={dtype.value!r}"
    elif quantized:
        why = ("runs float32 only: ONNX Runtime's dynamic int8 quantizes activations with one scale per call "
               "(min cosine 0.93 on STS-B); use quantize='int8' with backend='torch'")
    if why is not None:
        if backend is Backend.ONNX:
            raise InputError(f"backend='onnx' {why}")
        return False
    if backend is Backend.AUTO:
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True
    require("onnxruntime", "onnx")
    require("onnx", "onnx")
    return True


class OnnxTransformer:
    """An ONNX Runtime session called like a transformers model: ``(input_ids=, attention_mask=)`` → a tuple whose
    first item is the last hidden state (a float32 CPU tensor)."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, *, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> tuple[torch.Tensor]:
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        (hidden,) = self.session.run([OUTPUT], feeds)
        return (torch.from_numpy(hidden),)


class _Hidden(nn.Module):
    """The transformer with positional inputs and one output, as the exporter wants it."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        self.extra = {"use_cache": False} if getattr(transformer.config, "use_cache", None) is not None else {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask, **self.extra)[0]  # type: ignore[no-any-return]


def export(transformer: nn.Module, example: dict[str, torch.Tensor], folder: Path) -> Path:
    """Export ``transformer`` to ``folder/model.onnx`` (dynamic batch and length). ``example`` must hold a padded
    row, so that the traced graph keeps the attention mask (transformers skips it for an all-ones mask)."""
    if bool(example["attention_mask"].all()):
        raise ValueError("the export example needs a padded row (an attention mask with zeros)")
    folder.mkdir(parents=True, exist_ok=True)
    dynamic = dict.fromkeys([*INPUTS, OUTPUT], {0: "batch", 1: "tokens"})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values, and deprecations inside it
        torch.onnx.export(_Hidden(transformer).eval(), tuple(example[n] for n in INPUTS), str(folder / FILE),
                          input_names=list(INPUTS), output_names=[OUTPUT], dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False)
    (folder / INFO).write_text(json.dumps({"format": FORMAT, "torch": torch.__version__, "opset": OPSET}),
                               encoding="utf-8")
    return folder / FILE


def weights_file(transformer: nn.Module) -> Path | None:
    """The file the transformer's weights were read from (the export's cache key), or None."""
    folder = Path(str(getattr(transformer, "name_or_path", "") or ""))
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if str(folder) and (folder / name).is_file():
            return folder / name
    return None


def _readable(folder: Path | None) -> bool:
    try:
        return folder is not None and json.loads((folder / INFO).read_text(encoding="utf-8"))["format"] == FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def runtime_for(transformer: nn.Module, example: dict[str, torch.Tensor], cache: bool = True) -> OnnxTransformer:
    """An ONNX Runtime session of ``transformer``: from the cached export of its weights file, made when absent.
    ``cache=False`` (weights changed since they were read: an adapter merged in, say) exports for this process."""
    source = weights_file(transformer) if cache else None
    if source is not None:
        found = converted.existing_copy(source)  # find_converted() would announce a GGUF conversion
        if found is None:
            found = converted.save_converted(source, lambda folder: export(transformer, example, folder))
        if _readable(found):
            return OnnxTransformer(found / FILE)  # type: ignore[operator]
    with tempfile.TemporaryDirectory(prefix="inbedder-onnx-") as temp:  # no cache: for this process only
        return OnnxTransformer(export(transformer, example, Path(temp)))


def measure(transformer: nn.Module, runtime: OnnxTransformer, probe: dict[str, torch.Tensor]) -> tuple[float, float]:
    """torch's time over ONNX Runtime's on ``probe`` (alternating, best of 3 each), and the min cosine of their
    mean-pooled hidden states."""
    mask = probe["attention_mask"]

    def pooled(hidden: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).float()
        return (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1)

    with torch.inference_mode():
        want = pooled(transformer(**probe)[0])
        got = pooled(runtime(**probe)[0])
        cosine = float(torch.nn.functional.cosine_similarity(want, got).min())
        times = {"torch": float("inf"), "onnx": float("inf")}
        for _ in range(2):
            times["torch"] = min(times["torch"], best_seconds(lambda: transformer(**probe), 2))
            times["onnx"] = min(times["onnx"], best_seconds(lambda: runtime(**probe), 2))
    return times["torch"] / times["onnx"], cosine


def apply_backend(encoder: Any, backend: Backend, cache: bool = True) -> None:
    """Put ONNX Runtime in place of the family's transformer (``backend="onnx"``), or where it measures faster
    with the same vectors (``"auto"``, once per weights file and process). Sets ``encoder.backend``.
    ``cache=False``: the weights in memory differ from their file, so the export is not kept or reused."""
    transformer = encoder.onnx_module()
    tokenizer = encoder.tokenizer
    example = dict(tokenizer(["An example sentence, padded against a longer one of several words.", "Short."],
                             padding=True, return_tensors="pt"))
    try:
        runtime = runtime_for(transformer, {k: example[k] for k in INPUTS}, cache)
    except Exception as exc:  # an architecture the exporter cannot trace, or ONNX Runtime cannot run
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if backend is Backend.ONNX:
            raise ModelLoadError(f"backend='onnx': cannot export or run this {encoder.family} model's "
                                 f"{type(transformer).__name__} on ONNX Runtime ({problem}); use backend='torch'") \
                from exc
        warnings.warn(f"backend='auto': {type(transformer).__name__} could not run on ONNX Runtime ({problem}); "
                      "using torch", stacklevel=3)
        return
    if backend is Backend.AUTO:
        key = str((cache and weights_file(transformer)) or id(transformer))
        if key not in _CHOSEN:
            probe = dict(tokenizer([f"Sentence number {i} of the probe, {'with some more words ' * (i % 4)}here."
                                    for i in range(32)], padding=True, return_tensors="pt"))
            ratio, cosine = measure(transformer, runtime, {k: probe[k] for k in INPUTS})
            _CHOSEN[key] = (ratio >= AUTO_MARGIN and cosine >= AUTO_PARITY, ratio)
        if not _CHOSEN[key][0]:
            return
    encoder.runtime = runtime
    encoder.backend = Backend.ONNX.value
