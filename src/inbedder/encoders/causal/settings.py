"""The causal family's settings: output values, generation, patterns and prompts, and one call's checked settings.

A call's options are read once, by :func:`read_call`, into a frozen :class:`CallSettings` that is passed down.

>>> parse_output_value("avg_gen_layer_12")
(<OutputValue.AVG_GEN: 'avg_gen'>, 12)
>>> fill("Q: {instruction} T: {input}", "a cat", "which animal?")
('Q: which animal? T: a cat', (20, 25), (3, 16))
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol

from ...errors import InputError, did_you_mean
from ...prompts import INBEDDER_PATTERN

Spans = list[tuple[tuple[int, int], tuple[int, int]]]  # per prompt: (input span, instruction span) in characters

CHAT = "chat"  # pattern value: the tokenizer's chat template, with CHAT_CONTENT as the user message;
# "chat:<user message>" puts another user message (with {input} and {instruction}) in the template
CHAT_CONTENT = "{input}\n\n{instruction}"
_PLACEHOLDER = re.compile(r"\{input\}|\{instruction\}")
LAYER_NAMED = re.compile(r"^(?P<value>[a-z_]+?)_layer_(?P<layer>-?\d+)$")


class OutputValue(str, Enum):
    FST_GEN = "fst_gen"
    AVG_GEN = "avg_gen"
    LAST_GEN = "last_gen"
    AVG_PPT = "avg_ppt"
    AVG_ALL = "avg_all"

    @property
    def generates(self) -> bool:
        """Whether the value reads the states of generated tokens."""
        return self in (OutputValue.AVG_GEN, OutputValue.LAST_GEN, OutputValue.AVG_ALL)


def parse_output_value(value: str | OutputValue, layer: int | None = None) -> tuple[OutputValue, int]:
    """``("avg_gen", 3)`` or the reference's ``"avg_gen_layer_3"`` → ``(AVG_GEN, 3)``; layer -1 by default."""
    text = value.value if isinstance(value, OutputValue) else value
    if not isinstance(text, str):
        raise InputError(f"output_value must be a str such as 'fst_gen' or 'fst_gen_layer_12'; got {value!r}")
    named = LAYER_NAMED.match(text)
    if named:
        text, from_name = named["value"], int(named["layer"])
        if layer is not None and layer != from_name:
            raise InputError(f"output_value={value!r} names layer {from_name} but layer={layer} was also given")
        layer = from_name
    if text not in {v.value for v in OutputValue}:
        valid = [v.value for v in OutputValue]
        raise InputError(f"output_value={value!r} is not valid; choose one of {valid}, optionally with a layer "
                         f"as in 'fst_gen_layer_12'.{did_you_mean(text, valid)}")
    if layer is None:
        layer = -1
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise InputError(f"layer must be an int (negative counts from the last layer); got {layer!r}")
    return OutputValue(text), layer


def layer_index(layer: int, num_layers: int) -> int:
    """``layer`` as an index 0 (embeddings) .. ``num_layers`` (last); negative counts from the last."""
    n = num_layers + 1
    if not -n <= layer < n:
        raise InputError(f"layer={layer} is out of range: this model has {n} hidden states, layers "
                         f"0 (embeddings) .. {num_layers} (last), or -{n} .. -1")
    return layer % n


def is_chat(pattern: str) -> bool:
    """Whether the pattern is rendered through the tokenizer's chat template (``"chat"`` or ``"chat:<message>"``)."""
    return pattern == CHAT or pattern.startswith(CHAT + ":")


def check_pattern(pattern: Any) -> str:
    """A pattern must hold ``{input}`` and ``{instruction}`` once each (or be ``"chat"``; in ``"chat:<message>"``
    the message must hold them)."""
    if not isinstance(pattern, str):
        raise InputError(f"pattern must be a str with {{input}} and {{instruction}}, or 'chat'; got {pattern!r}")
    if pattern == CHAT:
        return pattern
    found = _PLACEHOLDER.findall(pattern)
    for name in ("{input}", "{instruction}"):
        if found.count(name) != 1:
            raise InputError(f"pattern {pattern!r} must contain {name} exactly once (it has {found.count(name)}); "
                             f"e.g. {INBEDDER_PATTERN!r}, or pattern='chat' for the tokenizer's chat template")
    return pattern


