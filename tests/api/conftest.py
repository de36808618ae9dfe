"""Fixtures for the HTTP API tests: accounts made straight in the running app's
database (sign-up is rate limited per address, so only the tests about sign-up
use it) and clients logged in through the real /api/auth/login."""

from __future__ import annotations

import httpx
import pytest

from tests.accounts import Account, create_account, logged_in_client


@pytest.fixture
def make_account(server_engine):
    """Create an instructor in the running app's database."""
    return lambda: create_account(server_engine)


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
def login_as(app_server):
    """A new client logged in as ``account`` through the JSON log-in."""
    clients: list[httpx.Client] = []

    def _login(account: Account) -> httpx.Client:
        clients.append(logged_in_client(app_server.base_url, account))
        return clients[-1]

    yield _login
    for client in clients:
        client.close()


@pytest.fixture
def owner(make_account, login_as) -> tuple[Account, httpx.Client]:
    """An instructor and a client logged in as them."""
    account = make_account()
    return account, login_as(account)


@pytest.fixture
def stranger(make_account, login_as) -> httpx.Client:
    """Another instructor's logged-in client."""
    return login_as(make_account())
