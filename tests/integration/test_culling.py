"""Idle culling on a real engine: jupyterhub-idle-culler, run by the hub, stops
servers nobody uses (MLHUB_CULL_IDLE_TIMEOUT=30 s here, checked every 5 s),
keeps the ones in use, keeps the homes, and gives culled servers' GPUs back.

The GPUs are the STAND-IN inventory of the GPU tests (MLHUB_GPUS=0,1 and the
stand-in NVIDIA hook of .ci/provision.sh): this checks allocation, not compute.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.conftest import record
from tests.support.hubapi import quote

pytestmark = pytest.mark.docker

TIMEOUT = 30  # MLHUB_CULL_IDLE_TIMEOUT of the stack


def report_activity(p, user: str) -> None:
    """What jupyterhub-singleuser does while a user works (kernel busy, file
    saved, terminal typed in): POST its server's last activity to the hub."""
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    r = p.hub.api(p.user(user), "POST", f"/users/{quote(user)}/activity",
                  json={"last_activity": now, "servers": {"": {"last_activity": now}}})
    assert r.status_code == 200, r.text


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def gpu_holders(p) -> dict[str, set[str]]:
    r = p.hub.api(p.admin_token, "GET", "/gpus")
    assert r.status_code == 200, r.text
    return {g["id"]: {h["user"] for h in g["holders"]} for g in r.json()["gpus"]}


def test_idle_server_is_culled_busy_one_kept_home_and_gpu_returned(cull_platform):
    p = cull_platform
    s = p.stack
    hub = p.hub
    # busy keeps working; sleepy takes a GPU and then does nothing
    hub.start_server(p.user("busy"), "busy", options={"gpus": 0})
    hub.start_server(p.user("sleepy"), "sleepy", options={"gpus": 1})
    assert any("sleepy" in users for users in gpu_holders(p).values())
    r = hub.server_api(p.user("sleepy"), "sleepy", "PUT", "api/contents/keep.txt",
                       json={"type": "file", "format": "text", "content": "still here"})
    assert r.status_code in (200, 201), r.text
    # the last activity the hub knows of sleepy's server (its start)
    last_active = parse_time(hub.server_model(p.user("sleepy"), "sleepy")["last_activity"])

    culled_after = None
    deadline = time.monotonic() + TIMEOUT + 60
    while time.monotonic() < deadline:
        report_activity(p, "busy")
        if hub.server_model(p.user("sleepy"), "sleepy") is None:
            culled_after = (datetime.now(timezone.utc) - last_active).total_seconds()
            break
        time.sleep(2)
    assert culled_after is not None, "the idle server was not culled"
    assert culled_after >= TIMEOUT, f"culled {culled_after:.0f} s after its last activity, before the timeout"
    record(f"idle culling: idle server stopped {culled_after:.1f} s after its last activity "
           f"(timeout {TIMEOUT} s, checked every 5 s)")

    # the busy server is untouched, the culled container is gone, the home is kept
    assert hub.server_model(p.user("busy"), "busy")["ready"]
    assert s.container(f"{s.project}-nb-sleepy") is None
    assert f"{s.project}-home-sleepy" in s.home_volumes()
    # its GPU is free again
    assert not any("sleepy" in users for users in gpu_holders(p).values())
    # and the user comes back to their files
    hub.start_server(p.user("sleepy"), "sleepy", options={"gpus": 1})
    try:
        r = hub.server_api(p.user("sleepy"), "sleepy", "GET", "api/contents/keep.txt")
        assert r.status_code == 200 and r.json()["content"] == "still here"
        # the hub user is not deleted by the culler
        assert hub.api(p.admin_token, "GET", "/users/sleepy").status_code == 200
    finally:
        # GPU containers of every stack on this engine count in each hub's ledger
        # (GPUs are the host's): give the stand-in GPU back before the GPU tests
        for name in ("sleepy", "busy"):
            if hub.server_model(p.user(name), name) is not None:  # not culled meanwhile
                hub.stop_server(p.user(name), name)


def test_culler_runs_as_a_hub_service_with_its_own_role(cull_platform):
    p = cull_platform
    r = p.hub.api(p.admin_token, "GET", "/services")
    assert r.status_code == 200, r.text
    culler = r.json()["idle-culler"]
    assert "--timeout=30" in culler["command"]
    assert culler["pid"] > 0  # started and kept running by the hub
    assert "idle-culler" in culler["roles"]
