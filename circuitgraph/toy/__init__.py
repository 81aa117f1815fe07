"""Toy model: a small word-level transformer trained on the task prompts."""
