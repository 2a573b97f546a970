"""Sign-up, approval and first spawn, as people do it, in a real headless Chromium.

carol signs up at /hub/signup and is told her request went to the admin; her
login is refused until the admin approves her at /hub/authorize (in another
browser context, by clicking); then she logs in, her server starts and
JupyterLab loads at /user/carol/lab.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import record

pytestmark = [pytest.mark.browser, pytest.mark.docker]

CAROL = "carol"
CAROL_PASSWORD = "Tangerine-Lighthouse-47!"  # 24 chars, not in the common-password list

# Deadlines (milliseconds) for Playwright waits.
PAGE_MS = 30_000
SPAWN_MS = 240_000  # container start + JupyterLab's first load on a 2-core machine


def login(page: Page, base: str, username: str, password: str) -> None:
    """Fill and submit the hub's login form (does not wait for the result)."""
    page.goto(f"{base}/hub/login")
    page.locator("#username_input").fill(username)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()


def stop_server_if_any(platform, name: str) -> None:
    hub = platform.hub
    r = hub.api(platform.admin_token, "GET", f"/users/{name}")
    if r.status_code == 200 and r.json().get("servers", {}).get(""):
        hub.stop_server(platform.admin_token, name)


def test_signup_approval_and_first_spawn(platform, new_page):
    base = platform.stack.url
    carol = new_page("carol")
    admin = new_page("admin")

    try:
        # 1. carol signs up -------------------------------------------------
        carol.goto(f"{base}/hub/signup")
        expect(carol.locator(".auth-form-header")).to_contain_text("Sign Up", timeout=PAGE_MS)
        carol.locator("#username_input").fill(CAROL)
        carol.locator("#password_input").fill(CAROL_PASSWORD)
        confirm = carol.locator("#password_confirmation_input")
        if confirm.count():
            confirm.fill(CAROL_PASSWORD)
        carol.locator("#signup_submit").click()
        alert = carol.locator("div.alert[role=alert]")
        expect(alert).to_be_visible(timeout=PAGE_MS)
        # Approval mode: the request went to the admin, it is not a success yet.
        expect(alert).to_have_class(re.compile(r"\balert-info\b"))
        expect(alert).to_contain_text("Your information has been sent to the admin")

        # ... and she cannot log in before approval, with a message saying why.
        login(carol, base, CAROL, CAROL_PASSWORD)
        refusal = carol.locator("p.login_error")
        expect(refusal).to_be_visible(timeout=PAGE_MS)
        expect(refusal).to_contain_text(f"User {CAROL} has not been authorized by an administrator yet")
        assert "/hub/login" in carol.url, carol.url
        assert not any(c["name"] == "jupyterhub-session-id" for c in carol.context.cookies()), (
            "a refused login must not leave a hub session"
        )

        # 2. the admin approves her, by clicking, in another browser context -
        login(admin, base, "admin", platform.admin_password)
        admin.wait_for_url(re.compile(r"/(hub|user)/"), timeout=PAGE_MS)
        admin.goto(f"{base}/hub/authorize")
        expect(admin.locator("h1")).to_have_text("Authorization area", timeout=PAGE_MS)
        row = admin.locator("tbody tr", has=admin.locator("td", has_text=re.compile(rf"^{CAROL}$")))
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(2)).to_have_text("No")
        row.get_by_role("button", name="Authorize", exact=True).click()
        admin.wait_for_url(re.compile(r"/hub/authorize(#.*)?$"), timeout=PAGE_MS)
        expect(row.locator("td").nth(2)).to_have_text("Yes", timeout=PAGE_MS)
        expect(row.get_by_role("button", name="Unauthorize", exact=True)).to_be_visible()

        # 3. carol logs in and her server starts ------------------------------
        login(carol, base, CAROL, CAROL_PASSWORD)
        # With redirect_to_server (JupyterHub default) the login itself starts the
        # spawn (-> /hub/spawn-pending/carol), so the clock starts at the submit.
        t0 = time.monotonic()
        carol.wait_for_url(re.compile(r"/(hub/home|hub/spawn|hub/spawn-pending|user/carol)"), timeout=PAGE_MS)
        print(f"after login carol landed on {carol.url}")
        if "/hub/home" in carol.url:
            start = carol.locator("#start")
            expect(start).to_be_visible(timeout=PAGE_MS)
            expect(start).to_contain_text("Start My Server")
            start.click()
            t0 = time.monotonic()
        carol.wait_for_url(re.compile(rf"{re.escape(base)}/user/{CAROL}/lab"), timeout=SPAWN_MS)
        shell = carol.locator("#jp-main-dock-panel")
        expect(shell).to_be_attached(timeout=SPAWN_MS)
        expect(carol.locator(".jp-LabShell")).to_be_visible(timeout=SPAWN_MS)
        # Loaded means usable: the launcher (or a restored document) is in the dock.
        expect(carol.locator("#jp-main-dock-panel .lm-TabBar-tab").first).to_be_visible(timeout=SPAWN_MS)
        seconds = time.monotonic() - t0
        record(f"browser: start click to JupyterLab loaded: {seconds:.1f} s")

        assert re.match(rf"{re.escape(base)}/user/{CAROL}/lab", carol.url), carol.url
        model = platform.hub.server_model(platform.admin_token, CAROL)
        assert model and model.get("ready"), model
    finally:
        # 4. leave nothing running for other tests.
        stop_server_if_any(platform, CAROL)
