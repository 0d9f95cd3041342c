"""Causal-LM answer family (InBedder): embed a text by the states of a decoder that answers a question about it.

A prompt is built from a pattern with ``{input}`` and ``{instruction}`` (by default InBedder's
``### Input:\\n{input}\\n\\n### Instruction:\\n{instruction}\\n\\n### Response:``), left-padded, and read at one
layer (0 = embeddings, -1 = last; the last includes the final norm):

* ``fst_gen``  the state of the last prompt token (the one that predicts the first answer token);
* ``avg_ppt``  the mean over the prompt tokens but the last;
* ``avg_gen``  the mean of ``fst_gen`` and the states of the generated tokens;
* ``last_gen`` the last of those states;
* ``avg_all``  the mean over the prompt tokens and the generated tokens' states.

A generated token's state is the state computed *over* answer token k, kept when answer token k + 1 (the
one it predicts) is neither a special token nor one of ``filter_words``; when none is kept, the state over the
first answer token is used. ``fst_gen`` and ``avg_ppt`` need no answer: unless answers are asked for they come
from one forward pass that stops at the requested layer (no ``generate()``, no LM head).

A text that does not fit loses the start of its input text, never the instruction or the response cue.
``instruction=None`` takes the text as a complete prompt, cut from the left like the reference.

>>> model = load("smollm2-135m-instruct")                                          # doctest: +SKIP
>>> vec, answer = model.encode("I love my cat!", instruction="Which animal is it?",
...                            output_value="avg_gen", return_generations=True)     # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...converted import find_converted, save_converted
from ...errors import InputError, ModelLoadError
from ..base import BatchResult, Encoder, Output, Pair
from ..portable import make_portable
from .pooling import MIN_SHARED_PREFIX, first_columns, left_pad, pool, position_ids, shared_prefix
from .questions import embed_questions, shares_input
from .settings import (
    INBEDDER_PATTERN,
    LAYER_NAMED,
    Generation,
    OutputValue,
    Spans,
    build_prompts,
    check_pattern,
    check_words,
    fill,
    is_chat,
    parse_output_value,
    render_chat,
)

_HEAD_SUFFIXES = ("ForCausalLM", "LMHeadModel")


class _Stop(Exception):
    """Raised by a tap to end a forward pass once the requested layer is read."""


class CausalEncoder(Encoder):
    """A decoder-only LM read at one layer; the math of one batch (prompts, one pass or generate, pooling)."""

    family = "causal"
    answers = True
    options = ("output_value", "layer", "pattern", "filter_words", "max_new_tokens", "do_sample", "temperature",
               "top_p", "seed")

    def __init__(self, model: nn.Module, tokenizer: Any, *, pattern: str = INBEDDER_PATTERN,
                 output_value: str = "fst_gen", layer: int | None = None, generation: Generation | None = None,
                 filter_words: list[str] | None = None, max_length: int | None = None, has_lm_head: bool = True):
        super().__init__()
        self.model: Any = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        self.pattern = check_pattern(pattern)
        self.output_value, self.layer = parse_output_value(output_value, layer)
        self.generation = generation or Generation()
        self.filter_words = check_words(filter_words)
        self.has_lm_head = has_lm_head
        self.full_generations = False  # answers as the whole decoded sequence, prompt included (the reference's)
        self.filter_answers = False  # answers without the tokens of filter_words (what the reference re-encodes)
        config = _text_config(self.model)
        self.num_layers = int(config.num_hidden_layers)
        self.position_limit = _positions(config, tokenizer)
        self.max_length = int(max_length) if max_length is not None else self.position_limit
        self._layer_index(self.layer)
        self._layers: Any = next((m for m in self.base.modules() if isinstance(m, nn.ModuleList)
                             and len(m) == self.num_layers), None)
        if self._layers is None:
            raise ModelLoadError(f"cannot find the {self.num_layers} decoder layers of {type(model).__name__}")
        self._chat: dict[str, str] = {}  # chat pattern -> rendered

    @property
    def base(self) -> nn.Module:
        """The decoder stack without the LM head (what the LM head reads; for OPT, ``model.decoder``)."""
        try:
            trunk = self.model.get_decoder()
        except (AttributeError, NotImplementedError, ValueError):
            trunk = None
        return trunk if isinstance(trunk, nn.Module) else self.model.base_model  # type: ignore[no-any-return]

    @property
    def dim(self) -> int:
        project_out = getattr(self.base, "project_out", None)  # OPT projects its last layer out to a smaller size
        if isinstance(project_out, nn.Linear) and self._layer_index(self.layer) == self.num_layers:
            return int(project_out.out_features)
        return int(_text_config(self.model).hidden_size)

    def settings(self) -> dict[str, Any]:
        return {"family": self.family, "pattern": self.pattern, "output_value": self.output_value.value,
                "layer": self._layer_index(self.layer), "max_length": self.max_length,
                "generation": {**self.generation.kwargs(), "seed": self.generation.seed},
                "filter_words": list(self.filter_words or []),
                **self.precision(self.model)}

    def _layer_index(self, layer: int) -> int:
        n = self.num_layers + 1
        if not -n <= layer < n:
            raise InputError(f"layer={layer} is out of range: this model has {n} hidden states, layers "
                             f"0 (embeddings) .. {self.num_layers} (last), or -{n} .. -1")
        return layer % n

    def _readout(self, output_value: Any, layer: Any) -> tuple[OutputValue, int]:
        """Per-call value and layer: a layer in the value's name or ``layer`` wins over the encoder's own."""
        named = isinstance(output_value, str) and LAYER_NAMED.match(output_value) is not None
        value, parsed = parse_output_value(self.output_value if output_value is None else output_value, layer)
        return value, self._layer_index(parsed if named or layer is not None else self.layer)

    # -- prompts ------------------------------------------------------------------------------------------
    def prompts(self, pairs: list[Pair], pattern: str | None = None, limit: int | None = None
                ) -> tuple[list[str], Spans, int]:
        """Prompts, (input span, instruction span) per prompt, and how many had their input cut to fit ``limit``."""
        filled, chat = self._resolve(pattern)
        return build_prompts(self.tokenizer, pairs, filled, chat, limit or self.max_length)

    def _resolve(self, pattern: str | None) -> tuple[str, bool]:
        """The pattern to fill (``"chat"`` rendered through the chat template) and whether it is the chat one."""
        pattern = check_pattern(pattern or self.pattern)
        if not is_chat(pattern):
            return pattern, False
        if pattern not in self._chat:
            self._chat[pattern] = render_chat(self.tokenizer, pattern)
        return self._chat[pattern], True

    def prompt_ids(self, pairs: list[Pair], pattern: str | None = None, limit: int | None = None,
                   offsets: bool = False) -> tuple[torch.Tensor, torch.Tensor, Any, Spans, int]:
        """The pairs' prompts as the encoder reads them: left-padded ids and mask, per-token character offsets if
        asked, the (input, instruction) character spans, and how many prompts were cut to fit."""
        prompts, spans, cut = self.prompts(pairs, pattern, limit)
        ids, mask, offs, cut_raw = self.tokenize(prompts, self._resolve(pattern)[1], [p[0] is None for p in pairs],
                                                 offsets)
        return ids, mask, offs, spans, cut + cut_raw

    def tokenize(self, prompts: list[str], chat: bool, raw: list[bool], offsets: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, list[list[tuple[int, int]]] | None, int]:
        """Left-padded ids and mask, per-token character offsets if asked, and rows cut from the left (raw ones).

        A chat prompt carries its template's special tokens; any other prompt gets the tokenizer's own."""
        if offsets and not getattr(self.tokenizer, "is_fast", False):
            raise InputError("output='token' or 'all' needs a fast tokenizer (character offsets); this one is not")
        ids: list[list[int]] = [[] for _ in prompts]
        offs: list[Any] = [None for _ in prompts]
        cut = 0
        for specials in (True, False):
            rows = [i for i in range(len(prompts)) if (raw[i] or not chat) == specials]
            if not rows:
                continue
            kwargs: dict[str, Any] = {"add_special_tokens": specials, "return_offsets_mapping": offsets}
            enc = self.tokenizer([prompts[i] for i in rows], **kwargs)
            for j, i in enumerate(rows):
                ids[i], offs[i] = enc["input_ids"][j], enc["offset_mapping"][j] if offsets else None
                if raw[i] and len(ids[i]) > self.max_length:  # the reference's cut: truncation from the left
                    cut += 1
                    redo = self.tokenizer(prompts[i], truncation=True, max_length=self.max_length, **kwargs)
                    ids[i], offs[i] = redo["input_ids"], redo["offset_mapping"] if offsets else None
        input_ids, mask = left_pad(ids, self.tokenizer.pad_token_id)
        return input_ids, mask, ([list(map(tuple, o)) for o in offs] if offsets else None), cut

    def token_counts(self, pairs: list[Pair]) -> list[int]:
        """Prompt tokens per pair under the encoder's own pattern, for the engine's length sort (less padding)."""
        return [min(n, self.max_length) for n in self._prompt_lengths(pairs, None)]

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int]:
        """Prompt tokens per pair before any cut (under the call's pattern), and the most a prompt may hold."""
        generation = Generation.from_kwargs({k: options[k] for k in ("max_new_tokens",) if k in options},
                                            self.generation)
        return self._prompt_lengths(pairs, options.get("pattern")), self._limit(generation)

    def _limit(self, generation: Generation) -> int:
        """Tokens a prompt may take: ``max_length``, less the room the answer needs within the positions."""
        if self.position_limit and generation.max_new_tokens:
            return min(self.max_length, self.position_limit - generation.max_new_tokens)
        return self.max_length

    def _prompt_lengths(self, pairs: list[Pair], pattern: str | None) -> list[int]:
        filled, chat = self._resolve(pattern)
        prompts = [text if ins is None else fill(filled, text, ins)[0] for ins, text in pairs]
        lengths = [0] * len(pairs)
        for specials in (True, False):
            rows = [i for i, (ins, _) in enumerate(pairs) if (ins is None or not chat) == specials]
            if rows:
                enc = self.tokenizer([prompts[i] for i in rows], add_special_tokens=specials, verbose=False)
                for i, row in zip(rows, enc["input_ids"], strict=True):
                    lengths[i] = len(row)
        return lengths

    # -- forward passes -----------------------------------------------------------------------------------
    @contextmanager
    def _tap(self, layer: int, stop: bool) -> Iterator[list[torch.Tensor]]:
        """Collect the hidden state ``layer`` of every forward pass; with ``stop``, end the pass there."""
        states: list[torch.Tensor] = []
        if layer == self.num_layers:
            def on_output(module: nn.Module, args: Any, output: Any) -> None:
                states.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)
            handle = self.base.register_forward_hook(on_output)
        else:
            def on_input(module: nn.Module, args: Any, kwargs: Any) -> None:
                states.append(args[0] if args else kwargs["hidden_states"])
                if stop:
                    raise _Stop
            handle = self._layers[layer].register_forward_pre_hook(on_input, with_kwargs=True)
        try:
            yield states
        finally:
            handle.remove()

    def one_pass(self, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
        """States ``(b, t, h)`` at ``layer`` from one forward pass of the base model, stopped at that layer.

        Tokens that begin every row (the pattern's ``### Input:``, a chat template's system prompt) are computed
        once for the batch: their keys and values are reused by every row (see :meth:`_shared_pass`)."""
        cache_arg = self.sharing(layer, ids.shape[1])
        shared = shared_prefix(ids, mask) if cache_arg else 0
        if cache_arg and shared >= MIN_SHARED_PREFIX and ids.shape[0] > 1:
            return self._shared_pass(ids, mask, layer, shared, cache_arg)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
        if "position_ids" in _parameters(self.base.forward):  # as generate() sets them for left padding
            kwargs["position_ids"] = position_ids(mask)
        return self.forward_to(layer, kwargs)

    def sharing(self, layer: int, width: int) -> str | None:
        """The base model's cache argument when a pass to ``layer`` over ``width`` columns may reuse a key/value
        cache (position ids accepted, no sliding window shorter than the rows, not the embeddings); else None."""
        params = _parameters(self.base.forward)
        cache_arg = next((k for k in ("cache", "past_key_values") if k in params), None)  # transformers 5.x, 4.x
        window = getattr(_text_config(self.model), "sliding_window", None)  # a cache that drops old tokens
        fits = not isinstance(window, int) or width <= window
        return cache_arg if layer > 0 and "position_ids" in params and fits else None

    def new_cache(self) -> Any:
        """An empty key/value cache for the base model."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config) if "config" in _parameters(DynamicCache) else DynamicCache()

    def forward_to(self, layer: int, kwargs: dict[str, Any]) -> torch.Tensor:
        """States at ``layer`` from one forward call of the base model with ``kwargs``, stopped at that layer."""
        with self._tap(layer, stop=True) as states:
            try:
                self.base(**kwargs)
            except _Stop:
                pass
        return states[0]

    def _shared_pass(self, ids: torch.Tensor, mask: torch.Tensor, layer: int, shared: int, cache_arg: str
                     ) -> torch.Tensor:
        """:meth:`one_pass` for rows whose first ``shared`` real tokens are the same.

        The prefix runs once (one row) into a key/value cache that is repeated for the batch; the rest of each
        row runs over it, left-padded *after* the prefix (``prefix, pads, tokens``: the mask hides the pads and
        the position ids skip them, so every token sees what it sees in the plain pass). The states come back in
        the plain pass' layout (``pads, prefix, tokens``)."""
        b, width = ids.shape
        start = first_columns(mask)[:, None]
        prefix = ids[:1, int(start[0]):int(start[0]) + shared]
        cache = self.new_cache()
        head = self.forward_to(layer, {"input_ids": prefix, "attention_mask": torch.ones_like(prefix),
                                       "position_ids": torch.arange(shared, device=ids.device)[None],
                                       cache_arg: cache, "use_cache": True})
        cache.batch_repeat_interleave(b)
        # A row's k-th token after the prefix moves from column start + shared + k to start + k.
        rest_mask = mask[:, :width - shared]
        rest_ids = ids[:, shared:].masked_fill(rest_mask == 0, self.tokenizer.pad_token_id)
        tail = self.forward_to(layer, {"input_ids": rest_ids,
                                       "attention_mask": torch.cat([mask.new_ones(b, shared), rest_mask], 1),
                                       "position_ids": shared + position_ids(rest_mask),
                                       cache_arg: cache, "use_cache": True})
        joined = torch.cat([head.expand(b, -1, -1), tail], dim=1)  # prefix, pads, tokens
        target = torch.arange(width, device=ids.device)[None]
        source = torch.where(target < start, shared + target, torch.where(target < start + shared, target - start,
                                                                          target))
        return torch.gather(joined, 1, source[..., None].expand(-1, -1, joined.shape[-1]))

    def generate(self, ids: torch.Tensor, mask: torch.Tensor, layer: int, generation: Generation
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompt states ``(b, t, h)``, states over answer tokens 1..n-1 ``(b, n-1, h)``, the sequences ``(b, t+n)``."""
        kwargs = {"pad_token_id": self.tokenizer.pad_token_id, **generation.kwargs()}
        device = ids.device
        with self._tap(layer, stop=False) as states, torch.random.fork_rng(
                devices=[device] if device.type == "cuda" else [], enabled=generation.seed is not None):
            if generation.seed is not None:
                torch.manual_seed(generation.seed)
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        seqs = out.sequences if hasattr(out, "sequences") else out
        if not states:
            raise ModelLoadError(f"could not read hidden state {layer} of {type(self.model).__name__} in generate()")
        steps = torch.cat(states[1:], dim=1) if len(states) > 1 else states[0][:, :0]
        return states[0], steps, seqs

    # -- one batch ----------------------------------------------------------------------------------------
    def call_settings(self, options: dict[str, Any]) -> tuple[OutputValue, int, Generation, str, int]:
        """Checked per-call readout, layer, generation settings, pattern, and the prompt limit in tokens (room is
        left for the answer tokens)."""
        self.check_options(options)
        value, layer = self._readout(options.get("output_value"), options.get("layer"))
        generation = Generation.from_kwargs({k: options[k] for k in Generation.__dataclass_fields__ if k in options},
                                            self.generation)
        pattern = check_pattern(options.get("pattern", self.pattern))
        return value, layer, generation, pattern, self._limit(generation)

    def embed_batch(self, pairs: list[Pair], output: Output, return_generations: bool = False, **options: Any
                    ) -> BatchResult:
        """Vectors for one batch; answers too when generating (always for avg_gen, last_gen, avg_all)."""
        value, layer, generation, pattern, limit = self.call_settings(options)
        words = check_words(options["filter_words"]) if "filter_words" in options else self.filter_words
        generate = value.generates or return_generations
        if generate and not self.has_lm_head:
            raise InputError(f"the {self.family} family needs a language-model head to generate answers "
                             f"(output_value={value.value!r}, return_generations={return_generations}), and this "
                             "model has none; "
                             "use output_value='fst_gen' or 'avg_ppt' without return_generations, or load a "
                             "*ForCausalLM checkpoint")
        ids, mask, offsets, spans, cut = self.prompt_ids(pairs, pattern, limit, output is not Output.SENTENCE)
        ids, mask = ids.to(self.device), mask.to(self.device)
        result = BatchResult(torch.empty(0), truncated=cut, n_tokens=int(mask.sum()))
        if generate:
            prompt, steps, seqs = self.generate(ids, mask, layer, generation)
            new = seqs[:, ids.shape[1]:]
            keep = answer_keep(new, self.tokenizer, words).to(steps.device)
            decode: Any = seqs if self.full_generations else new
            if self.filter_answers and words:
                drop = _word_ids(self.tokenizer, words)
                decode = [[t for t in row if t not in drop] for row in decode.tolist()]
            result.answers = self.tokenizer.batch_decode(decode, skip_special_tokens=True)
        else:
            prompt = self.one_pass(ids, mask, layer)
            steps, keep = prompt[:, :0], torch.zeros((len(pairs), 0), dtype=torch.bool, device=prompt.device)
        result.vectors = pool(value, prompt.float(), mask, steps.float(), keep)
        if output is not Output.SENTENCE:
            result.tokens, result.instruction_tokens = _token_states(prompt.float(), offsets, spans)
        return result

    def shares_input(self, output: Output, generations: bool, options: dict[str, Any]) -> bool:
        """Whether :meth:`embed_questions` serves a call (sentence vectors without answers)."""
        return shares_input(self, output, generations, options)

    def embed_questions(self, items: list[tuple[str, list[str]]], **options: Any) -> BatchResult:
        """Vectors of each text under each of its questions, its input computed once (:mod:`.questions`)."""
        return embed_questions(self, items, **options)

    # -- files --------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
                        pattern: str = INBEDDER_PATTERN, output_value: str = "fst_gen", layer: int | None = None,
                        max_length: int | None = None, max_new_tokens: int | None = 3, do_sample: bool | None = False,
                        temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
                        filter_words: list[str] | None = None, tokenizer_path: str | Path | None = None,
                        attn_implementation: str | None = None) -> CausalEncoder:
        """Load a transformers checkpoint (Llama, OPT, Qwen, ... via AutoModelForCausalLM) or a ``.gguf`` file."""
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        check_pattern(pattern)
        parse_output_value(output_value, layer)
        generation = Generation(max_new_tokens, do_sample, temperature, top_p, seed)
        gguf = {"gguf_file": path.name} if path.is_file() and path.suffix == ".gguf" else {}
        copy = find_converted(path) if gguf and not tokenizer_path else None  # read once before: its saved copy
        if copy is not None:
            gguf = {}
        where = copy or (path.parent if gguf else path)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, **gguf}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            archs = [] if gguf else list(AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
                                         .architectures or [])
            head = bool(gguf) or not archs or any(a.endswith(_HEAD_SUFFIXES) for a in archs)
            model = (AutoModelForCausalLM if head else AutoModel).from_pretrained(where, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or where, trust_remote_code=trust_remote_code,
                                                      **({} if tokenizer_path else gguf))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot load a causal LM from {path}: {exc}") from exc
        if getattr(model, "hf_quantizer", None) is not None and gguf:  # GGUF weights arrive dequantized
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
        model.eval()
        encoder = cls(model, tokenizer, pattern=pattern, output_value=output_value, layer=layer,
                      generation=generation, filter_words=filter_words, max_length=max_length, has_lm_head=head)
        if gguf and not tokenizer_path and dtype == torch.float32:  # the next load reads this copy, not the GGUF
            save_converted(path, encoder.save_pretrained)
        return encoder

    def save_pretrained(self, directory: str | Path) -> Path:
        """Save model and tokenizer as a transformers directory that older transformers read too."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        make_portable(directory)
        return directory


def answer_keep(new: torch.Tensor, tokenizer: Any, filter_words: list[str] | None = None) -> torch.Tensor:
    """``(b, n-1)``: keep the state over answer token k when token k + 1 is neither special nor a filtered word."""
    skip = set(tokenizer.all_special_ids) | _word_ids(tokenizer, filter_words)
    rows = [[int(t) not in skip for t in row[1:]] for row in new.tolist()]
    return torch.tensor(rows, dtype=torch.bool).reshape(new.shape[0], max(new.shape[1] - 1, 0))


def _token_states(prompt: torch.Tensor, offsets: list[list[tuple[int, int]]] | None, spans: Spans
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per row, the prompt states of the tokens inside the input text and inside the instruction."""
    texts: list[torch.Tensor] = []
    instructions: list[torch.Tensor] = []
    for i, offs in enumerate(offsets or []):
        start = prompt.shape[1] - len(offs)
        for (a, b), out in zip(spans[i], (texts, instructions), strict=True):
            rows = [j for j, (s, e) in enumerate(offs) if e > s and a <= s < b]
            out.append(prompt[i, start + rows[0]:start + rows[-1] + 1] if rows else prompt[i, :0])
    return texts, instructions


def _word_ids(tokenizer: Any, words: list[str] | None) -> set[int]:
    """Token ids of ``words``, each tokenized alone with the tokenizer's special tokens (the reference's rule)."""
    return {i for w in words or [] for i in tokenizer.encode(w)}


def _text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _positions(config: Any, tokenizer: Any) -> int:
    found = [getattr(config, k, None) for k in ("max_position_embeddings", "n_positions")]
    found.append(getattr(tokenizer, "model_max_length", None))
    limits = [int(x) for x in found if isinstance(x, int) and 0 < x < 1_000_000]
    return min(limits) if limits else 2048


def _parameters(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters)
