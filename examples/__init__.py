"""Runnable examples of errorkit (``python -m examples.demo``)."""
