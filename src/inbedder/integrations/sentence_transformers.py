"""Export an INSTRUCTOR-family model to a directory that ``sentence_transformers.SentenceTransformer`` loads.

The directory is written in the classic sentence-transformers layout (``modules.json``, a Transformer at the
root, ``1_Pooling``, ``n_Dense``, ``n_Normalize``, ``config_sentence_transformers.json``), so writing it needs no
sentence-transformers install. The Pooling module says ``include_prompt: false``: sentence-transformers then
leaves the tokens of a prompt out of pooling, as INSTRUCTOR leaves out the tokens of its instruction.
The instruction travels as a named prompt (the default prompt when ``instruction=`` is given):

>>> export(load("hkunlp/instructor-base"), "out/", instruction="Represent the Science title:")  # doctest: +SKIP
>>> st = SentenceTransformer("out/")                                                             # doctest: +SKIP
>>> st.encode(["3D ActionSLAM"])          # same vectors as model.encode(texts, instruction=...)  # doctest: +SKIP

sentence-transformers pools exactly like INSTRUCTOR when (:func:`prompt_mismatch` checks the first two):

* the prompt covers the same number of tokens on its own as INSTRUCTOR counts for the stripped instruction:
  not so for an instruction ending in whitespace with a tokenizer that makes a token of it (SentencePiece /
  T5: ``"title: "``), nor for a one-token instruction on a tokenizer with no start token (INSTRUCTOR then
  pools the instruction too);
* the pooling is not ``cls`` (INSTRUCTOR takes position 0, sentence-transformers the first text token);
* texts carry no leading or trailing whitespace (inbedder strips them; sentence-transformers does not);
* one instruction per ``encode`` call (a prompt applies to the whole call).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, InputTypeError

ST_POOLING_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
                   "mean": "pooling_mode_mean_tokens", "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                   "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
PROMPT_NAME = "instruction"


def export(model: Any, directory: str | os.PathLike[str], *, instruction: str | None = None,
           prompts: dict[str, str] | None = None, default_prompt_name: str | None = None,
           overwrite: bool = False) -> Path:
    """Write ``model`` (an INSTRUCTOR-family :class:`~inbedder.Embedder`) as a sentence-transformers directory.

    ``instruction`` is stored as the prompt ``"instruction"`` and made the default prompt, so
    ``SentenceTransformer(directory).encode(texts)`` equals ``model.encode(texts, instruction=instruction)``.
    ``prompts`` adds more named prompts (``encode(texts, prompt_name=...)``); ``encode(texts, prompt=...)``
    takes any instruction. Returns the directory.
    """
    from ..encoders.instructor import InstructorEncoder

    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, InstructorEncoder):
        family = getattr(encoder, "family", type(encoder).__name__)
        raise InputTypeError(f"export needs an INSTRUCTOR-family model (sentence-transformers has no answer "
                             f"embeddings); got family {family!r}")
    named = _prompts(instruction, prompts, default_prompt_name)
    default = PROMPT_NAME if instruction is not None and default_prompt_name is None else default_prompt_name
    modes = list(encoder.pooling)
    if modes != sorted(modes, key=list(ST_POOLING_KEYS).index):
        raise InputError(f"pooling modes {modes} are concatenated in another order than sentence-transformers "
                         f"uses ({[m for m in ST_POOLING_KEYS if m in modes]}); such a model cannot be exported")
    _warn_prompt_differences(encoder, modes, named)
    out = Path(directory)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{str(out)!r} is not empty; choose an empty folder or pass overwrite=True")
    out.mkdir(parents=True, exist_ok=True)
    if any(".quantized" in type(m).__module__ for m in encoder.modules()):
        raise InputError("a quantized model cannot be exported; load it without quantization")
    encoder.transformer.save_pretrained(out, safe_serialization=True)
    encoder.tokenizer.save_pretrained(out)
    _json(out / "sentence_bert_config.json", {"max_seq_length": encoder.max_length,
                                              "do_lower_case": encoder.do_lower_case})
    _json(out / "modules.json", _write_modules(encoder, modes, out))
    import transformers

    from ..version import __version__

    _json(out / "config_sentence_transformers.json", {
        "__version__": {"transformers": transformers.__version__, "pytorch": torch.__version__,
                        "inbedder": __version__},
        "prompts": named, "default_prompt_name": default, "similarity_fn_name": "cosine"})
    return out


def _warn_prompt_differences(encoder: Any, modes: list[str], named: dict[str, str]) -> None:
    """A warning (at :func:`export`'s caller) for each way the exported prompts will embed differently in
    sentence-transformers: cls pooling with a prompt, and each prompt :func:`prompt_mismatch` finds."""
    if "cls" in modes and named:
        warnings.warn("cls pooling with a prompt differs: INSTRUCTOR pools position 0, sentence-transformers the "
                      "first token after the prompt", stacklevel=3)
    for name, prompt in named.items():
        reason = prompt_mismatch(encoder, prompt)
        if reason:
            warnings.warn(f"prompt {name!r}: {reason}", stacklevel=3)


def _write_modules(encoder: Any, modes: list[str], out: Path) -> list[dict[str, Any]]:
    """The modules after the transformer, each in its folder of ``out``: pooling (``modes``), the dense layers
    and, for a normalizing model, Normalize; their ``modules.json`` entries, the transformer's first."""
    config = encoder.transformer.config
    hidden = config.hidden_size if hasattr(config, "hidden_size") else config.d_model
    pooling: dict[str, Any] = {"word_embedding_dimension": int(hidden)}
    pooling.update({key: mode in modes for mode, key in ST_POOLING_KEYS.items()})
    pooling["include_prompt"] = False
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    _json(out / "1_Pooling" / "config.json", pooling)
    for layer in encoder.dense:
        where = f"{len(modules)}_Dense"
        _save_dense(layer, out / where)
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": where,
                        "type": "sentence_transformers.models.Dense"})
    if encoder.normalize:
        where = f"{len(modules)}_Normalize"
        (out / where).mkdir(exist_ok=True)
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": where,
                        "type": "sentence_transformers.models.Normalize"})
    return modules


