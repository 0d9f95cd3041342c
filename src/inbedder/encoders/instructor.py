"""INSTRUCTOR family: an encoder reads ``instruction + text``; instruction tokens are excluded from pooling.

The algorithm is INSTRUCTOR's (InstructorEmbedding 1.0.1 on sentence-transformers 2.2.2):

* the text is stripped, the instruction is kept verbatim, the two are joined with no separator and the
  joined string is stripped again (and lower-cased when the checkpoint says ``do_lower_case``);
* the instruction covers ``len(tokenize(instruction.strip())) - 1`` positions, or 0 when that is <= 1;
  those positions are attended to by the encoder but left out of pooling;
* then the checkpoint's Dense and Normalize modules.

A text with no instruction is pooled as usual.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError
from .base import BatchResult, Encoder, Output, Pair

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_SBERT_CONFIGS = ("sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
                  "sentence_camembert_config.json", "sentence_albert_config.json", "sentence_xlm-roberta_config.json",
                  "sentence_xlnet_config.json")
_T5_TYPES = ("t5", "mt5", "umt5")


class Dense(nn.Module):
    """sentence-transformers' Dense module: a linear layer and an activation (from ``torch.nn`` only)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "Identity"):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        act = getattr(nn, activation, None)
        if not (isinstance(act, type) and issubclass(act, nn.Module)):
            raise ModelLoadError(f"Dense activation {activation!r} is not a torch.nn module")
        self.activation = act()
        self.activation_name = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class InstructorEncoder(Encoder):
    """Encoder + instruction-excluding pooling (+ Dense, + Normalize). Does the math of one batch."""

    family = "instructor"
    transformer: Any
    dense: nn.ModuleList
    runtime: Any = None  # an ONNX Runtime session run in place of the transformer (inbedder.onnx_backend)
    backend = "torch"

    def __init__(self, transformer: nn.Module, tokenizer: Any, *, max_length: int, pooling: tuple[str, ...] = ("mean",),
                 dense: list[Dense] | None = None, normalize: bool = False, do_lower_case: bool = False):
        super().__init__()
        bad = [p for p in pooling if p not in POOLING_MODES]
        if bad or not pooling:
            raise ModelLoadError(f"pooling modes {bad or pooling} not supported; supported: {POOLING_MODES}")
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        self.max_length = int(max_length)
        self.pooling = tuple(pooling)
        self.dense = nn.ModuleList(dense or [])
        self.normalize = normalize
        self.do_lower_case = do_lower_case
        self._instruction_lengths: dict[str, int] = {}

    @property
    def dim(self) -> int:
        if len(self.dense):
            last: Any = self.dense[-1]
            return int(last.linear.out_features)
        return int(self.transformer.config.hidden_size if hasattr(self.transformer.config, "hidden_size")
                   else self.transformer.config.d_model) * len(self.pooling)

    def settings(self) -> dict[str, Any]:
        return {"family": self.family, "pooling": list(self.pooling), "dense": len(self.dense),
                "normalize": self.normalize, "max_length": self.max_length, "do_lower_case": self.do_lower_case,
                **self.precision(self.transformer)}

    # -- tokenization -----------------------------------------------------------------------------------
    def instruction_length(self, instruction: str) -> int:
        """Positions the instruction covers in ``instruction + text`` (INSTRUCTOR's count)."""
        n = self._instruction_lengths.get(instruction)
        if n is None:
            text = instruction.strip()
            if self.do_lower_case:
                text = text.lower()
            ids = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
            n = len(ids) - 1
            n = 0 if n <= 1 else n
            self._instruction_lengths[instruction] = n
        return n

    def joined_text(self, pair: Pair) -> str:
        instruction, text = pair
        joined = text.strip() if instruction is None else (instruction + text.strip()).strip()
        return joined.lower() if self.do_lower_case else joined

    def tokenize(self, pairs: list[Pair]) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
        """Token ids, attention mask, instruction lengths and the number of truncated rows."""
        texts = [self.joined_text(p) for p in pairs]
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        lengths = batch["attention_mask"].sum(1)
        full = (lengths >= self.max_length).nonzero().flatten().tolist()  # only these can have been cut
        long = 0
        if full:
            uncut = self.tokenizer([texts[i] for i in full], truncation=False, verbose=False)["input_ids"]
            long = sum(len(ids) > self.max_length for ids in uncut)
        ctx = torch.tensor([0 if p[0] is None else self.instruction_length(p[0]) for p in pairs], dtype=torch.long)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, ctx, long

    def token_counts(self, pairs: list[Pair]) -> list[int]:
        """Tokens of each ``instruction + text`` after truncation (the engine sorts by these: less padding)."""
        ids = self.tokenizer([self.joined_text(p) for p in pairs], truncation=True, max_length=self.max_length,
                             verbose=False)["input_ids"]
        return [len(row) for row in ids]

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int]:
        """Tokens of each ``instruction + text`` before truncation, and ``max_length``."""
        ids = self.tokenizer([self.joined_text(p) for p in pairs], truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids], self.max_length

    # -- math -------------------------------------------------------------------------------------------
    def pool(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool float32 token states ``(b, t, h)`` over ``mask`` ``(b, t)``; modes concatenated."""
        m = mask.unsqueeze(-1).to(tokens.dtype)
        out = []
        for mode in self.pooling:
            if mode == "cls":
                out.append(tokens[:, 0])
            elif mode == "max":
                out.append(tokens.masked_fill(m == 0, -1e9).max(dim=1).values)
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                total = (tokens * m).sum(1)
                count = m.sum(1).clamp(min=1e-9)
                out.append(total / count if mode == "mean" else total / count.sqrt())
            elif mode == "weightedmean":
                w = m * torch.arange(1, tokens.shape[1] + 1, device=tokens.device, dtype=tokens.dtype)[None, :, None]
                out.append((tokens * w).sum(1) / w.sum(1).clamp(min=1e-9))
            else:  # lasttoken: the last position the mask keeps
                pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
                last = (pos * (mask > 0)).amax(dim=1)
                out.append(tokens[torch.arange(tokens.shape[0]), last] * (mask.sum(1) > 0)[:, None])
        return torch.cat(out, dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, context: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence vectors (float32) and token states (float32) for one tokenized batch."""
        run = self.runtime or self.transformer
        states = run(input_ids=input_ids, attention_mask=attention_mask)[0].float()
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        pool_mask = attention_mask * (positions >= context.to(input_ids.device)[:, None])
        vectors = self.pool(states, pool_mask)
        vectors = apply_dense(self.dense, vectors)
        if self.normalize:
            vectors = F.normalize(vectors, p=2, dim=1)
        return vectors, states

    def embed_batch(self, pairs: list[Pair], output: Output, **options: Any) -> BatchResult:
        self.check_options(options)
        features, context, truncated = self.tokenize(pairs)
        device = self.device
        features = {k: v.to(device) for k, v in features.items()}
        vectors, states = self(features["input_ids"], features["attention_mask"], context)
        lengths = features["attention_mask"].sum(1).tolist()
        result = BatchResult(vectors, truncated=truncated, n_tokens=int(sum(lengths)))
        if output is not Output.SENTENCE:
            ctx = context.tolist()
            result.tokens = [states[i, ctx[i]:n] for i, n in enumerate(lengths)]
            result.instruction_tokens = [states[i, :ctx[i]] for i in range(len(pairs))]
        return result

    def onnx_module(self) -> nn.Module:
        """The module that ``backend="onnx"`` exports: ids and mask in, last hidden states out."""
        return self.transformer  # type: ignore[no-any-return]

    # -- files ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: Path, *, dtype: torch.dtype = torch.float32, max_length: int | None = None,
                        trust_remote_code: bool = False) -> InstructorEncoder:
        """Load a sentence-transformers directory (modules.json) or a plain transformers encoder."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

        if path.is_file():
            raise ModelLoadError(f"{path} is a single file; the instructor family needs a model directory")

        transformer_dir, pooling, dense, normalize, sbert = read_layout(path)
        config = AutoConfig.from_pretrained(transformer_dir, trust_remote_code=trust_remote_code)
        model_cls = T5EncoderModel if config.model_type in _T5_TYPES else AutoModel
        try:
            model = model_cls.from_pretrained(transformer_dir, dtype=dtype, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(transformer_dir, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the encoder in {transformer_dir}: {exc}") from exc
        if max_length is None:
            max_length = sbert.get("max_seq_length") or model_max_length(config, tokenizer)
        model.eval()
        return cls(model, tokenizer, max_length=max_length, pooling=pooling, dense=dense, normalize=normalize,
                   do_lower_case=bool(sbert.get("do_lower_case", False)))


def apply_dense(dense: nn.ModuleList, vectors: torch.Tensor) -> torch.Tensor:
    """``vectors`` through the Dense layers, in each layer's dtype; float32 out."""
    for layer in dense:
        weight = getattr(layer.linear, "weight", None)  # a method, not a tensor, once dynamically quantized
        vectors = layer(vectors.to(weight.dtype if isinstance(weight, torch.Tensor) else torch.float32)).float()
    return vectors


