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
the answers, once for the whole sequences). The constructor, ``set_output_value``, ``get_*_output_values`` and
``encode`` are :class:`~inbedder.compat.reference.ReferenceEncoder`'s; this class says what the causal family does
differently.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..choices import Family
from ..encoders.causal.settings import Generation, OutputValue
from ..errors import InputError
from ..loading import load
from ..registry import Location
from .reference import RE_ENCODE, Call, ReferenceEncoder


class CausalLMEncoder(ReferenceEncoder):
    """``lm_encoders_hf.CausalLMEncoder`` with the same constructor, ``set_output_value`` and ``encode``.
    Values: avg_gen, avg_ppt, avg_all, fst_gen, last_gen, re_encode."""

    family = Family.CAUSAL
    values = (OutputValue, ("avg_gen", "avg_ppt", "avg_all", "fst_gen", "last_gen"))
    default_output_value = "fst_gen_layer_1"

    def _generation_configs(self, configs: dict[str, Any]) -> dict[str, Any]:
        nested = configs.pop("generation_configs", None)
        if nested is None:
            return configs
        if not isinstance(nested, dict):
            raise InputError(f"generation_configs must be a dict of generate() settings; got {nested!r}")
        return {**nested, **configs}

    def _build(self, name: str | os.PathLike[str], location: Location, tokenizer_path: str | None,
               dtype: torch.dtype, flash_attention: bool, max_length: int, generation_configs: dict[str, Any]) -> Any:
        encoder: Any = load(name, family="causal", dtype=dtype, tokenizer_path=tokenizer_path,
                            attn_implementation="flash_attention_2" if flash_attention else None).encoder
        encoder.generation = Generation.from_kwargs(generation_configs, Generation(max_new_tokens=None, do_sample=None))
        encoder.max_length = max_length
        encoder.position_limit = None  # the original limits the prompt by max_input_length only
        encoder.full_generations = True
        return encoder

    @property
    def num_layers(self) -> int:
        return int(self.encoder.num_layers)  # type: ignore[arg-type]

    def _options(self, re_encode: bool, filter_words: list[str] | None) -> dict[str, Any]:
        options = super()._options(re_encode, filter_words)
        if re_encode:
            options["output_value"] = "fst_gen"  # any value would do: only the answers are used
        if filter_words is not None:
            options["filter_words"] = list(filter_words)
        return options

    def _vectors_and_answers(self, call: Call, options: dict[str, Any],
                             answers: bool) -> tuple[torch.Tensor, list[str] | None]:
        """float32 vectors, in ``cache_dir`` itself; answers (a generate pass) only when asked for. For
        ``re_encode``, the answers alone, without special or filtered tokens (what the original re-encodes)."""
        if self.output_value != RE_ENCODE:
            return self._engine(call, options, call.cache_dir, answers)
        encoder: Any = self.encoder
        encoder.full_generations, encoder.filter_answers = False, True
        try:
            return self._engine(call, options, None, True)
        finally:
            encoder.full_generations, encoder.filter_answers = True, False

    def _generations(self, call: Call, answers: list[str], options: dict[str, Any]) -> list[str]:
        if self.output_value != RE_ENCODE:
            return answers
        return self._engine(call, options, call.cache_dir, True)[1] or []  # generates again: the whole sequences
