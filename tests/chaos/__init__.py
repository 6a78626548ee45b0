"""Fault-injection ("chaos") scenarios: real processes, real services, counted in tables.

Run with pytest (``-m services``), or alone for the summary table:
``python -m tests.chaos [--full]`` / ``python tests/chaos/run.py [--full]``.
"""
