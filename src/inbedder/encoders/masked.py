"""Masked-LM answer family: the model fills ``n_mask`` mask tokens placed after the instruction, and the
vector is read at those masks (InBedder RoBERTa).

Inputs, one of two layouts:

* ``pattern=None`` (default, InBedder RoBERTa's own recipe): a tokenizer pair, the text as the first
  segment and ``instruction + <mask> * n_mask`` as the second; only the text is cut when too long.
* ``pattern="### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:"`` (any string with
  ``{input}``): the filled pattern followed by the masks, one segment, cut from the left so the masks stay.
  Placeholders are filled in one pass, so a text that contains ``{instruction}`` is left as it is.

What is read (``output_value=``) from the states of one layer (``layer=``, default the last; 0 is the
embeddings; the reference's ``"avg_gen_layer_24"`` names both):

* ``head`` (default): mask states → the LM head's dense → gelu → layer norm, averaged over the masks,
  then standardized per vector (mean 0, unbiased standard deviation 1);
* ``avg_gen`` / ``avg_ppt`` / ``avg_all``: raw states averaged over the masks / the prompt tokens (not
  mask, padding or end-of-sequence) / every token.

Answers are the tokens the LM head predicts at the masks from the last layer, decoded
(``answer_span="sequence"``: the prediction at every real token, as the reference ``MaskedLMEncoder`` returns).
``n_mask``, ``output_value``, ``layer`` and ``answer_span`` can also be given to ``encode``.

>>> model = load("inbedder-roberta-large")                                             # doctest: +SKIP
>>> vectors, answers = model.encode(["I love cat!"], instruction="What animal?", n_mask=3,
...                                 return_generations=True)                           # doctest: +SKIP
>>> answers                                                                           # doctest: +SKIP
[' cat']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..choices import parse_choice
from ..errors import InputError, InputTypeError, ModelLoadError
from ..prompts import INBEDDER_PATTERN
from .base import BatchResult, Encoder, Output, Pair

_ROBERTA_LIKE = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer", "xmod",
                 "roberta-prelayernorm")  # position ids start after the padding index
_LAYER_NAMED = re.compile(r"^(?P<value>[a-z_]+?)_layer_(?P<layer>-?\d+)$")
_PLACEHOLDER = re.compile(r"\{input\}|\{instruction\}")


def parse_output_value(enum: type[Enum], value: Any, layer: Any = None) -> tuple[Any, int | None]:
    """``("avg_gen", 3)`` or the reference's ``"avg_gen_layer_3"`` → ``(enum.AVG_GEN, 3)``; layer None if unnamed."""
    text = value.value if isinstance(value, Enum) else value
    if not isinstance(text, str):
        raise InputTypeError(f"output_value must be a str such as 'avg_gen' or 'avg_gen_layer_12'; got {value!r}")
    named = _LAYER_NAMED.match(text)
    if named and named["value"] in {m.value for m in enum}:  # type: ignore[attr-defined]
        text, from_name = named["value"], int(named["layer"])
        if layer is not None and layer != from_name:
            raise InputError(f"output_value={value!r} names layer {from_name} but layer={layer} was also given")
        layer = from_name
    member = parse_choice(enum, text, "output_value")
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
        raise InputTypeError(f"layer must be an int (negative counts from the last layer); got {layer!r}")
    return member, layer


def check_pattern(pattern: Any) -> str:
    """A pattern holds ``{input}`` once and ``{instruction}`` at most once."""
    if not isinstance(pattern, str):
        raise InputTypeError(f"pattern must be a str with an {{input}} placeholder; got {type(pattern).__name__}")
    found = _PLACEHOLDER.findall(pattern)
    if found.count("{input}") != 1 or found.count("{instruction}") > 1:
        raise InputError(f"pattern {pattern!r} must contain {{input}} exactly once and {{instruction}} at most once; "
                         f"e.g. {INBEDDER_PATTERN!r}")
    return pattern


