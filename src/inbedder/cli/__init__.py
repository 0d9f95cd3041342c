"""The command line: a shell over the library, one module per command group.

- ``__init__``   :func:`run`, the console script (and ``python -m inbedder``)
- ``fast.py``    answers a fully cached ``inbedder embed`` before click is imported
- ``group.py``   the ``inbedder`` click group (``main``); it imports each command's module when it is used
- ``common.py``  what every command shares (errors as one line, the options declared once); imports no command
- ``embed.py``, ``cluster.py``, ``search.py``, ``similarity.py``, ``cache.py``, ``eval.py``, ``data.py``,
  ``train.py``, ``bench.py``, ``serve.py``: one command group each

``from inbedder.cli import main`` gives the click group; it is imported on first use, so that importing
:mod:`inbedder.cli.fast` does not import click.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["main", "run"]


def run() -> None:
    """The ``inbedder`` console script: a plain, fully cached ``embed`` is answered from the cache; everything else
    goes to the click group."""
    from .fast import serve_cached

    if not serve_cached(sys.argv[1:]):
        from .group import main

        main()


def __getattr__(name: str) -> Any:
    if name == "main":
        from .group import main

        return main
    raise AttributeError(f"module 'inbedder.cli' has no attribute {name!r}")
