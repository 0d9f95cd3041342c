"""Several instructions over one corpus: ``encode(texts, instructions=[q1, ..., qk])`` → ``(k, n, d)``.

The call is the plain one over all k × n (instruction, text) pairs, so every option, the persistent cache and
``cache_dir`` work as they do there. Where the family can compute a text's input once for all its questions
(the causal family: ``embed_questions``), the engine plans batches of *texts* around that, longest first;
other families, and calls that generate answers, take the engine's usual plan over the k × n pairs.

>>> vectors = model.encode(["I love my cat!", "The funds rose."],
...                        instructions=["Which animal?", "How does it feel?"])    # doctest: +SKIP
>>> vectors.shape                                                                  # doctest: +SKIP
(2, 2, 576)

Importing this module imports no torch: the load-free cached path (:mod:`inbedder.load_free`) and the fast CLI path
(:mod:`inbedder.cli.fast`) lay out their rows with :func:`under_each` too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import InputError, InputTypeError
from .inputs import describe, to_pairs

if TYPE_CHECKING:
    import torch

    from .batching import Rows
    from .encoders.base import BatchResult, Output, Pair

Row = TypeVar("Row")


def under_each(rows: list[Row], instructions: Sequence[str]) -> tuple[list[Row], list[str]]:
    """Every row under each instruction, instruction by instruction, and the instruction of each.

    >>> under_each(["a", "b"], ["q1", "q2"])
    (['a', 'b', 'a', 'b'], ['q1', 'q1', 'q2', 'q2'])
    """
    return [row for _ in instructions for row in rows], [q for q in instructions for _ in rows]


def expand(texts: Any, instruction: Any, instructions: Any) -> tuple[list[str], list[str], int, bool]:
    """All (instruction, text) rows, instruction by instruction: texts, their instructions, k, single text."""
    if instruction is not None:
        raise InputError("give instruction= (one, or one per text) or instructions= (several for every text), "
                         "not both")
    if isinstance(instructions, str) or not isinstance(instructions, (list, tuple)) or not instructions:
        raise InputTypeError(f"instructions must be a non-empty list of str; got {describe(instructions)}")
    for j, ins in enumerate(instructions):
        if not isinstance(ins, str):
            raise InputTypeError(f"instructions[{j}] must be a str; got {describe(ins)}")
    pairs, single = to_pairs(texts, None)
    for i, (own, _) in enumerate(pairs):
        if own is not None:
            raise InputError(f"row {i} carries its own instruction; with instructions= give plain texts")
    every, asked = under_each([text for _, text in pairs], instructions)
    return every, asked, len(instructions), single


def split(value: Any, k: int, single: bool, out: Output, generations: bool) -> Any:
    """``encode``'s result over the k × n rows, shaped per instruction: arrays ``(k, n, d)`` (``(k, d)`` for one
    text), and per-row lists (token vectors, answers) as k lists of n."""
    from .encoders.base import Output

    def per_instruction(rows: Any) -> list[Any]:
        n = len(rows) // k
        return [list(rows[j * n:(j + 1) * n]) for j in range(k)]

    def shape(vectors: Any) -> Any:
        return vectors if single else vectors.reshape(k, len(vectors) // k, *vectors.shape[1:])

    if generations:
        vectors, answers = value
        return split(vectors, k, single, out, False), (list(answers) if single else per_instruction(answers))
    if out is Output.SENTENCE:
        return shape(value)
    if out is Output.TOKEN:
        return list(value) if single else per_instruction(value)
    sentence, tokens, instruction_tokens = value
    return (shape(sentence), *((list(t) if single else per_instruction(t)) for t in (tokens, instruction_tokens)))


def run_questions(model: Any, pairs: list[Pair], batch_size: int, show: bool | None, options: dict[str, Any],
                  on_batch: Callable[[list[Pair], BatchResult], None] | None = None, budget: int | None = None
                  ) -> Rows:
    """The engine's run for a family with ``embed_questions``: the unique texts, longest first, ``batch_size``
    texts a batch (with a ``budget``, about that many padded tokens over all their prompts), each text with
    its questions; rows come back in the order of ``pairs``. ``options`` are read once here (the family's
    ``prepare``; options it prepared already pass as they are)."""
    import torch

    from .batching import Rows, run_batches, warn_truncated

    encoder: Any = model.encoder
    prepare = getattr(encoder, "prepare", None)
    options = prepare(options) if callable(prepare) else options
    questions: dict[str, list[str]] = {}
    for ins, text in dict.fromkeys(pairs):
        questions.setdefault(text, []).append(str(ins))
    texts = list(questions)
    counts = encoder.token_counts([(max(questions[t], key=len), t) for t in texts])
    found: dict[Pair, torch.Tensor] = {}
    encoder.eval()

    def run(rows: list[int]) -> BatchResult:
        items = [(texts[i], questions[texts[i]]) for i in rows]
        result = encoder.embed_questions(items, **options)
        batch: list[Pair] = [(q, text) for text, qs in items for q in qs]
        if on_batch is not None:
            on_batch(batch, result)
        found.update(zip(batch, result.vectors, strict=True))
        return result

    done = run_batches([counts[i] * len(questions[texts[i]]) for i in range(len(texts))], batch_size, budget, show,
                       run)
    truncated = sum(result.truncated for _, result in done)
    warn_truncated(truncated, len(found))
    if not pairs:
        return Rows(torch.zeros((0, encoder.dim)))
    return Rows(torch.stack([found[p] for p in pairs]).float())


def shares_input(model: Any, out: Output, generations: bool, options: dict[str, Any]) -> bool:
    """Whether the family computes a text's input once for all its questions in this call."""
    check = getattr(model.encoder, "shares_input", None)
    return callable(check) and bool(check(out, generations, options))
