"""Model files: the embedded defaults, safe inspection, lineage and weight changes."""
