"""Checks shared by the CLI tests: a command succeeded, or failed with one clear error line."""

from __future__ import annotations

from click.testing import Result


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def assert_one_error_line(result: Result, *needles: str) -> str:
    """Exit 1 from a handled error, one ``Error: ...`` line on stderr containing every needle, nothing on stdout."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not an escaped exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]
