"""The shared base of the drop-ins for InBedder's ``lm_encoders_hf`` classes (``CausalLMEncoder``,
``MaskededLMEncoder``, ``Seq2SeqLMEncoder``).

The three originals share one API, and so do the drop-ins, through :class:`ReferenceEncoder`: the constructor
``(model_name_or_path, tokenizer_path=None, output_value=..., max_input_length=512, dtype="float32",
use_flash_attention_2=False, cache_embeddings=True, last_layer_only=False, reencoder=None, **generation_configs)``,
``set_output_value``, ``get_all_output_values``, ``get_last_output_values``, ``encode`` (complete prompts in;
vectors, and with ``return_generations=True`` the generations, out), ``output_value="re_encode"`` (the answers
embedded by ``reencoder.encode``), the ``tokenizer`` and ``model`` attributes, ``encode_queries`` and
``encode_corpus``. A subclass says only what differs: its family and how it builds that family's encoder
(:meth:`ReferenceEncoder._build`), its value names (``values``), layer counts, and the options and generations
of its calls (:meth:`ReferenceEncoder._options`, :meth:`ReferenceEncoder._vectors_and_answers`,
:meth:`ReferenceEncoder._generations`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..choices import Family, parse_device
from ..encoders.masked import parse_output_value
from ..engine import Embedder
from ..errors import InputError, did_you_mean
from ..fingerprint import settings_digest
from ..loading import detect_family
from ..registry import Location, resolve
from .retrieval import QueriesCorpusMixin

RE_ENCODE = "re_encode"


@dataclass(frozen=True)
class Call:
    """What one ``encode`` call passes to every engine call it makes."""

    rows: list[str]
    batch_size: int
    show: bool
    cache_dir: str | None


class ReferenceEncoder(QueriesCorpusMixin, Embedder):
    """The reference encoders' shared API: constructor, ``set_output_value``, ``get_*_output_values``, ``encode``.

    ``output_value`` is ``<value>_layer_<n>`` or ``"re_encode"``; ``None`` (the default) is the family's default,
    the original's (``default_output_value``).
    """

    family: Family
    values: tuple[type[Enum], tuple[str, ...]]  # the value enum and the reference's order of value names
    default_output_value = "avg_gen_layer_1"

    def __init__(self, model_name_or_path: str | os.PathLike[str], tokenizer_path: str | None = None,
                 output_value: str | None = None, max_input_length: int = 512, dtype: str = "float32",
                 use_flash_attention_2: bool = False, cache_embeddings: bool = True, last_layer_only: bool = False,
                 reencoder: Any = None, **generation_configs: Any):
        generation_configs = self._generation_configs(generation_configs)
        location = resolve(model_name_or_path)
        found = detect_family(location)
        if found is not self.family:
            raise InputError(f"{model_name_or_path!r} is a model of the {found.value} family; "
                             f"{type(self).__name__} needs one of the {self.family.value} family")
        encoder = self._build(model_name_or_path, location, tokenizer_path,
                              torch.bfloat16 if dtype == "bfloat16" else torch.float32, use_flash_attention_2,
                              int(max_input_length), generation_configs)
        super().__init__(encoder, name=str(model_name_or_path), source=str(location.path))
        self.to(parse_device(None))
        self.max_input_length = int(max_input_length)
        self.cache_embeddings = cache_embeddings
        self.last_layer_only = last_layer_only
        self.reencoder = reencoder
        self.generation_configs = generation_configs
        self.output_value = ""
        self.set_output_value(self.default_output_value if output_value is None else output_value)

    def _generation_configs(self, configs: dict[str, Any]) -> dict[str, Any]:
        """The generation configs as kept in ``self.generation_configs`` (checked, before the model is loaded)."""
        return configs

    def _build(self, name: str | os.PathLike[str], location: Location, tokenizer_path: str | None,
               dtype: torch.dtype, flash_attention: bool, max_length: int, generation_configs: dict[str, Any]) -> Any:
        """The family encoder, with ``tokenizer_path``'s tokenizer when one is given (the device is set after)."""
        raise NotImplementedError

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    @property
    def model(self) -> Any:
        return self.encoder.model

    @property
    def num_layers(self) -> int:
        """The original's ``model.config.num_hidden_layers``."""
        return int(self.model.config.num_hidden_layers)

    def _layers(self, value: Any) -> int:
        """The number of layers that ``value`` reads (its last layer's index)."""
        return self.num_layers

    def set_output_value(self, output_value: str | None = None) -> None:
        """Choose ``<value>_layer_<n>`` (see :meth:`get_all_output_values`) or ``"re_encode"``."""
        enum, names = self.values
        if output_value is None or not isinstance(output_value, str):
            raise InputError(f"output_value must be a str such as '{names[0]}_layer_12'; got {output_value!r}")
        if output_value != RE_ENCODE:
            if not output_value.startswith(tuple(f"{n}_layer_" for n in names)):
                raise InputError(f"output_value={output_value!r} is not valid; choose '<value>_layer_<n>' with a "
                                 f"value in {list(names)}, or {RE_ENCODE!r}."
                                 f"{did_you_mean(output_value.partition('_layer_')[0], names)}")
            parse_output_value(enum, output_value)
        self.output_value = output_value

    def get_all_output_values(self) -> list[str]:
        enum, names = self.values
        return [f"{n}_layer_{i}" for n in names for i in range(self._layers(enum(n)) + 1)] + [RE_ENCODE]

    def get_last_output_values(self) -> list[str]:
        return [f"{n}_layer_{self.num_layers}" for n in self.values[1]] + [RE_ENCODE]

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        """The engine options of the call (``filter_words`` is accepted and unused, unless a subclass uses it)."""
        if re_encode:
            return {}
        value, layer = parse_output_value(self.values[0], self.output_value)
        last = self._layers(value)
        if self.last_layer_only and layer is not None and layer % (last + 1) != last:
            raise InputError(f"last_layer_only=True keeps only layer {last}; output_value={self.output_value!r} "
                             f"asks for layer {layer}")
        return {"output_value": value.value, "layer": layer}

    def _engine(self, call: Call, options: dict[str, Any], cache_dir: str | None,
                answers: bool) -> tuple[torch.Tensor, list[str] | None]:
        """One engine call: float32 vectors, and the answers when asked for."""
        if cache_dir is not None:
            options = {**options, "cache_dir": cache_dir}
        out = Embedder.encode(self, call.rows, None, batch_size=call.batch_size, convert_to_tensor=True,
                              show_progress_bar=call.show, return_generations=answers, **options)
        return out if answers else (out, None)

    def _vectors_and_answers(self, call: Call, options: dict[str, Any],
                             answers: bool) -> tuple[torch.Tensor, list[str] | None]:
        """The vectors in the model's dtype (as the original gives them) and the answers, which these families
        compute anyway (and always ask for, so that a cache_dir keeps them); ``cache_dir`` gets one sub-folder per
        output value and options."""
        cache_dir = call.cache_dir
        if cache_dir is not None:
            cache_dir = os.path.join(cache_dir, f"{self.output_value}-{settings_digest(options)[:12]}")
        vectors, texts = self._engine(call, options, cache_dir, True)
        return vectors.to(next(self.model.parameters()).dtype), texts

    def _generations(self, call: Call, answers: list[str], options: dict[str, Any]) -> list[str]:
        """The generations that ``encode(..., return_generations=True)`` returns, given the call's answers."""
        return answers

    def encode(self, sentences: Any, batch_size: int = 4, show_progress_bar: bool | None = None,  # type: ignore[override]
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, normalize_embeddings: bool = False,
               return_generations: bool = False, cache_dir: str | None = None,
               filter_words: list[str] | None = None) -> Any:
        """Embed complete prompts: an array (or a tensor), and with ``return_generations`` also the generations
        (a list, even for one prompt, as in the original)."""
        single = isinstance(sentences, str) or not hasattr(sentences, "__len__")
        call = Call([sentences] if single else list(sentences), batch_size, bool(show_progress_bar), cache_dir)
        re_encode = self.output_value == RE_ENCODE
        if re_encode and self.reencoder is None:
            raise InputError("output_value='re_encode' needs a reencoder (e.g. a sentence-transformers model) "
                             "given to the constructor")
        options = self._options(re_encode, filter_words)
        vectors, answers = self._vectors_and_answers(call, options, re_encode or return_generations)
        if re_encode:
            vectors = torch.as_tensor(np.asarray(self.reencoder.encode(answers, show_progress_bar=False)))
        if normalize_embeddings:
            vectors = F.normalize(vectors, p=2, dim=1)
        result: Any = vectors.to(torch.float32).numpy() if convert_to_numpy and not convert_to_tensor else vectors
        if single:
            result = result[0]
        if not return_generations:
            return result
        return result, self._generations(call, answers or [], options)
