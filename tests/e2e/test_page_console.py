"""Every page loads without a browser console error (the favicon and logo exist)
and without a Content-Security-Policy violation: the production build runs with
the app's CSP on (each document answer is checked for it), and both the console
and the page's `securitypolicyviolation` events must stay empty, on the log-in,
sign-up, dashboard, editor (with a video playing), settings and not-found pages."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import create_course, open_editor, seed_course, sign_up, wait_live

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
"""


def test_pages_load_without_console_errors_or_csp_violations(page: Page, base_url, clip):
    errors: list[str] = []
    documents: list[str] = []
    violations: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)

    def on_document(response) -> None:
        if response.request.resource_type == "document":
            csp = response.headers.get("content-security-policy", "")
            documents.append(response.url if "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
                             else f"NO CSP: {response.url}")

    page.on("response", on_document)

    def visited(name: str) -> None:
        wait_live(page)
        violations.extend(f"{name}: {v}" for v in page.evaluate("window.__cspViolations"))

    page.goto(f"{base_url}/login")
    visited("log-in")
    expect(page.get_by_role("img", name="")).to_have_count(0)  # the logo is decorative (empty alt)
    sign_up(page, base_url)
    visited("dashboard")
    create_course(page, "Quiet course")
    visited("new course's editor")
    page.reload()
    visited("editor, reloaded")
    made = seed_course(page, base_url, "Course with a video", {"Intro": ["welcome"]}, clip)
    open_editor(page, base_url, made["course"])
    page.get_by_role("button", name="Play welcome").click()
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1; }")
    visited("editor, playing a video")
    page.goto(f"{base_url}/settings")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    visited("settings")
    assert errors == []
    page.goto(f"{base_url}/no-such-page")  # its own 404 is the one expected error
    page.wait_for_load_state("networkidle")
    violations.extend(f"not found: {v}" for v in page.evaluate("window.__cspViolations"))

    assert violations == []
    assert not [e for e in errors if "Content Security Policy" in e], errors
    assert documents and not [d for d in documents if d.startswith("NO CSP")], documents


def test_a_script_the_policy_does_not_name_is_refused_and_reported(browser, base_url):
    """The control for the checks above (and the suite-wide one in conftest.py): an
    inline script injected into a page is refused and reported in the console. Its
    own context, so conftest's check does not count this expected violation."""
    context = browser.new_context()
    page = context.new_page()
    reports: list[str] = []
    page.on("console", lambda message: reports.append(message.text) if "Content Security Policy" in message.text
            else None)
    page.goto(f"{base_url}/login")
    wait_live(page)
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                  " document.body.appendChild(s); }")
    expect(page.locator("#hydrated")).to_have_text("true")

    assert page.evaluate("() => window.injected") is None
    context.close()
    assert reports and "script-src" in reports[0]
