"""``python -m inbedder`` runs the command line."""

from __future__ import annotations

from .cli_fast import main

main()
