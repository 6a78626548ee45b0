"""Secrets: encrypted storage (:mod:`.vault`), run-time resolution (:mod:`.refs`) and masking
(:mod:`.masking`) of values so they never reach logs, outputs, errors or API responses."""
