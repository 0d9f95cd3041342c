"""The package version, in the one module everything may import."""

__version__ = "0.1.0"
