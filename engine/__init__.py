"""Aiguillage: an integration engine for French health data feeds."""

__version__ = "0.1.0"
