"""Opening Airflow from the hub, single sign-on, in a real headless Chromium.

On the whole compose stack (``airflow_platform``; MLHUB_AIRFLOW_GROUP=airflow-users,
MLHUB_AIRFLOW_OP_GROUP=airflow-ops, default role User). People as in
tests/integration/test_airflow.py: ada (airflow-users -> Airflow User), admin (hub
admin -> Airflow Admin), nora (in no Airflow group).

  * an anonymous visitor of /services/airflow/ ends at the hub's login form;
  * ada signs in to the hub with the login form, opens the navbar's Services menu on
    /hub/home and clicks "airflow": Airflow's UI loads signed in as ada (its user menu
    says so), without any Airflow login form; she has no Admin or Security menu;
  * admin does the same and has Airflow's Admin and Security menus;
  * nora's Services menu has no Airflow entry (the hub lists only the services a user
    may open); opening /services/airflow/ anyway (a shared link) ends at the hub's
    403 page, and Airflow never signs her in.
"""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import record
from tests.integration.test_airflow import PASSWORDS, ensure_people

pytestmark = [pytest.mark.browser, pytest.mark.docker]

PREFIX = "/services/airflow"
PAGE_MS = 30_000
AIRFLOW_MS = 60_000  # OAuth round trip + Airflow's UI first load


def hub_login(page: Page, base: str, username: str, password: str) -> None:
    """The hub's login form, asked to go to /hub/home afterwards (no server spawn)."""
    page.goto(f"{base}/hub/login?next={urllib.parse.quote('/hub/home', safe='')}")
    page.locator("#username_input").fill(username)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(r"/hub/home$"), timeout=PAGE_MS)


def services_menu(page: Page):
    """Open the navbar's Services dropdown; return its menu."""
    page.locator("#thenavbar").get_by_role("button", name="Services").click()
    menu = page.locator("#thenavbar .dropdown-menu")
    expect(menu).to_be_visible(timeout=PAGE_MS)
    return menu


def open_airflow_from_the_menu(page: Page, base: str) -> float:
    """Click Services -> airflow on /hub/home; wait until Airflow's UI is loaded after
    the SSO round trip. Returns the seconds from the click."""
    menu = services_menu(page)
    link = menu.get_by_role("link", name="airflow", exact=True)
    expect(link).to_have_attribute("href", f"{PREFIX}/")
    t0 = time.monotonic()
    # the UI sends the browser through the hub's OAuth authorization back to Airflow
    with page.expect_response(lambda r: f"{PREFIX}/auth/oauth-authorized/jupyterhub" in r.url,
                              timeout=AIRFLOW_MS):
        link.click()
    sidebar = page.get_by_test_id("nav-sidebar")
    expect(sidebar.get_by_test_id("nav-dags-link")).to_be_visible(timeout=AIRFLOW_MS)
    # Browse is one of the menus the auth manager grants: the user's menus are loaded
    expect(sidebar.locator('[aria-label="Browse"]')).to_be_visible(timeout=AIRFLOW_MS)
    seconds = time.monotonic() - t0
    assert urllib.parse.urlsplit(page.url).path.startswith(f"{PREFIX}/"), page.url
    return seconds


def signed_in_as(page: Page, name: str) -> None:
    page.get_by_test_id("nav-sidebar").locator('[aria-label="User"]').click()
    menu = page.get_by_role("menu")
    # "Signed in as" and the name are separate elements: no space between them in the text
    expect(menu).to_contain_text(re.compile(rf"Signed in as\s*{re.escape(name)} \(id: \d+\)"), timeout=PAGE_MS)
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden(timeout=PAGE_MS)


def test_open_airflow_from_the_hub_signed_in_as_yourself(airflow_platform, new_page):
    p = airflow_platform
    base = p.stack.url
    ensure_people(p)
    seconds = {}

    # 0. anonymous: Airflow's app sends the visitor to the hub's login form ----------
    anon = new_page("anonymous")
    anon.goto(f"{base}{PREFIX}/")
    anon.wait_for_url(re.compile(r"/hub/login\?"), timeout=AIRFLOW_MS)
    expect(anon.locator("#username_input")).to_be_visible()
    assert "client_id%3Dservice-airflow" in anon.url, anon.url

    # 1. ada: hub login, Services -> airflow, Airflow signed in as ada (User) -----------
    ada = new_page("ada")
    hub_login(ada, base, "ada", PASSWORDS["ada"])
    seconds["ada"] = open_airflow_from_the_menu(ada, base)
    signed_in_as(ada, "ada")
    sidebar = ada.get_by_test_id("nav-sidebar")
    expect(sidebar.locator('[aria-label="Admin"]')).to_have_count(0)
    expect(sidebar.locator('[aria-label="Security"]')).to_have_count(0)
    assert any(c["name"] == "_token" for c in ada.context.cookies()), "Airflow set no _token for ada"
    # her DAG list opens (the app talks to the API with her sign-in)
    sidebar.get_by_test_id("nav-dags-link").click()
    expect(ada.get_by_text("mlhub_retrain_publish_validate").first).to_be_visible(timeout=PAGE_MS)

    # 2. admin: the same, with Airflow's Admin and Security menus ----------------------
    admin = new_page("admin")
    hub_login(admin, base, "admin", p.admin_password)
    seconds["admin"] = open_airflow_from_the_menu(admin, base)
    signed_in_as(admin, "admin")
    sidebar = admin.get_by_test_id("nav-sidebar")
    expect(sidebar.locator('[aria-label="Admin"]')).to_be_visible()
    expect(sidebar.locator('[aria-label="Security"]')).to_be_visible()
    sidebar.locator('[aria-label="Admin"]').click()
    admin_menu = admin.get_by_role("menu")
    expect(admin_menu).to_contain_text("Connections", timeout=PAGE_MS)
    expect(admin_menu).to_contain_text("Variables")
    admin.keyboard.press("Escape")

    record("airflow (browser): click Services -> airflow to Airflow's UI signed in: "
           + ", ".join(f"{n} {t:.2f} s" for n, t in seconds.items()))

    # 3. nora: no Airflow in her Services menu; the address itself -> the hub's 403 ----
    nora = new_page("nora")
    hub_login(nora, base, "nora", PASSWORDS["nora"])
    menu = services_menu(nora)
    expect(menu.get_by_role("link", name="models", exact=True)).to_be_visible()
    expect(menu.get_by_role("link", name="airflow", exact=True)).to_have_count(0)
    nora.keyboard.press("Escape")
    with nora.expect_response(lambda r: "/hub/api/oauth2/authorize" in r.url, timeout=AIRFLOW_MS) as refused:
        nora.goto(f"{base}{PREFIX}/")
    assert refused.value.status == 403, (refused.value.status, refused.value.url)
    expect(nora.locator("div.error h1")).to_contain_text("403", timeout=PAGE_MS)
    expect(nora.locator("div.error")).to_contain_text(
        "You do not have permission to access JupyterHub service airflow")
    assert urllib.parse.urlsplit(nora.url).path == "/hub/api/oauth2/authorize", nora.url
    assert not any(c["name"] == "_token" for c in nora.context.cookies()), "Airflow signed nora in"
