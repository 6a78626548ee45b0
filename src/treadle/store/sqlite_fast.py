"""Precompiled execution of the SQL store's repeated statements on the sqlite3 connection.

SQLAlchemy Core spends about 100-200 us of Python per statement on the development VM (the
execution context, rendering expanding ``IN`` lists, processing parameters and rows), while
SQLite itself needs tens of microseconds for the coordinator's small reads and writes. A
statement that ``SqlStore`` builds once and runs on every pass (``sql.REPEATED_STATEMENTS``) is
compiled once here; per shape of its expanding parameters the SQL text and the order of its
positional parameters are kept, and values go through the same bind and result processors
SQLAlchemy would apply (JSON, ``UTCDateTime``, booleans), taken from the column types.

Only SELECTs and DML without RETURNING qualify; everything else goes through SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

Processor = Callable[[Any], Any] | None


class _Marker:
    """Stands for one caller-supplied value while the SQL of a shape is worked out."""

    __slots__ = ("index", "key")

    def __init__(self, key: str, index: int | None) -> None:
        self.key = key
        self.index = index


class FastRow(tuple[Any, ...]):
    """A result row: a tuple with the ``_mapping`` view that ``SqlStore`` reads."""

    __slots__ = ()
    keys: tuple[str, ...] = ()

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self.keys, self, strict=True))


class FastResult:
    """The slice of SQLAlchemy's ``Result`` that ``SqlStore`` uses."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise ValueError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


# A positional parameter: where its value comes from (caller key and list index, or a constant
# of the statement), and the processor that turns it into what the driver stores.
_Slot = tuple[str | None, int | None, Any, Processor]


class FastStatement:
    """One repeated statement, compiled for SQLite once."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        self._compiled = statement.compile(dialect=dialect)
        self._dialect = dialect
        self._expanding = tuple(
            sorted(key for key, bind in self._compiled.binds.items() if bind.expanding)
        )
        self._shapes: dict[tuple[Any, ...], tuple[str, list[_Slot]]] = {}
        self._row_type: type[FastRow] | None = None
        self._row_processors: list[Processor] = []
        if isinstance(statement, Select):
            columns = list(statement.selected_columns)
            self._row_type = type(
                "Row",
                (FastRow,),
                {"__slots__": (), "keys": tuple(column.key for column in columns)},
            )
            self._row_processors = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ]

    def _shape(self, params: Mapping[str, Any]) -> tuple[str, list[_Slot]]:
        # Statements also hold anonymous expanding binds of their own (literal IN lists).
        key = (tuple(params), tuple(len(params[n]) for n in self._expanding if n in params))
        shape = self._shapes.get(key)
        if shape is not None:
            return shape
        markers: dict[str, Any] = {}
        for name, value in params.items():
            if name in self._expanding:
                markers[name] = [_Marker(name, i) for i in range(len(value))]
            else:
                markers[name] = _Marker(name, None)
        state = self._compiled.construct_expanded_state(markers)
        slots: list[_Slot] = []
        for name in state.positiontup or ():
            value = state.parameters[name]
            if isinstance(value, _Marker):
                slots.append((value.key, value.index, None, self._processor(value.key)))
            else:
                # A constant of the statement; "<bind>_<n>" when it came from an IN list.
                processor = self._processor(name) or self._processor(name.rpartition("_")[0])
                constant = value if processor is None or value is None else processor(value)
                slots.append((None, None, constant, None))
        shape = (state.statement, slots)
        self._shapes[key] = shape
        return shape

    def _processor(self, name: str) -> Processor:
        bind = self._compiled.binds.get(name)
        if bind is None:
            return None
        processor: Processor = bind.type.dialect_impl(self._dialect).bind_processor(self._dialect)
        return processor

    @staticmethod
    def _values(slots: list[_Slot], params: Mapping[str, Any]) -> list[Any]:
        values: list[Any] = []
        for key, index, constant, processor in slots:
            if key is None:
                values.append(constant)
                continue
            value = params[key] if index is None else params[key][index]
            values.append(value if processor is None else processor(value))
        return values

    def execute(
        self, db: sqlite3.Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> FastResult:
        """Run with one parameter set (rows returned for a SELECT) or many (executemany)."""
        if not isinstance(params, Mapping):
            if not params:
                return FastResult([], 0)
            sql, slots = self._shape(params[0])
            cursor = db.executemany(sql, [self._values(slots, p) for p in params])
            return FastResult([], cursor.rowcount)
        sql, slots = self._shape(params)
        cursor = db.execute(sql, self._values(slots, params))
        if self._row_type is None:
            return FastResult([], cursor.rowcount)
        row_type, processors = self._row_type, self._row_processors
        rows = [
            row_type(
                value if processor is None or value is None else processor(value)
                for processor, value in zip(processors, raw, strict=True)
            )
            for raw in cursor.fetchall()
        ]
        return FastResult(rows, cursor.rowcount)


class FastStatements:
    """Compiled forms of the repeated statements, made on first use."""

    def __init__(self, dialect: Dialect, repeated: Mapping[int, Any]) -> None:
        self._dialect = dialect
        self._repeated = repeated
        self._compiled: dict[int, tuple[Any, FastStatement]] = {}

    def get(self, statement: Any) -> FastStatement | None:
        """The precompiled form of ``statement``, or None when it is not a repeated one."""
        found = self._compiled.get(id(statement))
        if found is not None and found[0] is statement:
            return found[1]
        if self._repeated.get(id(statement)) is not statement:
            return None
        fast = FastStatement(statement, self._dialect)
        # Keyed by id but holding the statement itself, so an id is never reused meanwhile.
        self._compiled[id(statement)] = (statement, fast)
        return fast
