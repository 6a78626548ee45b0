"""The REST API (FastAPI): native ``/api/v1`` plus the dialect routers."""
