"""Instruction and prompt builders.

INSTRUCTOR's unified template is ``Represent the {domain} {text_type} for {task_objective}:``;
the domain and the objective are optional.

>>> instruction_template("title", domain="Science")
'Represent the Science title:'
>>> instruction_template("sentence", objective="retrieving duplicate sentences")
'Represent the sentence for retrieving duplicate sentences:'
"""

from __future__ import annotations

from .errors import InputError

INBEDDER_PATTERN = "### Input:\n{input}\n\n### Instruction:\n{instruction}\n\n### Response:"
"""InBedder's prompt: the text, the question about it, and the cue for the answer."""


def instruction_template(text_type: str, *, domain: str | None = None, objective: str | None = None) -> str:
    """Build an INSTRUCTOR instruction. ``text_type`` is required (sentence, document, title, ...)."""
    for field, value in (("text_type", text_type), ("domain", domain), ("objective", objective)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{field} must be a str; got {type(value).__name__}")
    if not text_type or not text_type.strip():
        raise InputError("text_type is required, e.g. 'sentence', 'document', 'title'")
    words = ["Represent the"]
    if domain and domain.strip():
        words.append(domain.strip())
    words.append(text_type.strip())
    text = " ".join(words)
    if objective and objective.strip():
        text += f" for {objective.strip()}"
    return text + ":"
