"""Generating answers and scoring text with local or remote language models."""
