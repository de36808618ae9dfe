"""course_app/models.py on SQLite and PostgreSQL: the migrations build exactly the
schema the models describe, and every timestamp column reads back as an aware UTC
datetime, whatever zone it was written in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from course_app.models import AuthSession, User, VideoStatus


def test_the_migrations_build_the_schema_the_models_describe(engine):
    """Alembic's autogenerate, run against a database migrated to head, finds nothing
    to do: no table, column, type, nullability, index or key differs."""
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert differences == []


def test_timestamps_read_back_aware_and_in_utc(engine, make_user):
    user = make_user()
    written = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with Session(engine) as session:
        session.add(AuthSession(user_id=user.id, token_hash="0" * 64, expires_at=written))
        session.commit()

    with Session(engine) as fresh:
        row = fresh.exec(select(AuthSession).where(AuthSession.user_id == user.id)).one()
        stored_user = fresh.get(User, user.id)
    assert row.expires_at == written and row.expires_at.utcoffset() == timedelta(0)
    assert stored_user.created_at.tzinfo is not None and stored_user.created_at.utcoffset() == timedelta(0)


def test_statuses_are_their_plain_strings():
    assert [str(status) for status in VideoStatus] == ["uploading", "processing", "ready", "failed"]
    assert VideoStatus.READY == "ready" and f"{VideoStatus.FAILED}" == "failed"
