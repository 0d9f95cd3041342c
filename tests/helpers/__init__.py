"""Builders of tiny random models and shared test plumbing (imported as ``helpers.<module>``; pytest puts tests/
on sys.path, see ``pythonpath`` in pyproject.toml)."""
