"""Drop-in replacements for InBedder's masked-LM and seq2seq encoders and for the ``InBedder`` class of the
``inbedder-roberta-large`` model card.

Code written for them runs after changing only its import line::

    from inbedder.compat import MaskedLMEncoder     # was: from lm_encoders_hf import MaskededLMEncoder
    model = MaskedLMEncoder("BrandonZYW/roberta-large-InBedder", output_value="avg_gen_layer_24", mask_length=3)
    pattern = "### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:"
    corpus = [pattern.replace("{input}", s).replace("{instruction}", "What is the animal?") for s in texts]
    embeddings, generations = model.encode(corpus, return_generations=True)

    from inbedder.compat import InBedder            # the model card's class
    InBedder("KomeijiForce/inbedder-roberta-large", device="cpu").encode(texts, "What animal?", 3)

As in the originals, ``sentences`` are complete prompts (the masked encoder appends the masks and cuts from
the left; the seq2seq encoder cuts from the right), and the generations returned are the reference's: the
prediction at every token for the masked encoder (padding left out), prompt + answer for the seq2seq one.
``output_value="re_encode"`` embeds the answers with ``reencoder.encode`` (a sentence-transformers model).
Differences: ``trust_remote_code`` is off; ``cache_dir`` keeps one sub-folder per output value in inbedder's
cache format; the seq2seq tokenizer is the fast one (the original asks for the sentencepiece one; they agree on
ordinary text); one answer per prompt (``num_beams`` other than 1 is refused, as it breaks the original).
The constructor, ``set_output_value``, ``get_*_output_values`` and ``encode`` are
:class:`~inbedder.compat.reference.ReferenceEncoder`'s; the classes here say what their family does differently.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..choices import Family, parse_device
from ..encoders.masked import MaskedEncoder, MaskedValue
from ..encoders.seq2seq import Seq2SeqEncoder, Seq2SeqValue
from ..errors import InputError
from ..loading import load
from ..registry import Location
from .reference import Call, ReferenceEncoder


def _with_tokenizer(encoder: Any, tokenizer_path: str | None) -> Any:
    """The encoder, with the tokenizer of ``tokenizer_path`` (padded on the right, as the originals') if given."""
    if tokenizer_path is not None:
        from transformers import AutoTokenizer

        encoder.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        encoder.tokenizer.padding_side = "right"
    return encoder


class MaskedLMEncoder(ReferenceEncoder):
    """``lm_encoders_hf.MaskededLMEncoder``: same constructor (``mask_length`` is required among the
    generation configs), ``set_output_value`` and ``encode``. Values: avg_gen, avg_ppt, avg_all, re_encode."""

    family = Family.MASKED
    values = (MaskedValue, ("avg_gen", "avg_ppt", "avg_all"))

    def _generation_configs(self, configs: dict[str, Any]) -> dict[str, Any]:
        if "mask_length" not in configs:
            raise InputError("MaskedLMEncoder needs mask_length=<number of mask tokens> (InBedder's RoBERTa uses 3)")
        return configs

    def _build(self, name: str | os.PathLike[str], location: Location, tokenizer_path: str | None,
               dtype: torch.dtype, flash_attention: bool, max_length: int, generation_configs: dict[str, Any]) -> Any:
        return _with_tokenizer(MaskedEncoder.from_pretrained(
            location.path, dtype=dtype, pattern="{input}", n_mask=generation_configs["mask_length"],
            output_value="avg_gen", max_length=max_length, answer_span="sequence"), tokenizer_path)

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        # filter_words is accepted and unused, as in the original
        return {**super()._options(re_encode, filter_words), "answer_span": "masks" if re_encode else "sequence"}

    def _generations(self, call: Call, answers: list[str], options: dict[str, Any]) -> list[str]:
        if options.get("answer_span") == "sequence":
            return answers
        return self._vectors_and_answers(call, {**options, "answer_span": "sequence"}, True)[1] or []


MaskededLMEncoder = MaskedLMEncoder  # the name the reference code imports


class Seq2SeqLMEncoder(ReferenceEncoder):
    """``lm_encoders_hf.Seq2SeqLMEncoder``: same constructor (generation configs go to ``generate``),
    ``set_output_value`` and ``encode``. Values: avg_gen, avg_ppt, last_gen, first_gen, re_encode."""

    family = Family.SEQ2SEQ
    values = (Seq2SeqValue, ("avg_gen", "avg_ppt", "last_gen", "first_gen"))

    def _build(self, name: str | os.PathLike[str], location: Location, tokenizer_path: str | None,
               dtype: torch.dtype, flash_attention: bool, max_length: int, generation_configs: dict[str, Any]) -> Any:
        generation = dict(generation_configs)
        return _with_tokenizer(Seq2SeqEncoder.from_pretrained(
            location.path, dtype=dtype, pattern="{input}", max_length=max_length,
            max_new_tokens=generation.pop("max_new_tokens", None), do_sample=generation.pop("do_sample", None),
            generation=generation), tokenizer_path)

    def _layers(self, value: Any) -> int:
        encoder: Any = self.encoder
        return int(encoder.encoder_layers if value is Seq2SeqValue.AVG_PPT else encoder.decoder_layers)

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        options = super()._options(re_encode, filter_words)
        if filter_words is None:
            return options
        # re_encode embeds the answers without the filtered tokens, as the original does
        return {**options, "filter_words": list(filter_words), "filter_answers": re_encode}

    def _generations(self, call: Call, answers: list[str], options: dict[str, Any]) -> list[str]:
        if options.get("filter_answers"):  # the generations returned are never filtered
            answers = self._vectors_and_answers(call, {**options, "filter_answers": False}, True)[1] or []
        return [prompt + answer for prompt, answer in zip(call.rows, answers, strict=True)]


class InBedder:
    """The ``InBedder`` class of the ``KomeijiForce/inbedder-roberta-large`` model card.

    ``encode(input_texts, instruction, n_mask)`` returns a ``(len(input_texts), hidden)`` float32 tensor on
    ``device``: each text with ``instruction + <mask> * n_mask`` as the second segment, the mask states through
    the LM head's dense → gelu → layer norm, averaged over the masks, standardized per row. ``instruction``
    is one str or one per text.
    """

    def __init__(self, path: str | os.PathLike[str] = "KomeijiForce/inbedder-roberta-large", device: str = "cuda:0"):
        self.device = parse_device(device)
        self.embedder = load(path, family="masked", device=self.device)
        encoder: Any = self.embedder.encoder
        self.tokenizer = encoder.tokenizer
        self.model = encoder.model.base_model
        head = getattr(encoder.model, "lm_head", None)
        self.dense = getattr(head, "dense", None)
        self.layer_norm = getattr(head, "layer_norm", None)
        self.vocab = {index: token for token, index in self.tokenizer.get_vocab().items()}

    def encode(self, input_texts: Any, instruction: Any, n_mask: int) -> torch.Tensor:
        texts = [input_texts] if isinstance(input_texts, str) else input_texts
        vectors = self.embedder.encode(texts, instruction=instruction, n_mask=n_mask, convert_to_tensor=True,
                                       show_progress_bar=False)
        return vectors.to(self.device)
