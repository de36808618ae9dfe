"""Fixtures for the HTTP API tests: accounts made straight in the running app's
database (sign-up is rate limited per address, so only the tests about sign-up
use it) and clients logged in through the real /api/auth/login."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from course_app.db import session_scope
from course_app.services import users
from tests.api.support import PASSWORD


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password: str


@pytest.fixture
def make_account(server_engine):
    """Create an instructor in the running app's database."""

    def _make() -> Account:
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        with session_scope(server_engine) as session:
            user = users.create_user(session=session, email=email, password=PASSWORD)
            return Account(id=user.id, email=email, password=PASSWORD)

    return _make


@pytest.fixture
def new_client(app_server):
    """Fresh httpx clients (own cookie jars) against the running app."""
    clients: list[httpx.Client] = []

    def _new(**headers: str) -> httpx.Client:
        client = httpx.Client(base_url=app_server.base_url, timeout=30, headers=headers)
        clients.append(client)
        return client

    yield _new
    for client in clients:
        client.close()


@pytest.fixture
def login_as(new_client):
    """A new client logged in as ``account`` through the JSON log-in."""

    def _login(account: Account) -> httpx.Client:
        client = new_client()
        response = client.post("/api/auth/login", json={"email": account.email, "password": account.password})
        assert response.status_code == 200, response.text
        assert client.cookies.get("cs_session")
        return client

    return _login
