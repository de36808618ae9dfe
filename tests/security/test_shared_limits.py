"""Rate limits per client address, and shared by processes through Redis.

Two production builds of the app, each its own process and database, count in
one Redis under one key prefix (this module's own): A trusts no proxy (the
client is the socket peer, 127.0.0.1, whatever X-Forwarded-For says); B trusts
one (the client is the last X-Forwarded-For entry). So each test here picks an
address of its own through B's header, and A's peer address is spent by one
kind of limit per test.

Proved: requests with bogus or missing credentials are refused with 429 once an
address has spent its budget (before: 700 bogus tokens all got 401); log-in
attempts are limited per address across e-mails; X-Forwarded-For is ignored at 0
trusted hops and used at 1; A and B spend one budget. And one cap on open sockets
per address for both (counted in Redis): a place freed on A is free on B, and the
places of a process that dies (A, killed last) run out on their own."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import httpx
import pytest

from tests.accounts import PASSWORD, create_account
from tests.api.support import assert_json_error
from tests.security.support import SocketRefused, Tab, run
from tests.server import engine_of, separate_app
from tests.unit.conftest import REDIS_URL

ANONYMOUS_PER_MINUTE = 5
LOGINS_PER_IP_PER_MINUTE = 4
SOCKETS_PER_IP = 3
SOCKET_CLAIM_SECONDS = 2


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """(A at 0 trusted hops, B at 1), one Redis budget."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("Redis is not running here")
    prefix = f"test-shared-limits-{uuid.uuid4().hex}"
    env = {"COURSE_REDIS_URL": REDIS_URL, "COURSE_RATE_LIMIT_KEY_PREFIX": prefix,
           "COURSE_ANONYMOUS_RATE_LIMIT": f"{ANONYMOUS_PER_MINUTE}/minute",
           "COURSE_LOGIN_IP_RATE_LIMIT": f"{LOGINS_PER_IP_PER_MINUTE}/minute",
           "COURSE_SOCKET_CONNECTIONS_PER_IP": str(SOCKETS_PER_IP),
           "COURSE_SOCKET_CLAIM_SECONDS": str(SOCKET_CLAIM_SECONDS)}
    with separate_app(tmp_path_factory, "limits-0-hops", {**env, "COURSE_TRUSTED_PROXY_HOPS": "0"}) as a, \
            separate_app(tmp_path_factory, "limits-1-hop", {**env, "COURSE_TRUSTED_PROXY_HOPS": "1"}) as b:
        yield a, b
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def _new_address() -> str:
    """A documentation address of this test's own (198.18.0.0/15, benchmark use)."""
    number = uuid.uuid4().int
    return f"198.{18 + number % 2}.{number // 2 % 256}.{number // 512 % 256}"


def _account(server) -> str:
    with engine_of(server) as engine:
        return create_account(engine).email


def assert_rate_limited(response: httpx.Response, what: str) -> None:
    assert f"Too many {what}" in assert_json_error(response, 429)
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "rate_limited" and response.json()["retryable"] is True


def _courses(server, *, address: str | None = None, token: str | None = "cst_" + "x" * 43) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"http://127.0.0.1:{server.port}/api/courses", headers=headers, timeout=30)


