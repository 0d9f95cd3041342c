"""Turn what users pass to ``encode`` into ``(instruction, text)`` pairs, or say exactly what is wrong.

>>> to_pairs(["a", "b"], "Represent the sentence:")
([('Represent the sentence:', 'a'), ('Represent the sentence:', 'b')], False)
>>> to_pairs([["Represent the title:", "c"]], None)
([('Represent the title:', 'c')], False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import InputError, InputTypeError

Pair = tuple[str | None, str]  # (instruction or None, text)


def describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def to_pairs(texts: Any, instruction: Any) -> tuple[list[Pair], bool]:
    """Return the pairs and whether the input was a single string."""
    single = isinstance(texts, str)
    if single:
        if instruction is not None and not isinstance(instruction, str):
            raise InputTypeError(
                f"a single text takes one instruction string; got instruction={describe(instruction)}"
            )
        rows: Sequence[Any] = [texts]
    elif texts is None or isinstance(texts, (bytes, dict)) or not hasattr(texts, "__iter__"):
        raise InputTypeError(
            f"texts must be a str, a list of str, or a list of [instruction, text] pairs; got {describe(texts)}"
        )
    else:
        rows = list(texts)

    n = len(rows)
    if instruction is None or isinstance(instruction, str):
        instructions: list[Any] = [instruction] * n
    elif isinstance(instruction, (list, tuple)):
        instructions = list(instruction)
        if len(instructions) != n:
            raise InputError(
                f"got {len(instructions)} instructions for {n} texts; give one instruction string, "
                "or a list with exactly one instruction per text"
            )
        for i, ins in enumerate(instructions):
            if ins is not None and not isinstance(ins, str):
                raise InputTypeError(f"instruction at row {i} must be a str (or None); got {describe(ins)}")
    else:
        raise InputTypeError(f"instruction must be a str, a list of str, or None; got {describe(instruction)}")

    pairs: list[Pair] = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            pairs.append((instructions[i], str(row)))
        elif isinstance(row, (list, tuple)):
            if len(row) != 2 or not all(isinstance(x, str) for x in row):
                raise InputError(
                    f"row {i}: an [instruction, text] pair must be exactly 2 strings; got {describe(row)}"
                )
            if instruction is not None:
                raise InputError(
                    f"row {i} is an [instruction, text] pair and instruction= was also given; use one or the other"
                )
            pairs.append((str(row[0]), str(row[1])))
        elif isinstance(row, dict) and "text" in row:
            text, ins = row["text"], row.get("instruction", instructions[i])
            if not isinstance(text, str):
                raise InputTypeError(f"row {i}, field 'text': expected a str; got {describe(text)}")
            if ins is not None and not isinstance(ins, str):
                raise InputTypeError(f"row {i}, field 'instruction': expected a str; got {describe(ins)}")
            pairs.append((ins, text))
        else:
            raise InputTypeError(
                f"row {i}: expected a str, an [instruction, text] pair, or a dict with 'text'; got {describe(row)}"
            )
    return pairs, single
