"""course_app/db.py: engines for the URLs settings accept, and the session scope."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from course_app.db import make_engine, session_scope
from course_app.models import User
from course_app.services import users
from course_app.settings import Settings


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:pw@db.example.com:5432/app", "postgres://u:pw@db.supabase.co:5432/postgres",
     "postgresql+psycopg2://u@h/db"],
)
def test_postgres_urls_use_the_installed_psycopg2_driver(url):
    engine = make_engine(Settings(database_url=url, _env_file=None).resolved_database_url)

    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg2"
    assert engine.url.host in ("db.example.com", "db.supabase.co", "h")


def test_a_plain_postgresql_url_reaches_the_local_server(postgres_url):
    assert postgres_url.startswith(("postgresql://", "postgresql+psycopg2://"))
    engine = make_engine(postgres_url.replace("postgresql+psycopg2://", "postgresql://", 1))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


def test_session_scope_commits_on_success(engine):
    with session_scope(engine) as session:
        users.create_user(session=session, email="kept@example.com", password="long enough")

    with Session(engine) as fresh:
        assert fresh.exec(select(User.email)).all() == ["kept@example.com"]


def test_session_scope_rolls_back_on_error(engine):
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            users.create_user(session=session, email="lost@example.com", password="long enough")
            raise RuntimeError("boom")

    with Session(engine) as fresh:
        assert fresh.exec(select(User.email)).all() == []
