"""The ``treadle`` command line: parsing only; the work is done by the engine and the API."""
