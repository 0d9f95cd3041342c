"""Drop-in replacement for InBedder's ``lm_encoders_hf.CausalLMEncoder``.

Code written for it runs after changing only its import line::

    from inbedder.compat import CausalLMEncoder     # was: from lm_encoders_hf import CausalLMEncoder
    model = CausalLMEncoder("BrandonZYW/llama-2-7b-InBedder", max_new_tokens=3, do_sample=False)
    model.set_output_value("fst_gen_layer_32")
    pattern = "### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:"
    corpus = [pattern.replace("{input}", s).replace("{instruction}", "What is the animal?") for s in texts]
    embeddings, generations = model.encode(corpus, batch_size=32, return_generations=True)

As in the original, ``sentences`` are complete prompts, cut from the left to ``max_input_length`` tokens; the
generations it returns are whole decoded sequences (prompt and answer); generation settings are given either as
keywords or as ``generation_configs={...}`` and anything not given is left to the model's generation config.
``output_value="re_encode"`` embeds the answers (special tokens and ``filter_words`` removed) with
``reencoder.encode``, as in the original. Differences: ``trust_remote_code`` is off; a model alias or a ``.gguf``
file works as ``model_name_or_path``; ``re_encode`` with ``return_generations=True`` generates twice (once for
the answers, once for the whole sequences).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..encoders.causal_settings import Generation, OutputValue, parse_output_value
from ..engine import Embedder
from ..errors import InputError
from ..loading import Family, detect_family, load
from ..registry import resolve
from .retrieval import QueriesCorpusMixin

RE_ENCODE = "re_encode"


class CausalLMEncoder(QueriesCorpusMixin, Embedder):
    """``lm_encoders_hf.CausalLMEncoder`` with the same constructor, ``set_output_value`` and ``encode``."""

    def __init__(self, model_name_or_path: str | os.PathLike[str], tokenizer_path: str | None = None,
                 output_value: str = "fst_gen_layer_1", max_input_length: int = 512, dtype: str = "float32",
                 use_flash_attention_2: bool = False, cache_embeddings: bool = True, last_layer_only: bool = False,
                 reencoder: Any = None, **generation_configs: Any):
        nested = generation_configs.pop("generation_configs", None)
        if nested is not None:
            if not isinstance(nested, dict):
                raise InputError(f"generation_configs must be a dict of generate() settings; got {nested!r}")
            generation_configs = {**nested, **generation_configs}
        family = detect_family(resolve(model_name_or_path))
        if family is not Family.CAUSAL:
            raise InputError(f"{model_name_or_path!r} is a {family.value} model; CausalLMEncoder needs a causal LM")
        base = load(model_name_or_path, family="causal", dtype="bfloat16" if dtype == "bfloat16" else "float32",
                    tokenizer_path=tokenizer_path,
                    attn_implementation="flash_attention_2" if use_flash_attention_2 else None)
        encoder: Any = base.encoder
        encoder.generation = Generation.from_kwargs(generation_configs, Generation(max_new_tokens=None, do_sample=None))
        encoder.max_length = int(max_input_length)
        encoder.position_limit = None  # the original limits the prompt by max_input_length only
        encoder.full_generations = True
        super().__init__(encoder, name=base.name, source=base.source)
        self.cache_embeddings = cache_embeddings
        self.last_layer_only = last_layer_only
        self.generation_configs = generation_configs
        self.reencoder = reencoder
        self.max_input_length = int(max_input_length)
        self.output_value = ""
        self.set_output_value(output_value)

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    @property
    def model(self) -> Any:
        return self.encoder.model

    def set_output_value(self, output_value: str | None = None) -> None:
        """Choose ``<value>_layer_<n>``: value one of fst_gen, avg_gen, last_gen, avg_ppt, avg_all."""
        if output_value is None:
            raise InputError("output_value must be a str such as 'fst_gen_layer_12' or 're_encode'")
        if output_value != RE_ENCODE:
            parse_output_value(output_value)
        self.output_value = output_value

    @property
    def num_layers(self) -> int:
        return int(self.encoder.num_layers)  # type: ignore[arg-type]

    def get_all_output_values(self) -> list[str]:
        return [f"{v.value}_layer_{n}" for v in _REFERENCE_ORDER for n in range(self.num_layers + 1)]

    def get_last_output_values(self) -> list[str]:
        return [f"{v.value}_layer_{self.num_layers}" for v in _REFERENCE_ORDER]

    def encode(self, sentences: Any, batch_size: int = 4, show_progress_bar: bool | None = None,  # type: ignore[override]
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, normalize_embeddings: bool = False,
               return_generations: bool = False, cache_dir: str | None = None,
               filter_words: list[str] | None = None) -> Any:
        """Embed complete prompts; returns an array (or tensor), and with ``return_generations`` also the decoded
        sequences (a list, even for one prompt, as in the original)."""
        single = isinstance(sentences, str) or not hasattr(sentences, "__len__")
        rows = [sentences] if single else list(sentences)
        if self.output_value == RE_ENCODE:
            return self._re_encode(rows, single, batch_size, show_progress_bar, convert_to_numpy, convert_to_tensor,
                                   normalize_embeddings, return_generations, cache_dir, filter_words)
        value, layer = parse_output_value(self.output_value)
        if self.last_layer_only and layer % (self.num_layers + 1) != self.num_layers:
            raise InputError(f"last_layer_only=True keeps only layer {self.num_layers}; "
                             f"output_value={self.output_value!r} asks for layer {layer}")
        options: dict[str, Any] = {"output_value": value.value, "layer": layer}
        if filter_words is not None:
            options["filter_words"] = list(filter_words)
        if cache_dir is not None:
            options["cache_dir"] = cache_dir
        out = Embedder.encode(self, rows, None, batch_size=batch_size, normalize=normalize_embeddings,
                              convert_to_tensor=True, show_progress_bar=bool(show_progress_bar),
                              return_generations=return_generations, **options)
        vectors, generations = out if return_generations else (out, None)
        if convert_to_numpy and not convert_to_tensor:
            vectors = vectors.numpy()
        if single:
            vectors = vectors[0]
        return (vectors, generations) if return_generations else vectors

    def _re_encode(self, rows: list[str], single: bool, batch_size: int, show: bool | None, numpy: bool,
                   tensor: bool, normalize: bool, generations: bool, cache_dir: str | None,
                   filter_words: list[str] | None) -> Any:
        """The original's ``re_encode``: ``reencoder.encode`` of the answers, without special or filtered tokens."""
        if self.reencoder is None:
            raise InputError("output_value='re_encode' needs a reencoder (e.g. a sentence-transformers model) "
                             "given to the constructor")
        options: dict[str, Any] = {"output_value": "fst_gen"}
        if filter_words is not None:
            options["filter_words"] = list(filter_words)
        encoder: Any = self.encoder
        encoder.full_generations, encoder.filter_answers = False, True
        try:
            _, answers = Embedder.encode(self, rows, None, batch_size=batch_size, show_progress_bar=bool(show),
                                         return_generations=True, reencoder=False, **options)
        finally:
            encoder.full_generations, encoder.filter_answers = True, False
        vectors = torch.as_tensor(np.asarray(self.reencoder.encode(answers, show_progress_bar=False)))
        if normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        result: Any = vectors.float().numpy() if numpy and not tensor else vectors
        result = result[0] if single else result
        if not generations:
            return result
        if cache_dir is not None:
            options["cache_dir"] = cache_dir
        _, full = Embedder.encode(self, rows, None, batch_size=batch_size, show_progress_bar=bool(show),
                                  return_generations=True, reencoder=False, **options)
        return result, full


_REFERENCE_ORDER = (OutputValue.AVG_GEN, OutputValue.AVG_PPT, OutputValue.AVG_ALL, OutputValue.FST_GEN,
                    OutputValue.LAST_GEN)
