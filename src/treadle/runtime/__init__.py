"""Runtimes: how each executing task kind runs one attempt."""
