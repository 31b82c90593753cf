"""Qt item models over plain data (tables of probes, results and runs)."""
