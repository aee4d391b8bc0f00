"""Running a statement on a SQLAlchemy session or straight on a DBAPI cursor, alike.

The claim -- one per task, hundreds a second -- runs on a raw psycopg2 cursor: SQLAlchemy's
per-statement work (building, caching, ORM bulk paths) cost more CPU than Postgres' own on
this path. The few statements a claim shares with the other services (queueing tasks,
staging outbox messages) are written once as ``text()`` and run through ``execute``
wherever they are used, compiled to psycopg2's parameter style for a cursor.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol

from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.orm import Session


class Cursor(Protocol):
    """What is used of a DBAPI (psycopg2) cursor."""

    description: Any
    connection: Any

    def execute(self, operation: str, parameters: Any = ...) -> Any: ...

    def executemany(self, operation: str, seq_of_parameters: Any) -> Any: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


Target = Session | Cursor


@cache
def pyformat(statement: TextClause) -> str:
    """The statement with ``%(name)s`` placeholders, as psycopg2 takes them."""
    return str(statement.compile(dialect=psycopg2.dialect()))


def rows(target: Target, statement: TextClause, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run a statement that returns rows; its rows."""
    if isinstance(target, Session):
        return [tuple(row) for row in target.execute(statement, params)]
    target.execute(pyformat(statement), params)
    return list(target.fetchall())


def run_many(target: Target, statement: TextClause, params: list[dict[str, Any]]) -> None:
    """Run a statement once per parameter set (e.g. an INSERT of several rows)."""
    if not params:
        return
    if isinstance(target, Session):
        target.execute(statement, params)
    else:
        target.executemany(pyformat(statement), params)
