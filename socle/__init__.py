"""Socle IA: a sovereign generative-AI platform for public administrations."""

__version__ = "0.1.0"
