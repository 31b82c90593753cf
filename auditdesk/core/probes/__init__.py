"""Probe packs: the questions an audit asks, as validated data files."""
