"""The causal family's encoder: loading a decoder, its prompts and tokens, and what one batch runs.

Causal-LM answer family (InBedder): embed a text by the states of a decoder that answers a question about it.
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
from one forward pass that stops at the requested layer (no ``generate()``, no LM head). ``model.readouts``
reads every value at every layer at once (:mod:`.readouts`).

A text that does not fit loses the start of its input text, never the instruction or the response cue.
``instruction=None`` takes the text as a complete prompt, cut from the left like the reference.

>>> model = load("smollm2-135m-instruct")                                          # doctest: +SKIP
>>> vec, answer = model.encode("I love my cat!", instruction="Which animal is it?",
...                            output_value="avg_gen", return_generations=True)     # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...converted import find_converted, save_converted
from ...errors import InputError, ModelLoadError
from ..base import BatchResult, Encoder, Output, Pair
from ..portable import make_portable
from .passes import Passes, answer_keep, text_config, word_ids
from .pooling import left_pad, pool
from .questions import question_vectors, shares_input
from .readouts import ReadoutBatch, Sweep, plan, pool_readouts
from .settings import (
    INBEDDER_PATTERN,
    CallSettings,
    Generation,
    OutputValue,
    Spans,
    build_prompts,
    check_pattern,
    check_words,
    fill,
    is_chat,
    layer_index,
    parse_output_value,
    read_call,
    render_chat,
)

_HEAD_SUFFIXES = ("ForCausalLM", "LMHeadModel")
PREPARED = "call"  # the key of a call's CallSettings in the options that prepare() returns


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
        config = text_config(self.model)
        self.num_layers = int(config.num_hidden_layers)
        limit = _positions(config, tokenizer)
        self.position_limit: int | None = limit  # None: the prompt is limited by max_length only
        self.max_length = int(max_length) if max_length is not None else limit
        layer_index(self.layer, self.num_layers)
        self.passes = Passes(model, tokenizer.pad_token_id, self.num_layers)
        self._chat: dict[str, str] = {}  # chat pattern -> rendered

    @property
    def base(self) -> nn.Module:
        """The decoder stack without the LM head (what the LM head reads; for OPT, ``model.decoder``)."""
        return self.passes.base

    @property
    def dim(self) -> int:
        project_out = getattr(self.base, "project_out", None)  # OPT projects its last layer out to a smaller size
        if isinstance(project_out, nn.Linear) and layer_index(self.layer, self.num_layers) == self.num_layers:
            return int(project_out.out_features)
        return int(text_config(self.model).hidden_size)

    def settings(self) -> dict[str, Any]:
        return {"family": self.family, "pattern": self.pattern, "output_value": self.output_value.value,
                "layer": layer_index(self.layer, self.num_layers), "max_length": self.max_length,
                "generation": {**self.generation.kwargs(), "seed": self.generation.seed},
                "filter_words": list(self.filter_words or []),
                **self.precision(self.model)}

    def call_settings(self, options: dict[str, Any], generations: bool = False) -> CallSettings:
        """The call's options (the family's ones, checked) as its settings, each falling back to the encoder's own
        (:func:`~.settings.read_call`); the one place a call's options are read."""
        self.check_options(options)
        return read_call(options, self, generations)

    def prepare(self, options: dict[str, Any]) -> dict[str, Any]:
        """The call's options read once per ``encode`` call (:meth:`call_settings`), as ``{"call": CallSettings}``
        for :meth:`embed_batch`, :meth:`embed_questions`, :meth:`shares_input` and :meth:`row_lengths`; prepared
        options come back as they are."""
        if _prepared(options) is not None:
            return options
        return {PREPARED: self.call_settings(options)}

    def _call(self, options: dict[str, Any], generations: bool = False) -> CallSettings:
        """The call's settings: those :meth:`prepare` read, or read now from plain options (a direct call)."""
        call = _prepared(options)
        if call is None:
            return self.call_settings(options, generations)
        return call if call.generations == generations else replace(call, generations=generations)

    # -- prompts ------------------------------------------------------------------------------------------
    def template(self, pattern: str) -> tuple[str, bool]:
        """The checked ``pattern`` to fill (``"chat"`` rendered through the chat template, once) and whether it is
        a chat one."""
        if not is_chat(pattern):
            return pattern, False
        if pattern not in self._chat:
            self._chat[pattern] = render_chat(self.tokenizer, pattern)
        return self._chat[pattern], True

    def prompts(self, pairs: list[Pair], pattern: str | None = None, limit: int | None = None
                ) -> tuple[list[str], Spans, int]:
        """Prompts, (input span, instruction span) per prompt, and how many had their input cut to fit ``limit``."""
        filled, chat = self.template(check_pattern(pattern or self.pattern))
        return build_prompts(self.tokenizer, pairs, filled, chat, limit or self.max_length)

    def prompt_ids(self, pairs: list[Pair], pattern: str | None = None, limit: int | None = None,
                   offsets: bool = False) -> tuple[torch.Tensor, torch.Tensor, Any, Spans, int]:
        """The pairs' prompts as the encoder reads them: left-padded ids and mask, per-token character offsets if
        asked, the (input, instruction) character spans, and how many prompts were cut to fit."""
        filled, chat = self.template(check_pattern(pattern or self.pattern))
        return self._prompt_ids(pairs, filled, chat, limit or self.max_length, offsets)

    def _prompt_ids(self, pairs: list[Pair], template: str, chat: bool, limit: int, offsets: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, Any, Spans, int]:
        prompts, spans, cut = build_prompts(self.tokenizer, pairs, template, chat, limit)
        ids, mask, offs, cut_raw = self.tokenize(prompts, chat, [p[0] is None for p in pairs], offsets)
        return ids, mask, offs, spans, cut + cut_raw

    def call_ids(self, pairs: list[Pair], call: CallSettings, offsets: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor, Any, Spans, int]:
        """:meth:`prompt_ids` under a call's settings, on the model's device."""
        ids, mask, offs, spans, cut = self._prompt_ids(pairs, call.template, call.chat, call.limit or self.max_length,
                                                       offsets)
        return ids.to(self.device), mask.to(self.device), offs, spans, cut

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
        template, chat = self.template(check_pattern(self.pattern))
        return [min(n, self.max_length) for n in self._prompt_lengths(pairs, template, chat)]

    def row_lengths(self, pairs: list[Pair], **options: Any) -> tuple[list[int], int]:
        """Prompt tokens per pair before any cut (under the call's pattern), and the most a prompt may hold."""
        call = self._call(options)
        return self._prompt_lengths(pairs, call.template, call.chat), call.limit

    def _prompt_lengths(self, pairs: list[Pair], template: str, chat: bool) -> list[int]:
        prompts = [text if ins is None else fill(template, text, ins)[0] for ins, text in pairs]
        lengths = [0] * len(pairs)
        for specials in (True, False):
            rows = [i for i, (ins, _) in enumerate(pairs) if (ins is None or not chat) == specials]
            if rows:
                enc = self.tokenizer([prompts[i] for i in rows], add_special_tokens=specials, verbose=False)
                for i, row in zip(rows, enc["input_ids"], strict=True):
                    lengths[i] = len(row)
        return lengths

    # -- forward passes at one layer (:class:`~.passes.Passes` reads several at once) -------------------------
    def one_pass(self, ids: torch.Tensor, mask: torch.Tensor, layer: int) -> torch.Tensor:
        """States ``(b, t, h)`` at ``layer`` from one forward pass of the base model, stopped at that layer."""
        return self.passes.one_pass(ids, mask, (layer,))[layer]

    def generate(self, ids: torch.Tensor, mask: torch.Tensor, layer: int, generation: Generation
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompt states ``(b, t, h)``, states over answer tokens 1..n-1 ``(b, n-1, h)``, the sequences ``(b, t+n)``."""
        prompt, steps, seqs = self.passes.generate(ids, mask, (layer,), generation)
        return prompt[layer], steps[layer], seqs

    # -- one batch ----------------------------------------------------------------------------------------
    def embed_batch(self, pairs: list[Pair], output: Output, return_generations: bool = False, **options: Any
                    ) -> BatchResult:
        """Vectors for one batch; answers too when generating (always for avg_gen, last_gen, avg_all)."""
        call = self._call(options, return_generations)
        if call.generates:
            self._need_head(f"output_value={call.value.value!r}, return_generations={return_generations}",
                            "use output_value='fst_gen' or 'avg_ppt' without return_generations")
        ids, mask, offsets, spans, cut = self.call_ids(pairs, call, output is not Output.SENTENCE)
        result = BatchResult(torch.empty(0), truncated=cut, n_tokens=int(mask.sum()))
        if call.generates:
            prompts, steps, seqs = self.passes.generate(ids, mask, (call.layer,), call.generation)
            prompt, step = prompts[call.layer], steps[call.layer]
            keep = answer_keep(seqs[:, ids.shape[1]:], self.tokenizer, call.filter_words).to(step.device)
            result.answers = self.decode_answers(seqs, ids.shape[1], call)
        else:
            prompt = self.passes.one_pass(ids, mask, (call.layer,))[call.layer]
            step, keep = prompt[:, :0], torch.zeros((len(pairs), 0), dtype=torch.bool, device=prompt.device)
        result.vectors = pool(call.value, prompt.float(), mask, step.float(), keep)
        if output is not Output.SENTENCE:
            result.tokens, result.instruction_tokens = _token_states(prompt.float(), offsets, spans)
        return result

    def decode_answers(self, seqs: torch.Tensor, width: int, call: CallSettings) -> list[str]:
        """The answers after ``width`` prompt columns (whole sequences with ``full_generations``; without the
        tokens of the call's ``filter_words`` with ``filter_answers``)."""
        decode: Any = seqs if self.full_generations else seqs[:, width:]
        if self.filter_answers and call.filter_words:
            drop = word_ids(self.tokenizer, call.filter_words)
            decode = [[t for t in row if t not in drop] for row in decode.tolist()]
        return list(self.tokenizer.batch_decode(decode, skip_special_tokens=True))

    def _need_head(self, asked: str, instead: str) -> None:
        if not self.has_lm_head:
            raise InputError(f"the {self.family} family needs a language-model head to generate answers ({asked}), "
                             f"and this model has none; {instead}, or load a *ForCausalLM checkpoint")

    def shares_input(self, output: Output, generations: bool, options: dict[str, Any]) -> bool:
        """Whether :meth:`embed_questions` serves a call (sentence vectors without answers)."""
        return shares_input(self._call(options, generations), output)

    def embed_questions(self, items: list[tuple[str, list[str]]], **options: Any) -> BatchResult:
        """Vectors of each text under each of its questions, its input computed once (:mod:`.questions`)."""
        call = self._call(options)
        pairs: list[Pair] = [(q, text) for text, questions in items for q in questions]
        ids, mask, _, _, cut = self.call_ids(pairs, call)
        owner = [g for g, (_, questions) in enumerate(items) for _ in questions]  # each prompt's text
        return BatchResult(question_vectors(self.passes, call, ids, mask, owner), truncated=cut,
                           n_tokens=int(mask.sum()))

    # -- every readout at once (:mod:`.readouts`) ----------------------------------------------------------
    def plan_readouts(self, values: Sequence[str | OutputValue] | None = None, layers: Sequence[int] | None = None,
                      next_token_top_k: int = 0, answers: bool = False, *, max_prompt_tokens: int | None = None,
                      **options: Any) -> Sweep:
        """What a readouts call reads, checked once: ``values`` (all five when None) at ``layers`` (all when None),
        the top ``next_token_top_k`` next tokens at the answer position, the ``answers``; ``options`` as
        ``encode`` takes them, but for ``output_value`` and ``layer``. ``max_prompt_tokens`` replaces the prompt
        limit (``max_length``, less the answer's room)."""
        for name in ("output_value", "layer"):
            if name in options:
                raise InputError(f"readouts reads values=[...] at layers=[...]; {name}= is encode's option")
        call = self.call_settings(options, bool(answers))
        if max_prompt_tokens is not None:
            if not isinstance(max_prompt_tokens, int) or isinstance(max_prompt_tokens, bool) or max_prompt_tokens < 1:
                raise InputError(f"max_prompt_tokens={max_prompt_tokens!r} is not valid; give an int >= 1")
            call = replace(call, limit=max_prompt_tokens)
        sweep = plan(call, self.num_layers, values, layers, next_token_top_k, answers)
        if sweep.generates:
            asked = [v.value for v in dict.fromkeys(v for v, _, _ in sweep.readouts if v.generates)]
            self._need_head(f"values={asked}, answers={sweep.answers}",
                            "read only values that need no answer (fst_gen, avg_ppt), without answers")
        if sweep.top_k:
            self._need_head(f"next_token_top_k={sweep.top_k}", "use next_token_top_k=0")
        return sweep

    def readout_batch(self, pairs: list[Pair], sweep: Sweep) -> ReadoutBatch:
        """Every readout of ``sweep`` for one batch: the values read before the answer and the top-k from one
        forward pass, the values read over it and the answers from one ``generate()``; each value as
        :meth:`embed_batch` reads it alone."""
        call = sweep.call
        ids, mask, _, _, cut = self.call_ids(pairs, call)
        result = ReadoutBatch(torch.empty(0), truncated=cut, n_tokens=int(mask.sum()))
        found: dict[tuple[str, int], torch.Tensor] = {}
        before = sweep.layers(generating=False) + ((self.num_layers,) if sweep.top_k else ())
        if before:
            states = self.passes.one_pass(ids, mask, before)
            found.update(pool_readouts(sweep, False, states, mask))
            if sweep.top_k:
                result.top_ids, result.top_logprobs = self.passes.next_token_top_k(states[self.num_layers][:, -1],
                                                                                   sweep.top_k)
        if sweep.generates:
            start = time.perf_counter()
            prompt, steps, seqs = self.passes.generate(ids, mask, sweep.layers(generating=True), call.generation)
            result.generate_seconds = time.perf_counter() - start
            keep = answer_keep(seqs[:, ids.shape[1]:], self.tokenizer, call.filter_words)
            found.update(pool_readouts(sweep, True, prompt, mask, steps, keep))
            if sweep.answers:
                result.answers = self.decode_answers(seqs, ids.shape[1], call)
        result.readouts = {(v.value, asked): found[(v.value, asked)] for v, asked, _ in sweep.readouts}
        return result

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


def _prepared(options: dict[str, Any]) -> CallSettings | None:
    """The settings in options that :meth:`CausalEncoder.prepare` returned; None for plain options."""
    call = options.get(PREPARED)
    return call if isinstance(call, CallSettings) and len(options) == 1 else None


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


def _positions(config: Any, tokenizer: Any) -> int:
    found = [getattr(config, k, None) for k in ("max_position_embeddings", "n_positions")]
    found.append(getattr(tokenizer, "model_max_length", None))
    limits = [int(x) for x in found if isinstance(x, int) and 0 < x < 1_000_000]
    return min(limits) if limits else 2048
