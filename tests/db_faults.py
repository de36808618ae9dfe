"""Fault injection in a running app's database: a trigger that makes a statement
fail, written for SQLite and for PostgreSQL (--production-app)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine


@contextmanager
def failing(engine: Engine, name: str, event: str, table: str, *, when: str | None = None) -> Iterator[None]:
    """While inside, ``event`` (``DELETE``, ``UPDATE OF title``, ...) on ``table`` fails
    with "injected failure"; with ``when`` (an SQL condition on ``NEW``/``OLD`` that both
    databases read alike, e.g. ``NEW.title = 'Beta' AND NEW.position < 0``) only for the
    rows it holds for."""
    if engine.dialect.name == "sqlite":
        condition = f"WHEN {when} " if when else ""
        create = [f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON {table} {condition}"
                  "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"]
        drop = [f"DROP TRIGGER IF EXISTS {name}"]
    else:
        condition = f"WHEN ({when}) " if when else ""
        create = [f"CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                  f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW {condition}"
                  f"EXECUTE FUNCTION {name}_fn()"]
        drop = [f"DROP TRIGGER IF EXISTS {name} ON {table}", f"DROP FUNCTION IF EXISTS {name}_fn()"]
    _run(engine, create)
    try:
        yield
    finally:
        _run(engine, drop)


def _run(engine: Engine, statements: list[str]) -> None:
    """In one transaction, each statement as written (no_parameters: a '%' in a
    condition is not taken for a placeholder)."""
    with engine.begin() as conn:
        conn.execution_options(no_parameters=True)
        for statement in statements:
            conn.exec_driver_sql(statement)
