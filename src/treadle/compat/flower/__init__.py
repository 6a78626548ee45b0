"""The Flower dialect: ``ms_task_definition`` rows, ``POST /register/{task_id}``,
``kr_task_stat`` (a PostgreSQL view and ``GET /flower/flows/{id}``), rerun and flow control.
"""
