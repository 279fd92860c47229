"""The package version (one place; the package and run metadata read it)."""

__version__ = "0.2.0"