def fill(pattern: str, text: str, instruction: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The prompt and the character spans of the input and the instruction in it (one pass: no re-substitution)."""
    parts, spans, last = [], {}, 0
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(pattern[last:m.start()])
        start = sum(map(len, parts))
        value = text if m.group() == "{input}" else instruction
        parts.append(value)
        spans[m.group()] = (start, start + len(value))
        last = m.end()
    parts.append(pattern[last:])
    return "".join(parts), spans["{input}"], spans["{instruction}"]


@dataclass(frozen=True)
class Generation:
    """Settings passed to ``generate()``. ``None`` leaves a setting to the model's generation config."""

    max_new_tokens: int | None = 3
    do_sample: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, valid: str) -> InputError:
            return InputError(f"{name}={value!r} is not valid; {valid}")

        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int)
                                                or isinstance(self.max_new_tokens, bool) or self.max_new_tokens < 1):
            raise bad("max_new_tokens", self.max_new_tokens, "give an int >= 1")
        if self.do_sample is not None and not isinstance(self.do_sample, bool):
            raise bad("do_sample", self.do_sample, "give True or False")
        if self.temperature is not None and (isinstance(self.temperature, bool) or not isinstance(
                self.temperature, (int, float)) or self.temperature <= 0):
            raise bad("temperature", self.temperature, "give a number > 0")
        if self.top_p is not None and (isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float))
                                       or not 0 < self.top_p <= 1):
            raise bad("top_p", self.top_p, "give a number in (0, 1]")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise bad("seed", self.seed, "give an int, or None")
        for key in ("num_beams", "num_return_sequences"):
            if self.extra.get(key, 1) != 1:
                raise bad(key, self.extra[key], "answer embeddings take one sequence per text; use 1")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any], base: Generation | None = None) -> Generation:
        """``base`` with the named settings replaced; keys that are not fields go to ``extra``."""
        base = base or cls()
        names = ("max_new_tokens", "do_sample", "temperature", "top_p", "seed")
        named = {k: v for k, v in kwargs.items() if k in names}
        extra = {**base.extra, **{k: v for k, v in kwargs.items() if k not in named}}
        return replace(base, **named, extra=extra)

    def kwargs(self) -> dict[str, Any]:
        named = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "temperature": self.temperature,
                 "top_p": self.top_p}
        return {**{k: v for k, v in named.items() if v is not None}, **self.extra}


def check_words(words: Any) -> list[str] | None:
    if words is None:
        return None
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise InputError(f"filter_words must be a list of str; got {words!r}")
    return list(words)


