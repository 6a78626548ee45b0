"""The engine: scheduling decisions, the coordinator that applies them, control operations."""
