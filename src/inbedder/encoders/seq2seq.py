"""Seq2seq answer family (flan-t5 style): the encoder reads the filled pattern, the decoder answers it, and
the vector is read from the decoder states that produced the answer.

The input is ``pattern`` with ``{input}`` and ``{instruction}`` filled in one pass (default pattern:
``"### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:"``), cut from the right when
too long. The answer is generated, one per text (greedy by default, ``max_new_tokens=20``).

What is read (``output_value=``) at one layer (``layer=``, default the last; 0 is the embeddings; the
reference's ``"avg_gen_layer_24"`` names both):

* ``avg_gen`` (default) / ``first_gen`` / ``last_gen``: the decoder state of each step whose generated
  token is not a special token (nor one of ``filter_words``' tokens): their mean, the first, the last.
  When every generated token is special, the state of the first step is used;
* ``avg_ppt``: encoder states averaged over the input tokens.

``output_value``, ``layer``, ``max_new_tokens``, ``do_sample`` and ``filter_words`` can also be given to
``encode``. Answers are the generated text alone (the reference prepends the prompt); with
``filter_answers=True`` they leave out the tokens of ``filter_words`` too.

>>> model = load("path/to/flan-t5-large")                                             # doctest: +SKIP
>>> vectors, answers = model.encode(["I love cat!"], instruction="What animal?",
...                                 return_generations=True)                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, InputTypeError, ModelLoadError
from .base import BatchResult, Encoder, Output, Pair
from .masked import (
    INBEDDER_PATTERN,
    architectures,
    check_pattern,
    check_positive,
    fill_pattern,
    layer_index,
    masked_mean,
    parse_output_value,
)

# generate() arguments the family sets itself, or that would break the row ↔ state correspondence
_RESERVED = ("output_hidden_states", "return_dict_in_generate", "num_return_sequences", "num_beams",
             "max_new_tokens", "do_sample", "input_ids", "attention_mask")


class Seq2SeqValue(str, Enum):
    """What the seq2seq family reads: decoder states of the answer, or encoder states of the prompt."""

    AVG_GEN = "avg_gen"
    FIRST_GEN = "first_gen"
    LAST_GEN = "last_gen"
    AVG_PPT = "avg_ppt"


@dataclass(frozen=True)
class Seq2SeqSettings:
    """How the seq2seq family prompts, generates and pools; checked on creation.

    ``max_new_tokens=None`` or ``do_sample=None`` leave the checkpoint's generation config in charge;
    ``generation`` holds further ``generate()`` arguments (``temperature``, ``top_p``, ...).
    """

    output_value: Seq2SeqValue = Seq2SeqValue.AVG_GEN
    layer: int = -1
    pattern: str = INBEDDER_PATTERN
    max_length: int = 512
    max_new_tokens: int | None = 20
    do_sample: bool | None = False
    generation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        value, layer = parse_output_value(Seq2SeqValue, self.output_value, None if self.layer == -1 else self.layer)
        object.__setattr__(self, "output_value", value)
        object.__setattr__(self, "layer", -1 if layer is None else layer)
        check_pattern(self.pattern)
        check_positive(self.max_length, "max_length")
        if self.max_new_tokens is not None:
            check_positive(self.max_new_tokens, "max_new_tokens")
        if self.do_sample is not None and not isinstance(self.do_sample, bool):
            raise InputTypeError(f"do_sample must be a bool or None; got {self.do_sample!r}")
        if not isinstance(self.generation, Mapping):
            raise InputTypeError(f"generation must be a dict of generate() arguments; got {self.generation!r}")
        bad = [k for k in self.generation if k in _RESERVED and not (k in ("num_beams", "num_return_sequences")
                                                                     and self.generation[k] == 1)]
        if bad:
            raise InputError(f"generation={dict(self.generation)!r}: {bad} cannot be set there; use the "
                             "max_new_tokens= and do_sample= options (one greedy or sampled answer per text)")
        object.__setattr__(self, "generation", dict(self.generation))


class Seq2SeqEncoder(Encoder):
    """An encoder-decoder LM (``*ForConditionalGeneration``) that answers the filled pattern."""

    family = "seq2seq"
    answers = True
    options = ("output_value", "layer", "max_new_tokens", "do_sample", "filter_words", "filter_answers")

    def __init__(self, model: Any, tokenizer: Any, spec: Seq2SeqSettings | None = None):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "right"
        self.spec = spec or Seq2SeqSettings()
        config = model.config
        self.encoder_layers = int(getattr(config, "num_layers", None) or getattr(config, "encoder_layers", None)
                                  or config.num_hidden_layers)
        self.decoder_layers = int(getattr(config, "num_decoder_layers", None)
                                  or getattr(config, "decoder_layers", None) or self.encoder_layers)
        self.layer_of(self.spec.output_value, self.spec.layer)
        self._filter_ids: dict[tuple[str, ...], list[int]] = {}

    @property
    def dim(self) -> int:
        config = self.model.config
        return int(getattr(config, "d_model", None) or config.hidden_size)

    def layer_of(self, value: Seq2SeqValue, layer: int) -> int:
        """The hidden-states index of ``layer`` in the encoder (``avg_ppt``) or the decoder (the others)."""
        on_encoder = value is Seq2SeqValue.AVG_PPT
        n = self.encoder_layers if on_encoder else self.decoder_layers
        return layer_index(layer, n, f"the {'encoder' if on_encoder else 'decoder'} of {type(self.model).__name__}")

    def settings(self) -> dict[str, Any]:
        spec = self.spec
        return {"family": self.family, "output_value": spec.output_value.value,
                "layer": self.layer_of(spec.output_value, spec.layer), "pattern": spec.pattern,
                "max_length": spec.max_length, "max_new_tokens": spec.max_new_tokens, "do_sample": spec.do_sample,
                "generation": dict(spec.generation),
                **self.precision(self.model)}

    def tokenize(self, pairs: list[Pair]) -> tuple[dict[str, torch.Tensor], int]:
        """Padded ``input_ids`` and ``attention_mask``, and the number of rows cut to ``max_length``."""
        prompts = [fill_pattern(self.spec.pattern, p, i) for i, p in enumerate(pairs)]
        lengths, limit = self.row_lengths(pairs)
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return {k: batch[k] for k in ("input_ids", "attention_mask")}, sum(n > limit for n in lengths)

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int]:
        """Tokens of each filled prompt before truncation, and ``max_length``."""
        prompts = [fill_pattern(self.spec.pattern, p, i) for i, p in enumerate(pairs)]
        ids = self.tokenizer(prompts, truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids], self.spec.max_length

    def filter_ids(self, words: Any) -> list[int]:
        """Token ids of ``filter_words``, each word tokenized as a text (so with ``</s>``)."""
        if isinstance(words, str) or not isinstance(words, (list, tuple)) \
                or not all(isinstance(w, str) for w in words):
            raise InputTypeError(f"filter_words must be a list of str; got {words!r}")
        key = tuple(words)
        if key not in self._filter_ids:
            self._filter_ids[key] = sorted({i for w in words for i in self.tokenizer(w)["input_ids"]})
        return self._filter_ids[key]

    def generate(self, features: dict[str, torch.Tensor], max_new_tokens: Any, do_sample: Any) -> Any:
        kwargs = {"num_beams": 1, "num_return_sequences": 1, **self.spec.generation}  # one answer per row
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = check_positive(max_new_tokens, "max_new_tokens")
        if do_sample is not None:
            if not isinstance(do_sample, bool):
                raise InputTypeError(f"do_sample must be a bool or None; got {do_sample!r}")
            kwargs["do_sample"] = do_sample
        try:
            return self.model.generate(**features, **kwargs, output_hidden_states=True, return_dict_in_generate=True)
        except (TypeError, ValueError) as exc:
            raise InputError(f"generate() rejected the seq2seq family's generation settings {kwargs!r}: {exc}") \
                from exc

    def embed_batch(self, pairs: list[Pair], output: Output, return_generations: bool = True,
                    **options: Any) -> BatchResult:
        """Vectors (float32) and the generated answers for one batch of pairs. Without ``return_generations``,
        ``avg_ppt`` runs the encoder only."""
        self.check_options(options)
        if output is not Output.SENTENCE:
            raise InputError(f"output={output.value!r} is not available in the seq2seq family; it gives sentence "
                             "vectors only (output='sentence')")
        value, named = parse_output_value(Seq2SeqValue, options.get("output_value", self.spec.output_value),
                                          options.get("layer"))
        layer = self.layer_of(value, self.spec.layer if named is None else named)
        skip = set(self.tokenizer.all_special_ids)
        if options.get("filter_words") is not None:
            skip.update(self.filter_ids(options["filter_words"]))
        features, truncated = self.tokenize(pairs)
        features = {k: v.to(self.device) for k, v in features.items()}
        mask = features["attention_mask"]
        if value is Seq2SeqValue.AVG_PPT and not return_generations:
            encoded = self.model.get_encoder()(**features, output_hidden_states=True, return_dict=True)
            vectors = masked_mean(encoded.hidden_states[layer], mask.bool())
            return BatchResult(vectors, truncated=truncated, n_tokens=int(mask.sum()))
        out = self.generate(features, options.get("max_new_tokens", self.spec.max_new_tokens),
                            options.get("do_sample", self.spec.do_sample))
        sequences = out.sequences
        shown = sequences
        if options.get("filter_answers") and options.get("filter_words") is not None:
            drop = set(self.filter_ids(options["filter_words"]))
            shown = [[t for t in row if t not in drop] for row in sequences.tolist()]
        if value is Seq2SeqValue.AVG_PPT:
            vectors = masked_mean(out.encoder_hidden_states[layer], mask.bool())
        else:
            vectors = read_answer(value, out.decoder_hidden_states, layer, sequences, sorted(skip))
        return BatchResult(vectors, answers=self.tokenizer.batch_decode(shown, skip_special_tokens=True),
                           truncated=truncated, n_tokens=int(mask.sum()) + int(sequences[:, 1:].numel()))

    @classmethod
    def from_pretrained(cls, path: Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
                        output_value: str = "avg_gen", layer: int = -1, pattern: str = INBEDDER_PATTERN,
                        max_length: int | None = None, max_new_tokens: int | None = 20, do_sample: bool | None = False,
                        generation: Mapping[str, Any] | None = None) -> Seq2SeqEncoder:
        """Load an encoder-decoder LM directory. Options are those of :class:`Seq2SeqSettings`."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if Path(path).is_file():
            raise ModelLoadError(f"{path} is a single file; the seq2seq family needs a model directory")
        archs = architectures(Path(path))
        if not any(a.endswith("ForConditionalGeneration") for a in archs):
            raise ModelLoadError(
                f"the seq2seq family needs an encoder-decoder checkpoint with its LM head (architectures ending in "
                f"'ForConditionalGeneration', e.g. T5ForConditionalGeneration); {path} has architectures {archs}")
        try:
            model, info = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                                output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the seq2seq LM in {path}: {exc}") from exc
        missing = sorted(info.get("missing_keys", ()))
        if missing:
            raise ModelLoadError(f"the seq2seq family needs the whole encoder-decoder with its LM head, but {path} "
                                 f"has no weights for {missing[:5]}")
        if max_length is None:
            limit = getattr(tokenizer, "model_max_length", None)
            max_length = limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 512
        model.eval()
        spec = Seq2SeqSettings(output_value=output_value, layer=layer, pattern=pattern,  # type: ignore[arg-type]
                               max_length=max_length, max_new_tokens=max_new_tokens, do_sample=do_sample,
                               generation=dict(generation or {}))
        return cls(model, tokenizer, spec)


def read_answer(value: Seq2SeqValue, steps: Any, layer: int, sequences: torch.Tensor, skip: list[int]) -> torch.Tensor:
    """Pool the decoder states of the generation steps whose produced token is not in ``skip``.

    ``steps[s][layer]`` is ``(b, 1, h)``: step ``s`` reads token ``s`` of ``sequences`` and produces token
    ``s + 1``. A row whose produced tokens are all skipped uses its first step.
    """
    states = torch.cat([step[layer] for step in steps], dim=1).float()
    produced = sequences[:, 1:1 + states.shape[1]]
    keep = ~torch.isin(produced, torch.tensor(skip, dtype=produced.dtype, device=produced.device))
    keep[~keep.any(1), 0] = True
    if value is Seq2SeqValue.AVG_GEN:
        return masked_mean(states, keep)
    index = torch.arange(keep.shape[1], device=keep.device).expand_as(keep)
    if value is Seq2SeqValue.FIRST_GEN:
        pick = index.masked_fill(~keep, keep.shape[1]).amin(1)
    else:
        pick = index.masked_fill(~keep, -1).amax(1)
    return states[torch.arange(states.shape[0], device=states.device), pick]
