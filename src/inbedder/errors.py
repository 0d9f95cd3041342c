"""Error types. Every error the library raises on purpose derives from :class:`InbedderError`.

Each subclass also derives from the matching built-in (``ValueError``, ``TypeError``, ``KeyError``,
``OSError``) so callers that catch the built-in keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InbedderError(Exception):
    """Base class of every error raised on purpose by inbedder."""


class InputError(InbedderError, ValueError):
    """A value given by the user is not valid (names what, where, and what is valid)."""


class InputTypeError(InbedderError, TypeError):
    """A value given by the user has the wrong type."""


class UnknownModelError(InbedderError, KeyError):
    """A model name is not an alias, a local path or a reachable hub id."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ModelLoadError(InbedderError, OSError):
    """Model files were found but could not be loaded."""


class MissingExtraError(InbedderError, ImportError):
    """An optional dependency is not installed."""


class NonFiniteError(InbedderError, ArithmeticError):
    """A computation produced NaN or infinity."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_ints(settings: object, names: Iterable[str], low: int = 1) -> None:
    """Refuse any of the ``names`` attributes of ``settings`` that is not an int (bools are not) of at least
    ``low``, naming the field and the value."""
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be an int >= {low}; got {value!r}")


def require(module: str, extra: str) -> None:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this feature needs the package {module!r}; install it with: pip install \"inbedder[{extra}]\""
        ) from exc
