"""Helpers for evaluators: reports about nodes, critiques and per-sentence verification."""
