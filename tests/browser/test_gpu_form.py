"""The spawn form's GPU choices, refusal and start, in a real headless Chromium.

This runs on the ``gpu_platform`` stack, whose GPU inventory is a STAND-IN of 4
GPUs ("0".."3", listed in MLHUB_GPUS; the engine has no real GPU). The test
checks ALLOCATION AND WIRING as a user sees them in the browser (free counts,
who holds what, refusal of a request past what is free, the GPU id handed to
the container), NOT that a GPU computes anything.

Scenario: quinn holds 2 GPUs and rosa 1 (started through the REST API), so 1
of 4 is free. olga (group ``form-team``, gpu_quota 4) logs in and sees "1 of 4
free", who holds the rest, and choices above 1 marked "(only 1 free now)".
Asking for 2 is refused on the form with who holds what, and no container is
created; asking for 1 starts JupyterLab. pete, in another browser context,
then sees "0 of 4 free".

The GPU stack is shared with tests/integration/test_gpus.py, which may leave
servers holding GPUs: the test stops every running server first.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.hubapi import HubError, quote, sign_up_and_approve

pytestmark = [pytest.mark.browser, pytest.mark.docker]

GROUP = "form-team"
PASSWORDS = {
    "olga": "Marigold-Anchor-Falcon-62!",
    "pete": "Cobalt-Harbour-Thistle-19!",
}
GPU_IDS = ["0", "1", "2", "3"]
GPU_LABEL = "org.mlhub.gpus"

# Deadlines (milliseconds) for Playwright waits.
PAGE_MS = 30_000
SPAWN_MS = 240_000  # container start + JupyterLab's first load on a small machine
STOP_S = 120


# --------------------------------------------------------------------- helpers


def stop_all_servers(p) -> list[str]:
    """Stop every server the hub knows of (any user); return 'user/server' stopped."""
    r = p.hub.api(p.admin_token, "GET", "/users", params={"state": "active"})
    r.raise_for_status()
    stopped = []
    for model in r.json():
        for server in (model.get("servers") or {}):
            p.hub.stop_server(p.admin_token, model["name"], server, timeout=STOP_S)
            stopped.append(f"{model['name']}/{server}")
    return stopped


def gpu_holding_containers(stack) -> dict[str, str]:
    """Notebook containers of the project whose GPU label is set: name -> ids."""
    out = {}
    for c in stack.notebook_containers():
        info = stack.container(c["Names"])
        if info is None:  # removed meanwhile
            continue
        ids = (info["Config"].get("Labels") or {}).get(GPU_LABEL, "")
        if ids and info["State"].get("Status") in ("created", "running", "restarting", "paused"):
            out[c["Names"]] = ids
    return out


def wait_no_gpu_held(stack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        held = gpu_holding_containers(stack)
        if not held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"GPUs still held after stopping every server: {held}")
        time.sleep(0.5)


def login(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/hub/login")
    page.locator("#username_input").fill(username)
    page.locator("#password_input").fill(password)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(r"/(hub/(?!login)|user/)"), timeout=PAGE_MS)


def open_spawn_form(page: Page, base: str, user: str) -> None:
    """After login: the hub shows the form itself (redirect_to_server) or the home page."""
    if "/hub/spawn" not in page.url:
        page.goto(f"{base}/hub/spawn/{quote(user)}")
    expect(page.locator("#spawn_form #mlhub-gpus")).to_be_visible(timeout=PAGE_MS)


def holder_rows(page: Page):
    return page.locator("#mlhub-gpu-holders li")


# --------------------------------------------------------------------- the test


def test_gpu_choices_refusal_and_start_in_the_browser(gpu_platform, new_page):
    p = gpu_platform
    s = p.stack
    base = s.url
    hub = p.hub
    started: list[str] = []

    # 0. start from 4 free GPUs, whatever earlier tests left running ------------
    stop_all_servers(p)
    wait_no_gpu_held(s)

    try:
        # 1. group with quota 4, olga and pete in it, with passwords ---------------
        r = hub.api(p.admin_token, "POST", f"/groups/{GROUP}")
        assert r.status_code in (201, 409), r.text
        r = hub.api(p.admin_token, "PUT", f"/groups/{GROUP}/properties", json={"gpu_quota": 4})
        assert r.status_code == 200, r.text
        for name in ("olga", "pete", "quinn", "rosa"):
            p.user(name)  # hub user + API token
        r = hub.api(p.admin_token, "POST", f"/groups/{GROUP}/users",
                    json={"users": ["olga", "pete", "quinn"]})
        assert r.status_code == 200, r.text
        for name, password in PASSWORDS.items():
            sign_up_and_approve(p.hub, p.admin_password, name, password)

        # 2. quinn takes 2 GPUs, rosa (default quota 1) takes 1: 1 of 4 free -----
        started.append("quinn")
        hub.start_server(p.user("quinn"), "quinn", options={"gpus": 2}, timeout=SPAWN_MS / 1000)
        started.append("rosa")
        hub.start_server(p.user("rosa"), "rosa", options={"gpus": 1}, timeout=SPAWN_MS / 1000)
        held = gpu_holding_containers(s)
        quinn_ids = held[f"{s.project}-nb-quinn"].split(",")
        rosa_ids = held[f"{s.project}-nb-rosa"].split(",")
        assert len(quinn_ids) == 2 and len(rosa_ids) == 1, held
        free = sorted(set(GPU_IDS) - set(quinn_ids) - set(rosa_ids))
        assert len(free) == 1, held
        free_id = free[0]

        # 3. olga logs in and sees the form with live counts ----------------------
        olga = new_page("olga")
        login(olga, base, "olga", PASSWORDS["olga"])
        print(f"after login olga landed on {olga.url}")
        open_spawn_form(olga, base, "olga")
        expect(olga.locator("#mlhub-free-gpus")).to_have_text("1 of 4 free")
        expect(olga.locator("#mlhub-gpus option")).to_have_text([
            "None (CPU only)",
            "1 GPU",
            "2 GPUs (only 1 free now)",
            "3 GPUs (only 1 free now)",
            "4 GPUs (only 1 free now)",
        ])
        rows = holder_rows(olga)
        expect(rows).to_have_count(4)
        for gid in quinn_ids:
            expect(rows.nth(GPU_IDS.index(gid))).to_have_text(re.compile(rf"^GPU {gid}\b.*: quinn$"))
        for gid in rosa_ids:
            expect(rows.nth(GPU_IDS.index(gid))).to_have_text(re.compile(rf"^GPU {gid}\b.*: rosa$"))
        expect(rows.nth(GPU_IDS.index(free_id))).to_have_text(re.compile(rf"^GPU {free_id}\b.*: free$"))

        # 4. 2 GPUs: refused on the form, no container ----------------------------
        olga.locator("#mlhub-gpus").select_option("2")
        olga.locator("#spawn_form button[type=submit]").click()
        error = olga.locator(".spawn-error-msg")
        expect(error).to_be_visible(timeout=PAGE_MS)
        expect(error).to_contain_text("1 free")
        expect(error).to_contain_text("quinn")
        expect(error).to_contain_text("rosa")
        assert "/hub/spawn" in olga.url, olga.url  # still on the form
        expect(olga.locator("#spawn_form #mlhub-gpus")).to_be_visible()
        expect(olga.locator("#mlhub-free-gpus")).to_have_text("1 of 4 free")
        assert s.container(f"{s.project}-nb-olga") is None
        assert hub.server_model(p.admin_token, "olga") is None

        # 5. 1 GPU: JupyterLab loads, with exactly the free GPU -------------------
        started.append("olga")
        olga.locator("#mlhub-gpus").select_option("1")
        olga.locator("#spawn_form button[type=submit]").click()
        olga.wait_for_url(re.compile(rf"{re.escape(base)}/user/olga/lab"), timeout=SPAWN_MS)
        expect(olga.locator("#jp-main-dock-panel")).to_be_attached(timeout=SPAWN_MS)
        expect(olga.locator(".jp-LabShell")).to_be_visible(timeout=SPAWN_MS)
        model = hub.server_model(p.admin_token, "olga")
        assert model and model.get("ready"), model
        assert gpu_holding_containers(s).get(f"{s.project}-nb-olga") == free_id

        # ... and pete, in his own browser context, sees none free ---------------
        pete = new_page("pete")
        login(pete, base, "pete", PASSWORDS["pete"])
        print(f"after login pete landed on {pete.url}")
        open_spawn_form(pete, base, "pete")
        expect(pete.locator("#mlhub-free-gpus")).to_have_text("0 of 4 free")
        expect(holder_rows(pete).nth(GPU_IDS.index(free_id))).to_have_text(
            re.compile(rf"^GPU {free_id}\b.*: olga$")
        )
        expect(pete.locator("#mlhub-gpus option").nth(1)).to_have_text("1 GPU (only 0 free now)")
    finally:
        # 6. leave nothing running that this test started --------------------------
        problems = []
        for name in started + ["pete"]:
            try:
                if hub.server_model(p.admin_token, name) is not None:
                    hub.stop_server(p.admin_token, name, timeout=STOP_S)
            except (HubError, requests.RequestException) as e:
                problems.append(f"{name}: {e}")
        if problems:
            print("cleanup problems: " + "; ".join(problems))