def _log_in(server, email: str, password: str = "wrong guess 123", *, address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    return httpx.post(f"http://127.0.0.1:{server.port}/api/auth/login", json={"email": email, "password": password},
                      headers=headers, timeout=30)


def test_bogus_tokens_from_one_address_are_429_after_its_budget(apps):
    _, b = apps
    address = _new_address()
    answers = [_courses(b, address=address) for _ in range(ANONYMOUS_PER_MINUTE)]
    assert [r.status_code for r in answers] == [401] * ANONYMOUS_PER_MINUTE

    refused = _courses(b, address=address)

    assert_rate_limited(refused, "unauthenticated")
    assert _courses(b, address=_new_address()).status_code == 401  # another address: its own budget


def test_missing_credentials_count_against_the_address_too(apps):
    _, b = apps
    address = _new_address()
    for _ in range(ANONYMOUS_PER_MINUTE):
        assert _courses(b, address=address, token=None).status_code == 401
    assert_rate_limited(_courses(b, address=address, token=None), "unauthenticated")
    bogus_cookie = httpx.get(f"{b.base_url}/api/courses", cookies={"cs_session": "ended-session"},
                             headers={"X-Forwarded-For": address}, timeout=30)
    assert_rate_limited(bogus_cookie, "unauthenticated")


def test_valid_credentials_are_served_from_an_address_over_its_budget(apps):
    """The budget is for failures: a logged-in user behind the same address still works."""
    _, b = apps
    address = _new_address()
    email = _account(b)
    with httpx.Client(base_url=b.base_url, headers={"X-Forwarded-For": address}, timeout=30) as http:
        assert http.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
        for _ in range(ANONYMOUS_PER_MINUTE + 1):
            _courses(b, address=address)
        assert http.get("/api/courses").status_code == 200


def test_log_in_attempts_are_limited_per_address_across_e_mails(apps):
    _, b = apps
    address = _new_address()
    for _ in range(LOGINS_PER_IP_PER_MINUTE):  # a different account each time: the per-account limit never bites
        assert_json_error(_log_in(b, f"{uuid.uuid4().hex[:10]}@example.com", address=address), 401)
    email = _account(b)

    refused = _log_in(b, email, PASSWORD, address=address)

    assert_rate_limited(refused, "log-in")
    assert "cs_session" not in str(refused.headers.get_list("set-cookie"))
    assert _log_in(b, email, PASSWORD, address=_new_address()).status_code == 200


def test_x_forwarded_for_is_ignored_at_zero_trusted_hops(apps):
    """A's client is its socket peer: a header naming a new address each time changes nothing."""
    a, _ = apps
    answers = [_courses(a, address=_new_address()) for _ in range(ANONYMOUS_PER_MINUTE + 1)]
    assert [r.status_code for r in answers[:ANONYMOUS_PER_MINUTE]] == [401] * ANONYMOUS_PER_MINUTE
    assert_rate_limited(answers[-1], "unauthenticated")


def test_two_processes_spend_one_budget(apps):
    """Half the log-in budget of 127.0.0.1 spent on A, half on B (told so by its
    trusted header): the next attempt on A is refused. Counted in each process's
    memory, A would have allowed twice as many."""
    a, b = apps
    half = LOGINS_PER_IP_PER_MINUTE // 2
    for _ in range(half):
        assert_json_error(_log_in(a, f"{uuid.uuid4().hex[:10]}@example.com"), 401)
    for _ in range(LOGINS_PER_IP_PER_MINUTE - half):
        assert_json_error(_log_in(b, f"{uuid.uuid4().hex[:10]}@example.com", address="127.0.0.1"), 401)

    assert_rate_limited(_log_in(a, f"{uuid.uuid4().hex[:10]}@example.com"), "log-in")
    assert_rate_limited(_log_in(b, f"{uuid.uuid4().hex[:10]}@example.com", address="127.0.0.1"), "log-in")


# Open sockets: one cap per address for every process ---------------------------------------
# Both apps see these sockets as 127.0.0.1 (no X-Forwarded-For: B has nothing to believe).


async def _connect(server) -> Tab | None:
    tab = Tab(server.base_url)
    try:
        await tab.connect("/login")
    except SocketRefused:
        return None
    return tab


async def _connect_within(server, seconds: float) -> tuple[Tab | None, float]:
    """Try again until a place is free (or ``seconds`` passed); answers the tab and the wait."""
    started = time.monotonic()
    while True:
        tab = await _connect(server)
        if tab is not None or time.monotonic() - started > seconds:
            return tab, time.monotonic() - started
        await asyncio.sleep(0.1)


async def _close(*tabs: Tab | None) -> None:
    for tab in tabs:
        if tab is not None:
            await tab.close()


def test_two_processes_share_one_cap_on_open_sockets(apps):
    """Two sockets on A and one on B fill the address's places: one more is refused by
    both; when one on A closes, B takes its place. Counted in each process, A and B
    would each have let three open."""
    a, b = apps

    async def scenario():
        held = [await _connect(a), await _connect(a), await _connect(b)]
        one_more = (await _connect(a), await _connect(b))
        await held[0].close()
        freed, _ = await _connect_within(b, 5)
        await _close(*held[1:], *one_more, freed)
        return held, one_more, freed

    held, one_more, freed = run(scenario())

    assert all(held), "three places for the address"
    assert one_more == (None, None), "the fourth socket is refused by either process"
    assert freed is not None, "a socket closed on A frees a place on B"


def test_a_process_that_dies_frees_its_places_within_the_claims_lifetime(apps):
    """Runs last: A is killed (SIGKILL: it gives nothing back) with three sockets open,
    and B refuses a fourth until A's claims run out, then lets it in."""
    a, b = apps

    async def scenario():
        held = [await _connect(a) for _ in range(SOCKETS_PER_IP)]
        refused = await _connect(b)
        os.killpg(a.process.pid, signal.SIGKILL)
        a.process.wait(timeout=10)
        tab, waited = await _connect_within(b, SOCKET_CLAIM_SECONDS * 5)
        await _close(tab, refused)
        for dead in held:
            await dead.close()
        return held, refused, tab, waited

    held, refused, tab, waited = run(scenario())

    assert all(held) and refused is None
    assert tab is not None, f"A's places were not freed within {waited:.1f}s"
    assert waited <= SOCKET_CLAIM_SECONDS + 2, waited
