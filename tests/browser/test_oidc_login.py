"""Sign-in through an OpenID Connect provider, as people do it, in a real headless Chromium.

The hub runs with MLHUB_AUTHENTICATOR=oidc against a real provider (tests/support/oidc.py,
oidc-provider on this machine; fixture ``oidc_platform`` in tests/conftest.py): allowed group
``ml-team``, admin group ``hub-admins``.

- olivia (ml-team) clicks "Sign in with single sign-on", signs in and consents at the
  provider, comes back to the hub and her JupyterLab loads; she is a user, not an admin, and
  the hub group ml-team was made from her groups claim.
- mallory (marketing) signs in at the provider and the hub refuses her with 403 and a message
  saying who may use the hub; no hub user is created for her.
- adam (ml-team, hub-admins) signs in and gets the admin page; he is an admin, and the hub
  groups ml-team and hub-admins hold the right members.
- olivia signs out; afterwards the hub sends her to the login page.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, Response, expect

from tests.conftest import OIDC_ACCOUNTS, record
from tests.support.hubapi import quote

pytestmark = [pytest.mark.browser, pytest.mark.docker]

# Deadlines (milliseconds) for Playwright waits.
PAGE_MS = 30_000
SPAWN_MS = 240_000  # container start + JupyterLab's first load on a small machine
STOP_S = 120

SSO_LINK = "a[href^='/hub/oauth_login']"


# --------------------------------------------------------------------- helpers


def stop_all_servers(p) -> list[str]:
    """Stop every server the hub knows of (any user); return 'user/server' stopped."""
    r = p.hub.api(p.admin_token, "GET", "/users", params={"state": "active"})
    r.raise_for_status()
    stopped = []
    for model in r.json():
        for server in model.get("servers") or {}:
            p.hub.stop_server(p.admin_token, model["name"], server, timeout=STOP_S)
            stopped.append(f"{model['name']}/{server}")
    return stopped


@pytest.fixture(scope="module", autouse=True)
def _stop_servers_at_end(oidc_platform):
    yield
    stopped = stop_all_servers(oidc_platform)
    print(f"\nstopped at the end: {stopped}")


def user_model(p, name: str):
    return p.hub.api(p.admin_token, "GET", f"/users/{quote(name)}")


def click_sso_link(page: Page) -> None:
    """On the hub's login page: the provider's button is a link to /hub/oauth_login."""
    link = page.locator(SSO_LINK)
    expect(link).to_be_visible(timeout=PAGE_MS)
    expect(link).to_have_text("Sign in with single sign-on")
    link.click()


def sign_in_at_provider(page: Page, idp, login: str) -> None:
    """The provider's login form, then its consent form (a fresh browser context has no
    grant yet, so consent is always asked). Returns once consent is submitted."""
    page.wait_for_url(lambda url: url.startswith(idp.issuer + "/interaction/"), timeout=PAGE_MS)
    form = page.locator("form:has(input[name=prompt][value=login])")
    expect(form).to_be_visible(timeout=PAGE_MS)
    form.locator("input[name=login]").fill(login)
    form.locator("input[name=password]").fill(OIDC_ACCOUNTS[login]["password"])
    form.locator("button[type=submit]").click()
    consent = page.locator("form:has(input[name=prompt][value=consent]) button[type=submit]")
    expect(consent).to_be_visible(timeout=PAGE_MS)
    consent.click()


def record_responses(page: Page, fragment: str) -> list[Response]:
    seen: list[Response] = []
    page.on("response", lambda r: seen.append(r) if fragment in r.url else None)
    return seen


# --------------------------------------------------------------------- tests


def test_member_signs_in_and_gets_jupyterlab(oidc_platform, new_page):
    p, idp = oidc_platform, oidc_platform.idp
    base = p.stack.url
    olivia = new_page("olivia")

    olivia.goto(f"{base}/hub/")
    olivia.wait_for_url(re.compile(rf"{re.escape(base)}/hub/login"), timeout=PAGE_MS)
    t0 = time.monotonic()
    click_sso_link(olivia)
    sign_in_at_provider(olivia, idp, "olivia")
    # Back at the hub: the callback signs her in, then /hub/ starts her server
    # (redirect_to_server) and sends her to JupyterLab once it is up.
    olivia.wait_for_url(lambda url: url.startswith(base + "/"), timeout=PAGE_MS)
    olivia.wait_for_url(re.compile(rf"{re.escape(base)}/user/olivia/lab"), timeout=SPAWN_MS)
    expect(olivia.locator("#jp-main-dock-panel")).to_be_attached(timeout=SPAWN_MS)
    expect(olivia.locator(".jp-LabShell")).to_be_visible(timeout=SPAWN_MS)
    expect(olivia.locator("#jp-main-dock-panel .lm-TabBar-tab").first).to_be_visible(timeout=SPAWN_MS)
    seconds = time.monotonic() - t0
    record(f"browser: OIDC sign-in click to JupyterLab loaded (incl. spawn): {seconds:.1f} s")

    r = user_model(p, "olivia")
    assert r.status_code == 200, r.text
    model = r.json()
    assert model["admin"] is False, model
    assert "ml-team" in model["groups"], model
    assert "hub-admins" not in model["groups"], model
    assert (model.get("servers") or {}).get("", {}).get("ready"), model
    g = p.hub.api(p.admin_token, "GET", "/groups/ml-team")
    assert g.status_code == 200, g.text  # the hub group was created from the groups claim
    assert "olivia" in g.json()["users"], g.json()

    # A member is not an admin: the admin page is refused.
    resp = olivia.goto(f"{base}/hub/admin")
    assert resp is not None and resp.status == 403, (resp and resp.status, olivia.url)


def test_non_member_is_refused_with_reason(oidc_platform, new_page):
    p, idp = oidc_platform, oidc_platform.idp
    base = p.stack.url
    mallory = new_page("mallory")
    callbacks = record_responses(mallory, "/hub/oauth_callback")

    mallory.goto(f"{base}/hub/login")
    click_sso_link(mallory)
    sign_in_at_provider(mallory, idp, "mallory")
    mallory.wait_for_url(re.compile(rf"{re.escape(base)}/hub/oauth_callback"), timeout=PAGE_MS)
    main = mallory.locator("body")
    expect(main).to_contain_text("your account may not use this hub", timeout=PAGE_MS)
    expect(main).to_contain_text("members of ml-team")
    expect(mallory.locator("h1")).to_contain_text("403")
    assert callbacks, "no response from /hub/oauth_callback was seen"
    assert callbacks[-1].status == 403, [(c.url, c.status) for c in callbacks]
    assert not any(c["name"] == "jupyterhub-session-id" for c in mallory.context.cookies()), (
        "a refused sign-in must not leave a hub session"
    )
    # the provider did authenticate her: the refusal is the hub's
    assert 'login accepted for "mallory"' in idp.log_text()

    r = user_model(p, "mallory")
    assert r.status_code == 404, (r.status_code, r.text)
    assert not [c for c in p.stack.notebook_containers() if "mallory" in c["Names"]]


def test_admin_group_member_gets_admin_page(oidc_platform, new_page):
    p, idp = oidc_platform, oidc_platform.idp
    base = p.stack.url
    adam = new_page("adam")

    # Asking for the admin page first: the login link carries next=/hub/admin.
    adam.goto(f"{base}/hub/admin")
    adam.wait_for_url(re.compile(rf"{re.escape(base)}/hub/login"), timeout=PAGE_MS)
    click_sso_link(adam)
    sign_in_at_provider(adam, idp, "adam")
    adam.wait_for_url(re.compile(rf"{re.escape(base)}/hub/admin"), timeout=PAGE_MS)
    # The React admin UI rendered: its "Manage Groups" button and the users table.
    expect(adam.get_by_role("button", name="Manage Groups")).to_be_visible(timeout=PAGE_MS)
    expect(adam.locator("tr[data-testid='user-row-adam']")).to_be_visible(timeout=PAGE_MS)

    r = user_model(p, "adam")
    assert r.status_code == 200, r.text
    model = r.json()
    assert model["admin"] is True, model
    assert {"ml-team", "hub-admins"} <= set(model["groups"]), model

    groups = {}
    for name in ("ml-team", "hub-admins"):
        g = p.hub.api(p.admin_token, "GET", f"/groups/{name}")
        assert g.status_code == 200, (name, g.status_code, g.text)
        groups[name] = set(g.json()["users"])
    assert "adam" in groups["ml-team"], groups
    assert groups["hub-admins"] == {"adam"}, groups
    if user_model(p, "olivia").status_code == 200:  # after the first test
        assert "olivia" in groups["ml-team"], groups
    assert "mallory" not in groups["ml-team"] | groups["hub-admins"], groups


def test_sign_out_ends_the_session(oidc_platform, new_page):
    p, idp = oidc_platform, oidc_platform.idp
    base = p.stack.url
    olivia = new_page("olivia")

    olivia.goto(f"{base}/hub/home")
    olivia.wait_for_url(re.compile(rf"{re.escape(base)}/hub/login"), timeout=PAGE_MS)
    click_sso_link(olivia)
    sign_in_at_provider(olivia, idp, "olivia")
    olivia.wait_for_url(re.compile(rf"{re.escape(base)}/hub/home"), timeout=PAGE_MS)
    assert any(c["name"] == "jupyterhub-session-id" for c in olivia.context.cookies())

    logout = olivia.locator("a#logout")
    expect(logout).to_be_visible(timeout=PAGE_MS)
    expect(logout).to_have_attribute("href", "/hub/logout")
    logout.click()
    olivia.wait_for_url(re.compile(rf"{re.escape(base)}/hub/login"), timeout=PAGE_MS)
    expect(olivia.locator(SSO_LINK)).to_be_visible(timeout=PAGE_MS)
    assert not any(c["name"] == "jupyterhub-session-id" for c in olivia.context.cookies()), (
        olivia.context.cookies()
    )

    # No session any more: the hub's pages send her to the login page.
    olivia.goto(f"{base}/hub/home")
    olivia.wait_for_url(re.compile(rf"{re.escape(base)}/hub/login\?next=%2Fhub%2Fhome"), timeout=PAGE_MS)
    expect(olivia.locator(SSO_LINK)).to_be_visible(timeout=PAGE_MS)
