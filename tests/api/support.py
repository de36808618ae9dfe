"""Checks every API test makes about responses."""

from __future__ import annotations

import httpx


def assert_json_error(response: httpx.Response, status: int) -> str:
    """The response is ``status`` with a JSON body ``{"error": "<message>"}``
    and nothing internal in it; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and "error" in body, body
    assert isinstance(body["error"], str) and body["error"].strip()
    assert_no_internals(response)
    return body["error"]


def assert_no_internals(response: httpx.Response) -> None:
    text = response.text
    for leak in ("Traceback", 'File "/', "sqlalchemy", "sqlite3.", "psycopg", "IntegrityError"):
        assert leak not in text, f"{leak!r} in response body: {text[:500]}"


def set_cookie(response: httpx.Response, name: str) -> tuple[str, dict[str, str]]:
    """The one Set-Cookie header for ``name``: (value, {attribute: value})."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.split("=", 1)[0].strip() == name]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    first, *attributes = [part.strip() for part in headers[0].split(";")]
    value = first.split("=", 1)[1]
    parsed = {}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key.strip().lower()] = val.strip()
    return value, parsed


def has_set_cookie(response: httpx.Response) -> bool:
    return bool(response.headers.get_list("set-cookie"))
