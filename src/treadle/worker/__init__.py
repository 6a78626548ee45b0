"""Workers: take ready attempts from the broker, run them, report outcomes to the store."""
