"""Instructors for tests against a running app: made straight in its database
(sign-up is rate limited per address, so only the tests about sign-up use it) and
logged in through the real JSON log-in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from course_app.db import session_scope
from course_app.services import users

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password: str = PASSWORD


def create_account(engine, email: str | None = None) -> Account:
    """An instructor in the database behind ``engine`` (a new address unless ``email``)."""
    email = email or f"{uuid.uuid4().hex[:12]}@example.com"
    with session_scope(engine) as session:
        return Account(id=users.create_user(session=session, email=email, password=PASSWORD).id, email=email)


def logged_in_client(base_url: str, account: Account, *, timeout: float = 30) -> httpx.Client:
    """A new client (its own cookie jar) logged in as ``account`` through POST /api/auth/login."""
    client = httpx.Client(base_url=base_url, timeout=timeout)
    try:
        response = client.post("/api/auth/login", json={"email": account.email, "password": account.password})
        assert response.status_code == 200, response.text
        assert client.cookies.get("cs_session")
    except BaseException:
        client.close()
        raise
    return client
