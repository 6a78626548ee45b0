"""Stores: the source of truth for definitions, runs, tasks, attempts, logs and events."""