def fill_pattern(pattern: str, pair: Pair, row: int) -> str:
    """The pattern with its placeholders replaced by the text and the instruction ("" for none), in one pass."""
    instruction, text = pair
    if instruction and "{instruction}" not in pattern:
        raise InputError(f"row {row} has an instruction but the pattern {pattern!r} has no {{instruction}} "
                         "placeholder; add one, or pass instruction=None")
    return _PLACEHOLDER.sub(lambda m: text if m.group() == "{input}" else (instruction or ""), pattern)


def check_positive(value: Any, what: str) -> int:
    """``value`` if it is an int >= 1, else an error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{what} must be an int >= 1; got {type(value).__name__} {value!r}")
    if value < 1:
        raise InputError(f"{what} must be >= 1; got {value}")
    return value


def layer_index(layer: Any, n_layers: int, what: str) -> int:
    """A hidden-states index in ``0..n_layers`` (0: embeddings); negative counts from the last."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputTypeError(f"layer must be an int; got {type(layer).__name__} {layer!r}")
    if not -(n_layers + 1) <= layer <= n_layers:
        raise InputError(f"layer={layer} is out of range for {what}: it has {n_layers} layers, so use 0 "
                         f"(embeddings) to {n_layers} (last), or -1 to {-(n_layers + 1)}")
    return layer % (n_layers + 1)


