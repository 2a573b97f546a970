"""Signing out of the hub signs out of the hub services (Airflow, models) too.

The hub's logout page loads each service's logout URL before going on to the
hub's login page; afterwards neither service lets the browser in without
signing in to the hub again.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.docker]

PAGE_MS = 60_000


def test_hub_logout_signs_out_of_airflow_and_models(airflow_platform, new_page):
    p = airflow_platform
    base = p.stack.url
    page = new_page("admin")
    page.goto(f"{base}/hub/login?next=/hub/home")
    page.locator("#username_input").fill("admin")
    page.locator("#password_input").fill(p.admin_password)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(r"/hub/home"), timeout=PAGE_MS)

    # signed in to both services through the hub (Airflow's UI loads, gets a
    # 401 from its API, signs in through the hub and comes back)
    page.goto(f"{base}/services/airflow/")
    expect(page.get_by_text("Dag Processor")).to_be_visible(timeout=PAGE_MS)  # health panel
    cookies = {c["name"] for c in page.context.cookies()}
    assert "_token" in cookies, cookies  # Airflow's own session (JWT)
    page.goto(f"{base}/services/models/")
    expect(page.locator("h1")).to_have_text("Models", timeout=PAGE_MS)

    page.goto(f"{base}/hub/home")
    page.locator("a#logout").click()
    page.wait_for_url(re.compile(r"/hub/login"), timeout=PAGE_MS)
    names = {c["name"] for c in page.context.cookies()}
    assert "_token" not in names, names  # Airflow's session is gone too

    # neither service lets the browser back in without the hub's login
    page.goto(f"{base}/services/airflow/")
    page.wait_for_url(re.compile(r"/hub/login"), timeout=PAGE_MS)  # via Airflow's login
    page.goto(f"{base}/services/models/")
    page.wait_for_url(re.compile(r"/hub/login"), timeout=PAGE_MS)
