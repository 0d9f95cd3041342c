"""The ``inbedder`` click group: every command, each from its own module (imported when used, except ``embed``).

Examples::

    inbedder embed -m minilm --instruction "Represent the sentence:" "A cat sat." "A dog ran."
    inbedder models

User errors exit with status 1 and one line on stderr. The console script is :func:`inbedder.cli.run`, which
answers a fully cached ``embed`` (:func:`inbedder.cli.fast.serve_cached`) before this module (and click) is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from ..version import __version__
from .embed import embed


class LazyGroup(click.Group):
    """A group whose larger subcommands are imported only when used (or listed), so ``embed`` starts fast."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy  # command name -> "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module, __package__), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             lazy={"eval": ".eval:eval_group", "cluster": ".cluster:cluster", "similarity": ".similarity:similarity",
                   "search": ".search:search", "cache": ".cache:cache_group", "data": ".data:data_group",
                   "train": ".train:train_group", "serve": ".serve:serve", "bench": ".bench:bench",
                   "models": ".models:models"})
@click.version_option(__version__, prog_name="inbedder")
def main() -> None:
    """Instruction-following text embeddings."""


main.add_command(embed)

