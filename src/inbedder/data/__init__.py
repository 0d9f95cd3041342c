"""Small data files shipped with inbedder.

``showcase.jsonl``: 48 short English texts, each with two independent labels: ``topic`` (food, travel, work,
sport) and ``sentiment`` (positive, negative), 6 texts per pair. Good for seeing whether an embedding follows an
instruction: cluster it under "What is the topic?" and under "What is the sentiment?" and compare.

>>> rows = showcase()
>>> len(rows), sorted({r["topic"] for r in rows}), sorted({r["sentiment"] for r in rows})
(48, ['food', 'sport', 'travel', 'work'], ['negative', 'positive'])
>>> path("showcase.jsonl").name
'showcase.jsonl'

From the shell: ``inbedder cluster -m minilm -i "$(python -c 'import inbedder.data as d; print(d.path())')" ...``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError, did_you_mean

FILES = ("showcase.jsonl",)


def path(name: str = "showcase.jsonl") -> Path:
    """The path of a shipped data file (a real file inside the installed package)."""
    if name not in FILES:
        raise InputError(f"no data file {name!r} ships with inbedder; files: {', '.join(FILES)}."
                         f"{did_you_mean(name, FILES)}")
    return Path(str(resources.files(__name__).joinpath(name)))


def showcase() -> list[dict[str, Any]]:
    """The showcase corpus: dicts with ``id``, ``text``, ``topic`` and ``sentiment``, in file order."""
    with open(path("showcase.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