def masked_mean(states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of float32 ``states`` ``(b, t, h)`` over the positions ``keep`` ``(b, t)`` marks."""
    m = keep.unsqueeze(-1).to(torch.float32)
    return (states.float() * m).sum(1) / m.sum(1).clamp(min=1.0)


class MaskedValue(str, Enum):
    """What the masked family reads: the LM-head transform at the masks, or raw states averaged over positions."""

    HEAD = "head"
    AVG_GEN = "avg_gen"
    AVG_PPT = "avg_ppt"
    AVG_ALL = "avg_all"


class AnswerSpan(str, Enum):
    """Where the answers are read: the predicted mask tokens, or the prediction at every real token."""

    MASKS = "masks"
    SEQUENCE = "sequence"


@dataclass(frozen=True)
class MaskedSettings:
    """How the masked family builds inputs and reads vectors; checked on creation. Strings work for the enums,
    and ``output_value`` may name its layer as the reference does (``"avg_gen_layer_24"``)."""

    n_mask: int = 3
    output_value: MaskedValue = MaskedValue.HEAD
    layer: int = -1
    pattern: str | None = None
    max_length: int = 512
    answer_span: AnswerSpan = AnswerSpan.MASKS

    def __post_init__(self) -> None:
        check_positive(self.n_mask, "n_mask")
        check_positive(self.max_length, "max_length")
        value, layer = parse_output_value(MaskedValue, self.output_value, None if self.layer == -1 else self.layer)
        object.__setattr__(self, "output_value", value)
        object.__setattr__(self, "layer", -1 if layer is None else layer)
        object.__setattr__(self, "answer_span", parse_choice(AnswerSpan, self.answer_span, "answer_span"))
        if self.pattern is not None:
            check_pattern(self.pattern)


class MaskedEncoder(Encoder):
    """A ``*ForMaskedLM`` model read at the mask tokens that follow the instruction."""

    family = "masked"
    answers = True
    options = ("n_mask", "output_value", "layer", "answer_span")

    def __init__(self, model: Any, tokenizer: Any, spec: MaskedSettings | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        self.spec = spec or MaskedSettings()
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise ModelLoadError("the masked family needs a tokenizer with a mask token; this one has none")
        self._head = _head_kind(model)
        self.n_layers = int(model.config.num_hidden_layers)
        self.layer_of(self.spec.layer)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def layer_of(self, layer: int) -> int:
        return layer_index(layer, self.n_layers, type(self.model).__name__)

    def settings(self) -> dict[str, Any]:
        spec = self.spec
        return {"family": self.family, "output_value": spec.output_value.value, "layer": self.layer_of(spec.layer),
                "n_mask": spec.n_mask, "pattern": spec.pattern, "max_length": spec.max_length,
                "answer_span": spec.answer_span.value,
                **self.precision(self.model)}

    # -- tokenization -----------------------------------------------------------------------------------
    def tokenize(self, pairs: list[Pair], n_mask: int) -> tuple[dict[str, torch.Tensor], int]:
        """Padded model inputs and the number of rows cut to ``max_length``."""
        tok, limit, pattern = self.tokenizer, self.spec.max_length, self.spec.pattern
        args = self._segments(pairs, n_mask)
        enc = dict(tok(*args, truncation=False, padding=False, verbose=False))
        long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > limit]
        if long:
            sub = tuple([a[i] for i in long] for a in args)
            side = tok.truncation_side
            tok.truncation_side = "right" if pattern is None else "left"
            try:
                cut = tok(*sub, truncation="only_first" if pattern is None else True, max_length=limit, padding=False)
            except Exception as exc:  # the tokenizer cannot cut only the text
                raise InputError(f"rows {long[:10]}: the instruction and {n_mask} mask tokens alone are longer "
                                 f"than the model's limit of {limit} tokens; shorten the instruction") from exc
            finally:
                tok.truncation_side = side
            for key in enc:
                for j, i in enumerate(long):
                    enc[key][i] = cut[key][j]
        batch = tok.pad(enc, padding=True, return_tensors="pt")
        return {k: v for k, v in batch.items() if k in tok.model_input_names}, len(long)

    def _segments(self, pairs: list[Pair], n_mask: int) -> tuple[list[str], ...]:
        """What the tokenizer reads: (texts, instructions + masks) as a pair, or the filled patterns + masks."""
        masks = self.tokenizer.mask_token * n_mask
        if self.spec.pattern is None:
            return [t for _, t in pairs], [(ins or "") + masks for ins, _ in pairs]
        return [fill_pattern(self.spec.pattern, p, i) + masks for i, p in enumerate(pairs)],

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int]:
        """Tokens of each row (text, instruction and masks) before truncation, and ``max_length``."""
        n_mask = check_positive(options.get("n_mask", self.spec.n_mask), "n_mask")
        enc = self.tokenizer(*self._segments(pairs, n_mask), truncation=False, padding=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]], self.spec.max_length

    # -- math -------------------------------------------------------------------------------------------
    def head_transform(self, states: torch.Tensor) -> torch.Tensor:
        """The LM head up to (not including) the vocabulary projection: dense → gelu → layer norm."""
        if self._head == "roberta":
            head = self.model.lm_head
            return head.layer_norm(F.gelu(head.dense(states)))
        return self.model.cls.predictions.transform(states)

    def embed_batch(self, pairs: list[Pair], output: Output, return_generations: bool = True,
                    **options: Any) -> BatchResult:
        """Vectors (float32) and, when ``return_generations``, the decoded predictions for one batch."""
        self.check_options(options)
        if output is not Output.SENTENCE:
            raise InputError(f"output={output.value!r} is not available in the masked family; it gives sentence "
                             "vectors only (output='sentence')")
        n_mask = check_positive(options.get("n_mask", self.spec.n_mask), "n_mask")
        value, named = parse_output_value(MaskedValue, options.get("output_value", self.spec.output_value),
                                          options.get("layer"))
        layer = self.layer_of(self.spec.layer if named is None else named)
        span = parse_choice(AnswerSpan, options.get("answer_span", self.spec.answer_span), "answer_span")
        features, truncated = self.tokenize(pairs, n_mask)
        features = {k: v.to(self.device) for k, v in features.items()}
        ids, attention = features["input_ids"], features["attention_mask"].bool()
        deep = layer != self.n_layers
        out = self.model.base_model(**features, output_hidden_states=deep, return_dict=True)
        last = out.last_hidden_state
        states = out.hidden_states[layer] if deep else last

        is_mask = ids.eq(self.tokenizer.mask_token_id)
        appended = is_mask & (is_mask.flip(1).cumsum(1).flip(1) <= n_mask)  # the last n_mask masks of a row
        if (appended.sum(1) != n_mask).any():
            raise InputError(f"a row lost its mask tokens to truncation; shorten the texts or n_mask={n_mask}")
        shape = (ids.shape[0], n_mask, last.shape[-1])
        transformed = None
        if value is MaskedValue.HEAD:
            transformed = self.head_transform(states[appended].view(shape))
            vectors = transformed.float().mean(1)
            vectors = (vectors - vectors.mean(1, keepdim=True)) / vectors.std(1, keepdim=True)
        elif value is MaskedValue.AVG_GEN:
            vectors = states[appended].view(shape).float().mean(1)
        elif value is MaskedValue.AVG_PPT:
            keep = attention & ~is_mask
            if self.tokenizer.eos_token_id is not None:
                keep &= ids.ne(self.tokenizer.eos_token_id)
            vectors = masked_mean(states, keep)
        else:
            vectors = masked_mean(states, attention)
        result = BatchResult(vectors, truncated=truncated, n_tokens=int(attention.sum()))
        if return_generations:
            decoder = self.model.get_output_embeddings()
            if span is AnswerSpan.MASKS:
                if transformed is None or deep:
                    transformed = self.head_transform(last[appended].view(shape))
                predicted = decoder(transformed).argmax(-1).tolist()
            else:
                top = decoder(self.head_transform(last)).argmax(-1)
                predicted = [row[keep].tolist() for row, keep in zip(top, attention, strict=True)]
            result.answers = self.tokenizer.batch_decode(predicted, skip_special_tokens=True)
        return result

    # -- files ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
                        n_mask: int = 3, output_value: str = "head", layer: int = -1, pattern: str | None = None,
                        max_length: int | None = None, answer_span: str = "masks") -> MaskedEncoder:
        """Load a ``*ForMaskedLM`` directory. Options are those of :class:`MaskedSettings`."""
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        if Path(path).is_file():
            raise ModelLoadError(f"{path} is a single file; the masked family needs a model directory")
        archs = architectures(Path(path))
        if not any(a.endswith("ForMaskedLM") for a in archs):
            raise ModelLoadError(
                f"the masked family needs a masked-LM checkpoint with its LM head (architectures ending in "
                f"'ForMaskedLM'); {path} has architectures {archs}. A plain encoder loads with family='instructor'")
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                               output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the masked LM in {path}: {exc}") from exc
        prefix = model.base_model_prefix + "."
        missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
        if missing:
            raise ModelLoadError(f"the masked family needs the checkpoint's LM head, but {path} has no weights for "
                                 f"{missing[:5]}")
        if max_length is None:
            max_length = _default_max_length(model.config, tokenizer)
        model.eval()
        spec = MaskedSettings(n_mask=n_mask, output_value=output_value, layer=layer, pattern=pattern,  # type: ignore[arg-type]
                              max_length=max_length, answer_span=answer_span)  # type: ignore[arg-type]
        return cls(model, tokenizer, spec)


def _head_kind(model: Any) -> str:
    head = getattr(model, "lm_head", None)
    if head is not None and hasattr(head, "dense") and hasattr(head, "layer_norm"):
        return "roberta"
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if predictions is not None and hasattr(predictions, "transform"):
        return "bert"
    raise ModelLoadError(f"the masked family reads the LM head of RoBERTa-style (lm_head.dense, lm_head.layer_norm) "
                         f"or BERT-style (cls.predictions.transform) models; {type(model).__name__} has neither")


def architectures(path: Path) -> list[str]:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc
    return [str(a) for a in config.get("architectures") or []]


def _default_max_length(config: Any, tokenizer: Any) -> int:
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = (int(config.pad_token_id or 0) + 1) if config.model_type in _ROBERTA_LIKE else 0
        limits.append(positions - offset)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
        limits.append(tok_limit)
    return min(limits) if limits else 512