def read_layout(path: Path) -> tuple[Path, tuple[str, ...], list[Dense], bool, dict[str, Any]]:
    """A sentence-transformers directory's modules (a plain transformers directory: mean pooling, nothing else):
    the transformer's folder, the pooling modes, the Dense layers, whether it normalizes, and its
    ``sentence_*_config.json`` (``max_seq_length``, ``do_lower_case``)."""
    modules = _read_json(path / "modules.json") if (path / "modules.json").exists() else None
    transformer_dir, normalize = path, False
    pooling: tuple[str, ...] = ("mean",)
    dense: list[Dense] = []
    for module in sorted(modules or [], key=lambda m: m.get("idx", 0)):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        where = path / module.get("path", "")
        if kind in ("Transformer", "INSTRUCTOR_Transformer"):
            transformer_dir = where
        elif kind in ("Pooling", "INSTRUCTOR_Pooling"):
            pooling = _pooling_modes(_read_json(where / "config.json"))
        elif kind == "Dense":
            dense.append(_load_dense(where))
        elif kind == "Normalize":
            normalize = True
        else:
            raise ModelLoadError(
                f"{path / 'modules.json'}: module type {module.get('type')!r} is not supported "
                "(supported: Transformer, INSTRUCTOR_Transformer, Pooling, Dense, Normalize)"
            )
    found = [transformer_dir / n for n in _SBERT_CONFIGS if (transformer_dir / n).exists()]
    return transformer_dir, pooling, dense, normalize, _read_json(found[0]) if found else {}


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    if config.get("pooling_mode"):
        return (str(config["pooling_mode"]).lower(),)
    names = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
             "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
             "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
    return tuple(mode for key, mode in names.items() if config.get(key))


def _load_dense(where: Path) -> Dense:
    config = _read_json(where / "config.json")
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if not activation.startswith("torch.nn."):
        raise ModelLoadError(f"{where}/config.json: activation {activation!r} is not a torch.nn module")
    name = activation.rsplit(".", 1)[-1]
    layer = Dense(config["in_features"], config["out_features"], config.get("bias", True), name)
    layer.load_state_dict(load_weights(where))
    return layer


def load_weights(where: Path) -> dict[str, torch.Tensor]:
    """Weights of a module folder: ``model.safetensors``, else ``pytorch_model.bin`` read with weights_only."""
    if (where / "model.safetensors").exists():
        from safetensors.torch import load_file

        return load_file(str(where / "model.safetensors"))
    if (where / "pytorch_model.bin").exists():
        return torch.load(where / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise ModelLoadError(f"no weights in {where} (looked for model.safetensors, pytorch_model.bin)")


def model_max_length(config: Any, tokenizer: Any) -> int:
    """The token limit a checkpoint states (its position embeddings, its tokenizer), 512 when neither does."""
    found = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(x) for x in found if isinstance(x, int) and 0 < x < 1_000_000]
    return min(limits) if limits else 512