def prompt_mismatch(encoder: Any, prompt: str) -> str | None:
    """Why sentence-transformers would leave a different number of prompt tokens out of pooling, or None.

    sentence-transformers counts the tokens of the prompt as given, less a trailing special token;
    INSTRUCTOR counts those of the stripped instruction, less one, and 0 when that is 1 or less.
    """
    if not prompt:
        return None
    text = prompt.lower() if encoder.do_lower_case else prompt
    ids = encoder.tokenizer(text, truncation=True, max_length=encoder.max_length)["input_ids"]
    theirs = len(ids) - (1 if ids and ids[-1] in set(encoder.tokenizer.all_special_ids) else 0)
    ours = encoder.instruction_length(prompt)
    if theirs == ours:
        return None
    return (f"sentence-transformers leaves {theirs} prompt tokens out of pooling where INSTRUCTOR leaves out "
            f"{ours}, so vectors will differ" + (" (strip the trailing whitespace of the instruction)"
                                                 if prompt != prompt.rstrip() else ""))


def _prompts(instruction: str | None, prompts: dict[str, str] | None, default: str | None) -> dict[str, str]:
    named = dict(prompts or {})
    for name, prompt in named.items():
        if not isinstance(name, str) or not isinstance(prompt, str):
            raise InputTypeError(f"prompts must map names to instruction strings; got {name!r}: {prompt!r}")
    if instruction is not None:
        if not isinstance(instruction, str):
            raise InputTypeError(f"instruction must be a str; got {type(instruction).__name__}")
        if named.get(PROMPT_NAME, instruction) != instruction:
            raise InputError(f"prompts[{PROMPT_NAME!r}] and instruction= differ; give one of them")
        named[PROMPT_NAME] = instruction
    if default is not None and default not in named:
        raise InputError(f"default_prompt_name {default!r} is not one of the prompts {sorted(named)}")
    return named


def _save_dense(layer: Any, where: Path) -> None:
    from safetensors.torch import save_file

    activation = type(layer.activation)
    linear = layer.linear
    _json(where / "config.json", {"in_features": linear.in_features, "out_features": linear.out_features,
                                  "bias": linear.bias is not None,
                                  "activation_function": f"{activation.__module__}.{activation.__name__}"})
    state = {k: v.detach().contiguous().cpu() for k, v in layer.state_dict().items()
             if k.startswith("linear.")}
    save_file(state, str(where / "model.safetensors"))


def _json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
