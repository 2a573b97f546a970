"""GPU allocation on a real engine, with a STAND-IN inventory of 4 GPUs.

This machine has no GPU. dockerd runs with a stand-in nvidia-container-runtime-hook
(.ci/provision.sh), so containers that request GPUs start, and the engine sets
NVIDIA_VISIBLE_DEVICES to the device ids requested. These tests check ALLOCATION
AND WIRING (which container is given which GPU ids, refusals, the ledger across
restarts), not that a GPU computes anything.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.hubapi import quote
from tests.support.stack import docker

pytestmark = pytest.mark.docker


def container_visible_devices(name: str) -> str:
    """NVIDIA_VISIBLE_DEVICES of the container's main process (what the NVIDIA
    toolkit acts on). `docker exec` shows the container config's env instead,
    which lacks the value the engine adds for device requests."""
    r = docker("exec", name, "cat", "/proc/1/environ")
    env = dict(v.split("=", 1) for v in r.stdout.split("\0") if "=" in v)
    return env.get("NVIDIA_VISIBLE_DEVICES", "")


def visible_devices(stack, user: str, server: str = "") -> str:
    return container_visible_devices(f"{stack.project}-nb-{user}" + (f"--{server}" if server else ""))


def ids_of(stack, user: str, server: str = "") -> set[str]:
    value = visible_devices(stack, user, server)
    return set() if value in ("", "void", "none") else set(value.split(","))


def spawn(p, user: str, options: dict, server: str = ""):
    """POST a spawn and wait; return (status, message) — ready servers give (200, '')."""
    token = p.user(user)
    path = f"/users/{quote(user)}/servers/{quote(server)}" if server else f"/users/{quote(user)}/server"
    r = p.hub.api(token, "POST", path, json=options, timeout=120)
    if r.status_code >= 400:
        return r.status_code, r.json().get("message", r.text)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        model = p.hub.server_model(token, user, server)
        if model and model.get("ready"):
            return 200, ""
        if model is None:
            return 500, "server vanished"
        time.sleep(0.2)
    raise AssertionError(f"{user} not ready")


@pytest.fixture(scope="module")
def gp(gpu_platform):
    p = gpu_platform
    # GPU quotas hang on hub groups: 'gpu-team' may hold 2 GPUs, everyone else 1.
    r = p.hub.api(p.admin_token, "POST", "/groups/gpu-team")
    assert r.status_code in (201, 409), r.text
    r = p.hub.api(p.admin_token, "PUT", "/groups/gpu-team/properties", json={"gpu_quota": 2, "mem_quota": "2G"})
    assert r.status_code == 200, r.text
    for u in ("gina", "hank", "ivan", "jill", "kate", "liam", "mike"):
        p.user(u)
    r = p.hub.api(p.admin_token, "POST", "/groups/gpu-team/users", json={"users": ["hank", "jill"]})
    assert r.status_code == 200, r.text
    return p


def all_held(stack) -> list[set[str]]:
    held = []
    for c in stack.notebook_containers():
        if c["State"] != "running":
            continue
        env = container_visible_devices(c["Names"])
        if env not in ("", "void", "none"):
            held.append(set(env.split(",")))
    return held


def assert_disjoint(stack):
    held = all_held(stack)
    flat = [g for s in held for g in s]
    assert len(flat) == len(set(flat)), f"a GPU is handed out twice: {held}"
    return set(flat)


def test_users_get_exactly_their_gpus(gp):
    s = gp.stack
    assert spawn(gp, "gina", {"gpus": 1}) == (200, "")
    assert spawn(gp, "hank", {"gpus": 2}) == (200, "")
    assert spawn(gp, "ivan", {"gpus": 0}) == (200, "")
    gina, hank = ids_of(s, "gina"), ids_of(s, "hank")
    assert len(gina) == 1 and len(hank) == 2 and not gina & hank
    assert gina | hank <= {"0", "1", "2", "3"}
    assert visible_devices(s, "ivan") == "void"  # the CPU user sees no GPU
    # the container's device request holds exactly the same ids
    info = s.container(f"{s.project}-nb-hank")
    requests_ = info["HostConfig"]["DeviceRequests"]
    assert sorted(requests_[0]["DeviceIDs"]) == sorted(hank)
    assert info["Config"]["Labels"]["org.mlhub.gpus"] == ",".join(sorted(hank))
    assert s.container(f"{s.project}-nb-ivan")["HostConfig"]["DeviceRequests"] in (None, [])


def test_request_past_free_is_refused_with_who_holds_what_and_no_container(gp):
    status, message = spawn(gp, "jill", {"gpus": 2})  # quota 2, but only 1 free
    assert status == 409, (status, message)
    assert "1 free" in message and "gina" in message and "hank" in message, message
    assert gp.stack.container(f"{gp.stack.project}-nb-jill") is None
    assert gp.hub.server_model(gp.user("jill"), "jill") is None


def test_quota_and_bad_options_are_refused(gp):
    status, message = spawn(gp, "kate", {"gpus": 2})
    assert status == 400 and "quota is 1" in message, message
    status, message = spawn(gp, "kate", {"image": "alpine:latest"})
    assert status == 400 and "Unknown server option" in message and "image" in message, message
    status, message = spawn(gp, "kate", {"gpus": "lots"})
    assert status == 400 and "whole number" in message, message
    status, message = spawn(gp, "kate", {"memory": "64G"})
    assert status == 400 and "quota" in message, message
    assert gp.stack.container(f"{gp.stack.project}-nb-kate") is None


def test_concurrent_requests_for_the_last_gpu_one_wins(gp):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda u: (u, spawn(gp, u, {"gpus": 1})), ["kate", "liam"]))
    winners = [u for u, (status, _) in results if status == 200]
    losers = [(u, status, msg) for u, (status, msg) in results if status != 200]
    assert len(winners) == 1, results
    assert losers[0][1] == 409 and "none free" in losers[0][2], results
    assert gp.stack.container(f"{gp.stack.project}-nb-{losers[0][0]}") is None
    assert assert_disjoint(gp.stack) == {"0", "1", "2", "3"}
    gp.last_winner = winners[0]


def test_hub_restart_then_new_spawn_never_hands_an_id_out_twice(gp):
    s = gp.stack
    before = {c["Names"] for c in s.notebook_containers()}
    s.compose("restart", "hub")
    s.wait_healthy()
    assert {c["Names"] for c in s.notebook_containers()} == before  # nothing stopped
    status, message = spawn(gp, "mike", {"gpus": 1})
    assert status == 409 and "none free" in message, message  # all 4 still held
    # free one GPU through the hub, then the new spawn gets exactly that one
    freed = ids_of(s, "gina")
    gp.hub.stop_server(gp.user("gina"), "gina")
    assert spawn(gp, "mike", {"gpus": 1}) == (200, "")
    assert ids_of(s, "mike") == freed
    assert_disjoint(s)


def test_killing_a_container_frees_its_gpu(gp):
    s = gp.stack
    victim = gp.last_winner
    freed = ids_of(s, victim)
    docker("kill", f"{s.project}-nb-{victim}")
    deadline = time.monotonic() + 30
    while s.container(f"{s.project}-nb-{victim}") is not None and time.monotonic() < deadline:
        time.sleep(0.2)  # auto-removed by the engine
    assert spawn(gp, "gina", {"gpus": 1}) == (200, "")
    assert ids_of(s, "gina") == freed
    assert_disjoint(s)


def test_admin_sees_who_holds_which_gpu(gp):
    s = gp.stack
    r = gp.hub.api(gp.admin_token, "GET", "/gpus")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["total"] == 4 and "MLHUB_GPUS" in report["inventory_source"]
    from_api = {g["id"]: {h["user"] for h in g["holders"]} for g in report["gpus"]}
    for user in ("gina", "hank", "mike"):
        for gid in ids_of(s, user):
            assert from_api[gid] == {user}, (gid, from_api)
    assert all(h["since"] for g in report["gpus"] for h in g["holders"])
    assert report["free"] == sum(1 for holders in from_api.values() if not holders)
    # a member cannot see it
    assert gp.hub.api(gp.user("ivan"), "GET", "/gpus").status_code == 403
    # the page, in an admin's browser session
    session = gp.hub.login_session("admin", gp.admin_password)
    page = session.get(gp.hub.url("/hub/gpus"), timeout=30)
    assert page.status_code == 200 and 'id="mlhub-gpu-table"' in page.text
    assert "gina" in page.text and "hank" in page.text
