"""Personal API tokens on the settings page, in a real browser, used by a script."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import sign_up, wait_live


def test_create_use_and_revoke_a_token(page: Page, base_url):
    email = sign_up(page, base_url)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    wait_live(page)
    expect(page.get_by_text("You have no API tokens.")).to_be_visible()

    page.get_by_label("Token name").fill("upload script")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_text("Copy your new token now")).to_be_visible()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("cst_")
    me = httpx.get(f"{base_url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["email"] == email

    page.get_by_role("button", name="Done").click()
    expect(page.get_by_text("Copy your new token now")).to_have_count(0)
    expect(page.get_by_role("cell", name="upload script", exact=True)).to_be_visible()

    page.get_by_role("button", name="Revoke token upload script").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Revoke token").click()
    expect(page.get_by_text("You have no API tokens.")).to_be_visible()
    assert httpx.get(f"{base_url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    page.reload()
    wait_live(page)
    expect(page.get_by_text("You have no API tokens.")).to_be_visible()
