"""Decoder embedders (Qwen3-Embedding, gte-Qwen2-instruct, e5-mistral style): a decoder read at its last token.

Loaded from the sentence-transformers layout these models ship (``modules.json``: Transformer, Pooling with
``pooling_mode_lasttoken``, usually Normalize), and embedded as sentence-transformers embeds them:

* a query carries its task in a prompt, ``Instruct: {task}\\nQuery:{text}`` (the exact format, with or without a
  space after ``Query:``, is read from the prompts of ``config_sentence_transformers.json``); documents are
  embedded without one (``instruction=None``). An instruction that names one of those prompts (``"query"``) is
  that prompt, and one that already starts with ``Instruct:`` is used as it is;
* the prompt and the text are tokenized together by the model's own tokenizer (which appends the end-of-text
  token where the model was trained with it, as Qwen3-Embedding's does), cut at ``max_seq_length``, padded on
  the left, and the vector is the last token's final hidden state;
* then the layout's Dense and Normalize modules. ``encode(..., dimensions=k)`` keeps the first ``k``
  dimensions and scales them back to length 1 (Matryoshka).

>>> model = load("path/to/Qwen3-Embedding-0.6B")                                        # doctest: +SKIP
>>> q = model.encode("What is the capital of China?",
...                  instruction="Given a web search query, retrieve relevant passages that answer the query")
>>> d = model.encode("The capital of China is Beijing.")                               # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, ModelLoadError
from .base import BatchResult, Encoder, Output, Pair
from .instructor import Dense, apply_dense, model_max_length, read_layout

DEFAULT_FORMAT = "Instruct: {task}\nQuery: "  # gte-Qwen2-instruct's and e5-mistral's; Qwen3-Embedding has no space
_INSTRUCT = re.compile(r"^Instruct: .*\nQuery:( ?)$", re.DOTALL)


def format_of_prompts(prompts: dict[str, str]) -> str:
    """The ``{task}`` format the layout's prompts follow (the first ``Instruct: ...\\nQuery:`` one), else the
    default.

    >>> format_of_prompts({"query": "Instruct: Given a web search query, retrieve passages\\nQuery:", "document": ""})
    'Instruct: {task}\\nQuery:'
    """
    for prompt in prompts.values():
        found = _INSTRUCT.match(prompt)
        if found:
            return "Instruct: {task}\nQuery:" + found.group(1)
    return DEFAULT_FORMAT


class DecoderEncoder(Encoder):
    """A decoder read at the last token of ``prompt + text`` (left padding), then Dense / Normalize."""

    family = "decoder"
    runtime: Any = None  # an ONNX Runtime session run in place of the decoder (inbedder.onnx_backend)
    backend = "torch"

    def __init__(self, model: nn.Module, tokenizer: Any, *, max_length: int, prompt_format: str = DEFAULT_FORMAT,
                 prompts: dict[str, str] | None = None, default_prompt: str | None = None,
                 dense: list[Dense] | None = None, normalize: bool = True):
        super().__init__()
        if "{task}" not in prompt_format:
            raise InputError(f"prompt_format {prompt_format!r} must contain {{task}}; e.g. {DEFAULT_FORMAT!r}")
        self.model: Any = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self.max_length = int(max_length)
        self.prompt_format = prompt_format
        self.prompts = dict(prompts or {})
        self.default_prompt = default_prompt
        self.dense = nn.ModuleList(dense or [])
        self.normalize = normalize

    @property
    def dim(self) -> int:
        if len(self.dense):
            last: Any = self.dense[-1]
            return int(last.linear.out_features)
        return int(self.model.config.hidden_size)

    def settings(self) -> dict[str, Any]:
        return {"family": self.family, "prompt_format": self.prompt_format, "prompts": self.prompts,
                "default_prompt": self.default_prompt, "max_length": self.max_length, "dense": len(self.dense),
                "normalize": self.normalize, **self.precision(self.model)}

    # -- prompts and tokens -----------------------------------------------------------------------------
    def prompt(self, instruction: str | None) -> str:
        """The text put before a row: a named prompt, a ready ``Instruct:`` prompt, or the task in the format."""
        if instruction is None:
            return self.prompts.get(self.default_prompt, "") if self.default_prompt else ""
        if instruction in self.prompts:
            return self.prompts[instruction]
        if not instruction or instruction.startswith("Instruct:"):
            return instruction
        return self.prompt_format.replace("{task}", instruction)

    def texts(self, pairs: list[Pair]) -> list[str]:
        return [self.prompt(instruction) + text for instruction, text in pairs]

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int]:
        """Tokens of each ``prompt + text`` before truncation, and ``max_length``."""
        ids = self.tokenizer(self.texts(pairs), truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids], self.max_length

    def token_counts(self, pairs: list[Pair]) -> list[int]:
        lengths, limit = self.row_lengths(pairs)
        return [min(n, limit) for n in lengths]

    # -- math -------------------------------------------------------------------------------------------
    def embed_batch(self, pairs: list[Pair], output: Output, **options: Any) -> BatchResult:
        self.check_options(options)
        if output is not Output.SENTENCE:
            raise InputError(f"output={output.value!r} is not available in the decoder family; it gives sentence "
                             "vectors only (output='sentence')")
        texts = self.texts(pairs)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        states = (self.runtime or self.model)(input_ids=ids, attention_mask=mask)[0].float()
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)  # the last real token (any padding side)
        vectors = states[torch.arange(states.shape[0], device=states.device), last]
        vectors = apply_dense(self.dense, vectors)
        if self.normalize:
            vectors = F.normalize(vectors, p=2, dim=1)
        lengths = mask.sum(1)
        truncated = 0
        if bool((lengths >= self.max_length).any()):
            truncated = sum(n > self.max_length for n in self.row_lengths(
                [p for p, n in zip(pairs, lengths.tolist(), strict=True) if n >= self.max_length])[0])
        return BatchResult(vectors, truncated=truncated, n_tokens=int(lengths.sum()))

    def onnx_module(self) -> nn.Module:
        """The module that ``backend="onnx"`` exports: ids and mask in, last hidden states out."""
        return self.model  # type: ignore[no-any-return]

    # -- files ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
                        max_length: int | None = None, prompt_format: str | None = None) -> DecoderEncoder:
        """Load a sentence-transformers directory whose Pooling reads the last token."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(path)
        if path.is_file():
            raise ModelLoadError(f"{path} is a single file; the decoder family needs a model directory")
        transformer_dir, pooling, dense, normalize, sbert = read_layout(path)
        if pooling != ("lasttoken",):
            raise ModelLoadError(f"the decoder family reads the last token; {path} pools by {list(pooling)} "
                                 "(load it with family='instructor')")
        st_config = _st_config(path)
        prompts = {str(k): str(v) for k, v in (st_config.get("prompts") or {}).items()}
        try:
            config = AutoConfig.from_pretrained(transformer_dir, trust_remote_code=trust_remote_code)
            model = AutoModel.from_pretrained(transformer_dir, dtype=dtype, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(transformer_dir, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the decoder in {transformer_dir}: {exc}") from exc
        model.eval()
        return cls(model, tokenizer, max_length=max_length or sbert.get("max_seq_length")
                   or model_max_length(config, tokenizer), prompt_format=prompt_format or format_of_prompts(prompts),
                   prompts=prompts, default_prompt=st_config.get("default_prompt_name"), dense=dense,
                   normalize=normalize)


def _st_config(path: Path) -> dict[str, Any]:
    """``config_sentence_transformers.json`` (prompts, default prompt name), or {} when there is none."""
    where = path / "config_sentence_transformers.json"
    if not where.exists():
        return {}
    try:
        found = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {where}: {exc}") from exc
    return found if isinstance(found, dict) else {}
