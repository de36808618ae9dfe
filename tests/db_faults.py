"""Fault injection in a running app's database: a trigger that makes a statement
fail, written for SQLite and for PostgreSQL (--production-app)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine


@contextmanager
def failing(engine: Engine, name: str, event: str, table: str) -> Iterator[None]:
    """While inside, ``event`` (``DELETE``, ``UPDATE OF title``, ...) on ``table`` fails
    with "injected failure"."""
    if engine.dialect.name == "sqlite":
        create = [f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON {table} "
                  "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"]
        drop = [f"DROP TRIGGER IF EXISTS {name}"]
    else:
        create = [f"CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                  f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn()"]
        drop = [f"DROP TRIGGER IF EXISTS {name} ON {table}", f"DROP FUNCTION IF EXISTS {name}_fn()"]
    with engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)
