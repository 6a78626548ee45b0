"""The Tork dialect: ``POST /task``, the ``/jobs`` API and ``treadle tork -mode ...``.

``translate`` turns Tork tasks and jobs into native definitions, ``views`` renders runs back
as Tork tasks and jobs, ``routes`` serves Tork's HTTP API and ``cli`` parses Tork's flags.
"""