def render_chat(tokenizer: Any, pattern: str = CHAT) -> str:
    """The tokenizer's chat template rendered around the user message of a chat pattern (:data:`CHAT_CONTENT` for
    ``"chat"``), as a pattern."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("pattern='chat' needs a tokenizer with a chat template, and this model's has none; "
                         f"give a pattern such as {INBEDDER_PATTERN!r}")
    content = pattern.removeprefix(CHAT + ":") if pattern != CHAT else CHAT_CONTENT
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
    return check_pattern(rendered)


def build_prompts(tokenizer: Any, pairs: list[tuple[str | None, str]], pattern: str, chat: bool, limit: int
                  ) -> tuple[list[str], Spans, int]:
    """Fill ``pattern`` per (instruction, text) pair, cutting the start of a text whose prompt exceeds ``limit``
    tokens. A pair without instruction is a complete prompt, kept as it is (the tokenizer cuts it later)."""
    def count(prompt: str) -> int:
        return len(tokenizer(prompt, add_special_tokens=not chat)["input_ids"])

    out, spans, cut = [], [], 0
    for row, (instruction, text) in enumerate(pairs):
        if instruction is None:
            out.append(text)
            spans.append(((0, len(text)), (0, 0)))
            continue
        prompt, span_in, span_ins = fill(pattern, text, instruction)
        if count(prompt) > limit:
            cut += 1
            kept = _fit(lambda t, i=instruction: count(fill(pattern, t, i)[0]) <= limit, text)  # type: ignore[misc]
            if kept is None:
                need = count(fill(pattern, "", instruction)[0])
                raise InputError(f"row {row}: the pattern and the instruction alone take {need} tokens, more than "
                                 f"the limit of {limit}; shorten the instruction or raise max_length")
            prompt, span_in, span_ins = fill(pattern, kept, instruction)
        out.append(prompt)
        spans.append((span_in, span_ins))
    return out, spans, cut


def _fit(fits: Callable[[str], bool], text: str) -> str | None:
    """The longest end of ``text`` that ``fits``, cut at a word start (inside the last word only when it must)."""
    if not fits(""):
        return None
    starts = [i for i in range(1, len(text)) if not text[i].isspace() and text[i - 1].isspace()] + [len(text)]
    k = _first(starts, lambda i: fits(text[i:]))
    if k == len(text) and len(starts) > 0:  # not even the last word fits whole: cut inside it
        k = _first(list(range(starts[-2] if len(starts) > 1 else 0, len(text) + 1)), lambda i: fits(text[i:]))
    return text[k:]


def _first(candidates: list[int], fits: Callable[[int], bool]) -> int:
    """The first candidate that ``fits`` (fitting is monotone along the candidates); the last otherwise."""
    i = bisect.bisect_left(range(len(candidates)), True, key=lambda j: fits(candidates[j]))
    return candidates[min(i, len(candidates) - 1)]


def prompt_limit(max_length: int, position_limit: int | None, generation: Generation) -> int:
    """Tokens a prompt may take: ``max_length``, less the room the answer needs within the positions."""
    if position_limit and generation.max_new_tokens:
        return min(max_length, position_limit - generation.max_new_tokens)
    return max_length


@dataclass(frozen=True)
class CallSettings:
    """One call's settings, checked once (:func:`read_call`) and passed down to the passes, pooling and questions."""

    value: OutputValue
    layer: int  # 0 (embeddings) .. the model's number of layers (last, with the final norm)
    generation: Generation
    pattern: str  # as given: a pattern with {input} and {instruction}, "chat" or "chat:<user message>"
    template: str  # what is filled: the pattern, or the chat template rendered around its user message
    chat: bool  # whether the template is a chat one (its prompts carry their special tokens)
    limit: int  # tokens a prompt may take (room is left for the answer)
    filter_words: tuple[str, ...] | None
    generations: bool = False  # whether the call asks for the answers (return_generations)

    @property
    def generates(self) -> bool:
        """Whether the call runs ``generate()``: a value read over the answer, or the answers themselves."""
        return self.value.generates or self.generations


class Defaults(Protocol):
    """What a call falls back to where it names nothing, and what checks it: the encoder's own settings."""

    @property
    def output_value(self) -> OutputValue: ...
    @property
    def layer(self) -> int: ...
    @property
    def generation(self) -> Generation: ...
    @property
    def pattern(self) -> str: ...
    @property
    def filter_words(self) -> list[str] | None: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def position_limit(self) -> int | None: ...
    def template(self, pattern: str) -> tuple[str, bool]: ...


def read_call(options: Mapping[str, Any], own: Defaults, generations: bool = False) -> CallSettings:
    """The call's settings from its options (``output_value``, ``layer``, ``pattern``, ``filter_words`` and the
    generation settings), each falling back to ``own``'s. A layer in the value's name or ``layer`` wins over the
    encoder's own layer."""
    output_value, layer = options.get("output_value"), options.get("layer")
    named = isinstance(output_value, str) and LAYER_NAMED.match(output_value) is not None
    value, parsed = parse_output_value(own.output_value if output_value is None else output_value, layer)
    index = layer_index(parsed if named or layer is not None else own.layer, own.num_layers)
    generation = Generation.from_kwargs({k: options[k] for k in Generation.__dataclass_fields__ if k in options},
                                        own.generation)
    pattern = check_pattern(options.get("pattern", own.pattern))
    words = check_words(options["filter_words"]) if "filter_words" in options else own.filter_words
    template, chat = own.template(pattern)
    return CallSettings(value, index, generation, pattern, template, chat,
                        prompt_limit(own.max_length, own.position_limit, generation),
                        None if words is None else tuple(words), generations)
