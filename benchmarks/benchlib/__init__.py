"""Pieces of the side-by-side benchmark suite (benchmarks/run.py)."""
