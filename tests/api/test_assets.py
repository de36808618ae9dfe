"""The app's own static files: the favicon every page asks for, and the logo."""

from __future__ import annotations


def test_the_favicon_and_the_logo_are_served(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    logo = client.get("/logo.svg")
    assert logo.status_code == 200
    assert b"<svg" in logo.content

