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
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..choices import Family, parse_device
from ..encoders.masked import MaskedEncoder, MaskedValue, parse_output_value
from ..encoders.seq2seq import Seq2SeqEncoder, Seq2SeqValue
from ..engine import Embedder
from ..errors import InputError
from ..fingerprint import settings_digest
from ..loading import detect_family, load
from ..registry import resolve
from .retrieval import QueriesCorpusMixin

RE_ENCODE = "re_encode"


def _locate(name: str | os.PathLike[str], family: Family, cls: str) -> Any:
    location = resolve(name)
    found = detect_family(location)
    if found is not family:
        raise InputError(f"{name!r} is a model of the {found.value} family; {cls} needs one of the {family.value} "
                         "family")
    return location


class _ReferenceEncoder(QueriesCorpusMixin, Embedder):
    """The reference encoders' shared API: ``set_output_value``, ``get_*_output_values``, ``encode``."""

    values: tuple[type[Any], tuple[str, ...]]  # the value enum and the reference's order of value names

    def __init__(self, encoder: Any, name: str, source: str, output_value: str, max_input_length: int,
                 cache_embeddings: bool, last_layer_only: bool, reencoder: Any, tokenizer_path: str | None,
                 generation_configs: dict[str, Any]):
        super().__init__(encoder, name=name, source=source)
        if tokenizer_path is not None:
            from transformers import AutoTokenizer

            encoder.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
            encoder.tokenizer.padding_side = "right"
        self.to(parse_device(None))
        self.max_input_length = int(max_input_length)
        self.cache_embeddings = cache_embeddings
        self.last_layer_only = last_layer_only
        self.reencoder = reencoder
        self.generation_configs = generation_configs
        self.output_value = ""
        self.set_output_value(output_value)

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    @property
    def model(self) -> Any:
        return self.encoder.model

    def _layers(self, value: Any) -> int:
        raise NotImplementedError

    def set_output_value(self, output_value: str | None = None) -> None:
        """Choose ``<value>_layer_<n>`` (see :meth:`get_all_output_values`) or ``"re_encode"``."""
        if output_value is None or not isinstance(output_value, str):
            raise InputError(f"output_value must be a str such as 'avg_gen_layer_12'; got {output_value!r}")
        if output_value != RE_ENCODE:
            enum, names = self.values
            if not output_value.startswith(tuple(f"{n}_layer_" for n in names)):
                raise InputError(f"output_value={output_value!r} is not valid; choose '<value>_layer_<n>' with a "
                                 f"value in {list(names)}, or {RE_ENCODE!r}")
            parse_output_value(enum, output_value)
        self.output_value = output_value

    def get_all_output_values(self) -> list[str]:
        enum, names = self.values
        return [f"{n}_layer_{i}" for n in names for i in range(self._layers(enum(n)) + 1)] + [RE_ENCODE]

    def get_last_output_values(self) -> list[str]:
        return [f"{n}_layer_{self.model.config.num_hidden_layers}" for n in self.values[1]] + [RE_ENCODE]

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        if re_encode:
            return {}
        value, layer = parse_output_value(self.values[0], self.output_value)
        last = self._layers(value)
        if self.last_layer_only and layer is not None and layer % (last + 1) != last:
            raise InputError(f"last_layer_only=True keeps only layer {last}; output_value={self.output_value!r} "
                             f"asks for layer {layer}")
        return {"output_value": value.value, "layer": layer}

    def _vectors_and_answers(self, rows: list[str], options: dict[str, Any], batch_size: int, show: bool,
                             cache_dir: str | None) -> tuple[torch.Tensor, list[str]]:
        if cache_dir is not None:  # one sub-folder per output value and options
            sub = f"{self.output_value}-{settings_digest(options)[:12]}"
            options = {**options, "cache_dir": os.path.join(cache_dir, sub)}
        return Embedder.encode(self, rows, None, batch_size=batch_size, convert_to_tensor=True,
                               show_progress_bar=show, return_generations=True, **options)

    def _generations(self, rows: list[str], answers: list[str], options: dict[str, Any], batch_size: int,
                     show: bool, cache_dir: str | None) -> list[str]:
        return answers

    def encode(self, sentences: Any, batch_size: int = 4, show_progress_bar: bool | None = None,  # type: ignore[override]
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, normalize_embeddings: bool = False,
               return_generations: bool = False, cache_dir: str | None = None,
               filter_words: list[str] | None = None) -> Any:
        """Embed complete prompts: an array (or a tensor), and with ``return_generations`` also the generations
        (a list, even for one prompt, as in the original)."""
        single = isinstance(sentences, str) or not hasattr(sentences, "__len__")
        rows = [sentences] if single else list(sentences)
        re_encode = self.output_value == RE_ENCODE
        if re_encode and self.reencoder is None:
            raise InputError("output_value='re_encode' needs a reencoder (e.g. a sentence-transformers model) "
                             "given to the constructor")
        options = self._options(re_encode, filter_words)
        show = bool(show_progress_bar)
        vectors, answers = self._vectors_and_answers(rows, options, batch_size, show, cache_dir)
        if re_encode:
            vectors = torch.as_tensor(np.asarray(self.reencoder.encode(answers, show_progress_bar=False)))
        else:
            vectors = vectors.to(next(self.model.parameters()).dtype)
        if normalize_embeddings:
            vectors = F.normalize(vectors, p=2, dim=1)
        result: Any = vectors.to(torch.float32).numpy() if convert_to_numpy and not convert_to_tensor else vectors
        if single:
            result = result[0]
        if not return_generations:
            return result
        return result, self._generations(rows, answers, options, batch_size, show, cache_dir)


