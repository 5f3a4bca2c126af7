"""Benchmarks against named peers; ``make bench`` runs them all (``python -m bench``)."""
