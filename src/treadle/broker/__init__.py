"""Brokers: the doorbell that says "work is ready on queue Q". The store holds the truth."""