class MaskedLMEncoder(_ReferenceEncoder):
    """``lm_encoders_hf.MaskededLMEncoder``: same constructor (``mask_length`` is required among the
    generation configs), ``set_output_value`` and ``encode``. Values: avg_gen, avg_ppt, avg_all, re_encode."""

    values = (MaskedValue, ("avg_gen", "avg_ppt", "avg_all"))

    def __init__(self, model_name_or_path: str | os.PathLike[str], tokenizer_path: str | None = None,
                 output_value: str = "avg_gen_layer_1", max_input_length: int = 512, dtype: str = "float32",
                 use_flash_attention_2: bool = False, cache_embeddings: bool = True, last_layer_only: bool = False,
                 reencoder: Any = None, **generation_configs: Any):
        if "mask_length" not in generation_configs:
            raise InputError("MaskedLMEncoder needs mask_length=<number of mask tokens> (InBedder's RoBERTa uses 3)")
        location = _locate(model_name_or_path, Family.MASKED, "MaskedLMEncoder")
        encoder = MaskedEncoder.from_pretrained(
            location.path, dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32, pattern="{input}",
            n_mask=generation_configs["mask_length"], output_value="avg_gen", max_length=int(max_input_length),
            answer_span="sequence")
        super().__init__(encoder, str(model_name_or_path), str(location.path), output_value, max_input_length,
                         cache_embeddings, last_layer_only, reencoder, tokenizer_path, generation_configs)

    def _layers(self, value: Any) -> int:
        encoder: Any = self.encoder
        return int(encoder.n_layers)

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        # filter_words is accepted and unused, as in the original
        return {**super()._options(re_encode, filter_words), "answer_span": "masks" if re_encode else "sequence"}

    def _generations(self, rows: list[str], answers: list[str], options: dict[str, Any], batch_size: int,
                     show: bool, cache_dir: str | None) -> list[str]:
        if options.get("answer_span") == "sequence":
            return answers
        return self._vectors_and_answers(rows, {**options, "answer_span": "sequence"}, batch_size, show, cache_dir)[1]


MaskededLMEncoder = MaskedLMEncoder  # the name the reference code imports


class Seq2SeqLMEncoder(_ReferenceEncoder):
    """``lm_encoders_hf.Seq2SeqLMEncoder``: same constructor (generation configs go to ``generate``),
    ``set_output_value`` and ``encode``. Values: avg_gen, avg_ppt, last_gen, first_gen, re_encode."""

    values = (Seq2SeqValue, ("avg_gen", "avg_ppt", "last_gen", "first_gen"))

    def __init__(self, model_name_or_path: str | os.PathLike[str], tokenizer_path: str | None = None,
                 output_value: str = "avg_gen_layer_1", max_input_length: int = 512, dtype: str = "float32",
                 use_flash_attention_2: bool = False, cache_embeddings: bool = True, last_layer_only: bool = False,
                 reencoder: Any = None, **generation_configs: Any):
        location = _locate(model_name_or_path, Family.SEQ2SEQ, "Seq2SeqLMEncoder")
        generation = dict(generation_configs)
        encoder = Seq2SeqEncoder.from_pretrained(
            location.path, dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32, pattern="{input}",
            max_length=int(max_input_length), max_new_tokens=generation.pop("max_new_tokens", None),
            do_sample=generation.pop("do_sample", None), generation=generation)
        super().__init__(encoder, str(model_name_or_path), str(location.path), output_value, max_input_length,
                         cache_embeddings, last_layer_only, reencoder, tokenizer_path, generation_configs)

    def _layers(self, value: Any) -> int:
        encoder: Any = self.encoder
        return int(encoder.encoder_layers if value is Seq2SeqValue.AVG_PPT else encoder.decoder_layers)

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        options = super()._options(re_encode, filter_words)
        if filter_words is None:
            return options
        # re_encode embeds the answers without the filtered tokens, as the original does
        return {**options, "filter_words": list(filter_words), "filter_answers": re_encode}

    def _generations(self, rows: list[str], answers: list[str], options: dict[str, Any], batch_size: int,
                     show: bool, cache_dir: str | None) -> list[str]:
        if options.get("filter_answers"):  # the generations returned are never filtered
            options = {**options, "filter_answers": False}
            answers = self._vectors_and_answers(rows, options, batch_size, show, cache_dir)[1]
        return [prompt + answer for prompt, answer in zip(rows, answers, strict=True)]


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
