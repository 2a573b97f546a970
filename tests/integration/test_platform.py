"""The platform core on a real Docker engine with the real docker-compose.yml.

A scenario, run in order: two users spawn; A trains a Keras model in their
notebook through the kernel protocol and saves it in their home; the file
survives a server restart, a hub restart (during which A's server keeps
running) and `docker compose down` + `up`; tokens cannot cross users; the
container is non-root, limited, and has no Docker socket.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import record
from tests.support.kernel import run_code

pytestmark = pytest.mark.docker

TRAIN = r"""
import os, numpy as np, tensorflow as tf
tf.keras.utils.set_random_seed(0)
x = np.random.rand(256, 4).astype("float32")
y = (x.sum(axis=1) > 2).astype("float32")
model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, activation="relu"),
                             tf.keras.layers.Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy")
model.fit(x, y, epochs=2, verbose=0)
os.makedirs(os.path.expanduser("~/models"), exist_ok=True)
path = os.path.expanduser("~/models/tiny.keras")
model.save(path)
probe = np.array([[0.9, 0.9, 0.9, 0.9]], dtype="float32")
print("SAVED", path, float(model.predict(probe, verbose=0)[0][0]))
"""

RELOAD = r"""
import os, numpy as np, tensorflow as tf
m = tf.keras.models.load_model(os.path.expanduser("~/models/tiny.keras"))
print("LOADED", float(m.predict(np.array([[0.9, 0.9, 0.9, 0.9]], dtype="float32"), verbose=0)[0][0]))
"""


def _prediction(output: str, tag: str) -> float:
    line = next(line for line in output.splitlines() if line.startswith(tag))
    return float(line.split()[-1])


@pytest.fixture(scope="module")
def users(platform):
    return {name: platform.user(name) for name in ("alice", "bob.smith@example.org")}


ALICE, BOB = "alice", "bob.smith@example.org"


def test_stack_is_up(platform):
    r = requests.get(platform.stack.url + "/hub/login", timeout=10)
    assert r.status_code == 200
    assert "Sign up" in r.text or "signup" in r.text  # native accounts by default
    ps = platform.stack.compose("ps", "--format", "json").stdout
    states = {json.loads(line)["Service"]: json.loads(line)["State"] for line in ps.splitlines()}
    assert states.get("hub") == "running" and states.get("proxy") == "running", states


def test_two_users_spawn(platform, users):
    hub = platform.hub
    for name, token in users.items():
        seconds = hub.start_server(token, name)
        record(f"spawn-to-ready via REST for {name}: {seconds:.2f} s")
        model = hub.server_model(token, name)
        assert model["ready"]
    names = {c["Names"] for c in platform.stack.notebook_containers()}
    p = platform.stack.project
    # (other tests share this stack and may run servers of their own)
    assert {f"{p}-nb-alice", f"{p}-nb-bob-2esmith-40example-2eorg"} <= names, names


def test_train_keras_model_in_notebook_and_save_in_home(platform, users):
    t0 = time.monotonic()
    out = run_code(platform.hub, users[ALICE], ALICE, TRAIN)
    record(f"train + save a tiny Keras model in a notebook kernel: {time.monotonic() - t0:.1f} s")
    assert "SAVED /home/jovyan/models/tiny.keras" in out, out
    platform.trained_prediction = _prediction(out, "SAVED")
    r = platform.hub.server_api(users[ALICE], ALICE, "GET", "api/contents/models")
    assert r.status_code == 200, r.text
    assert [f["name"] for f in r.json()["content"]] == ["tiny.keras"]


def test_notebook_container_is_non_root_limited_and_has_no_docker_socket(platform, users):
    info = platform.stack.container(f"{platform.stack.project}-nb-alice")
    assert info["Config"]["User"] == "1000:100"
    host = info["HostConfig"]
    assert host["Memory"] == 2 * 1024**3
    assert host["CpuQuota"] == 150_000 and host["CpuPeriod"] == 100_000
    assert "ALL" in (host["CapDrop"] or []) and "no-new-privileges" in (host["SecurityOpt"] or [])
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/home/jovyan"]["Name"] == f"{platform.stack.project}-home-alice"
    assert not any("docker.sock" in (m.get("Source") or "") for m in info["Mounts"])
    assert list(info["NetworkSettings"]["Networks"]) == [platform.stack.project]
    out = run_code(platform.hub, users[ALICE], ALICE, r"""
import os, pathlib
print("UID", os.getuid(), os.getgid())
print("SOCK", any(pathlib.Path(p).exists() for p in ("/var/run/docker.sock", "/run/docker.sock")))
mem = pathlib.Path("/sys/fs/cgroup/memory.max")
mem = mem if mem.exists() else pathlib.Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
print("MEM", mem.read_text().strip())
import socket; print("HUB", socket.gethostbyname("hub"))
""")
    assert "UID 1000 100" in out
    assert "SOCK False" in out
    assert f"MEM {2 * 1024**3}" in out
    assert "HUB " in out  # the hub is reachable by its compose service name


def test_file_survives_server_stop_and_start(platform, users):
    hub, token = platform.hub, users[ALICE]
    old_id = platform.stack.container(f"{platform.stack.project}-nb-alice")["Id"]
    hub.stop_server(token, ALICE)
    assert platform.stack.container(f"{platform.stack.project}-nb-alice") is None  # container removed
    assert f"{platform.stack.project}-home-alice" in platform.stack.home_volumes()  # home kept
    seconds = hub.start_server(token, ALICE)
    record(f"restart of a server (existing home volume): {seconds:.2f} s")
    assert platform.stack.container(f"{platform.stack.project}-nb-alice")["Id"] != old_id
    out = run_code(hub, token, ALICE, RELOAD)
    assert _prediction(out, "LOADED") == pytest.approx(platform.trained_prediction, abs=1e-6)


def test_hub_restart_keeps_servers_running_and_reachable(platform, users):
    hub, token = platform.hub, users[ALICE]
    before = platform.stack.container(f"{platform.stack.project}-nb-alice")
    platform.stack.compose("restart", "hub")
    platform.stack.wait_healthy()
    after = platform.stack.container(f"{platform.stack.project}-nb-alice")
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]  # never restarted
    assert hub.server_model(token, ALICE)["ready"]
    r = hub.server_api(token, ALICE, "GET", "api/status")
    assert r.status_code == 200, r.text
    out = run_code(hub, token, ALICE, RELOAD)
    assert "LOADED" in out


def test_proxy_restart_routes_are_back_within_seconds(platform, users):
    """The proxy keeps routes in memory; the hub restores them at its next route
    check (every 15 s here; JupyterHub's default would be 300 s)."""
    hub, token = platform.hub, users[ALICE]
    platform.stack.compose("restart", "proxy")
    platform.stack.wait_healthy()
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < 60:
        status = hub.server_api(token, ALICE, "GET", "api/status").status_code
        if status == 200:
            break
        time.sleep(1)
    waited = time.monotonic() - t0
    record(f"proxy restart -> user server reachable again: {waited:.1f} s")
    assert status == 200, f"alice's server still unreachable {waited:.0f} s after a proxy restart"


def test_a_token_cannot_reach_another_users_server(platform, users):
    hub = platform.hub
    r = hub.server_api(users[ALICE], BOB, "GET", "api/status")
    assert r.status_code == 403, (r.status_code, r.text[:200])
    r = hub.server_api(users[ALICE], BOB, "POST", "api/kernels", json={"name": "python3"})
    assert r.status_code == 403
    # the hub API does not even reveal that bob exists to alice's token
    r = hub.api(users[ALICE], "DELETE", "/users/bob.smith@example.org/server")
    assert r.status_code == 404
    assert hub.server_model(users[BOB], BOB)["ready"]  # bob's server untouched
    # and without any credentials, the browser is sent to the login page
    r = requests.get(hub.url("/user/alice/lab"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "/hub/" in r.headers["Location"]


def test_named_server_shares_the_home(platform, users):
    hub, token = platform.hub, users[ALICE]
    seconds = hub.start_server(token, ALICE, server="exp-1")
    record(f"spawn-to-ready of a named server: {seconds:.2f} s")
    assert platform.stack.container(f"{platform.stack.project}-nb-alice--exp-2d1") is not None
    r = hub.server_api(token, ALICE, "GET", "api/contents/models", server="exp-1")
    assert r.status_code == 200 and r.json()["content"][0]["name"] == "tiny.keras"
    hub.stop_server(token, ALICE, server="exp-1")
    assert platform.stack.container(f"{platform.stack.project}-nb-alice--exp-2d1") is None


def test_spawn_progress_events(platform, users):
    """The spawn-pending page's event stream shows each step of our spawner."""
    hub, token = platform.hub, users[BOB]
    hub.stop_server(token, BOB)
    url = "/users/bob.smith@example.org/server"
    with ThreadPoolExecutor(1) as pool:
        post = pool.submit(hub.api, token, "POST", url)
        messages: list[str] = []
        deadline = time.monotonic() + 60
        while not messages and time.monotonic() < deadline:
            with requests.get(
                hub.url(f"/hub/api{url}/progress"),
                headers={"Authorization": f"token {token}"}, stream=True, timeout=120,
            ) as resp:
                if resp.status_code != 200:  # 400 until the spawn is pending
                    time.sleep(0.02)
                    continue
                for line in resp.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        event = json.loads(line[5:])
                        messages.append(event.get("message", ""))
                        if event.get("ready") or event.get("failed"):
                            break
        assert post.result().status_code in (201, 202)
    assert "Server requested" in messages, messages
    assert any("home volume" in m for m in messages), messages
    assert "Creating your container" in messages, messages
    assert messages[-1].startswith("Server ready"), messages
    assert hub.server_model(token, BOB)["ready"]


def test_compose_down_and_up_keeps_files_and_running_servers(platform, users):
    hub, token, stack = platform.hub, users[ALICE], platform.stack
    before = stack.container(f"{platform.stack.project}-nb-alice")
    stack.compose("down", "--timeout", "10")
    # users' servers are not part of the compose project: down leaves them running
    assert stack.container(f"{platform.stack.project}-nb-alice")["State"]["Running"]
    seconds = stack.up(build=False)
    record(f"docker compose up of an existing install: {seconds:.1f} s")
    assert stack.container(f"{platform.stack.project}-nb-alice")["Id"] == before["Id"]
    r = hub.server_api(token, ALICE, "GET", "api/status")
    assert r.status_code == 200, r.text
    hub.stop_server(token, ALICE)
    hub.start_server(token, ALICE)
    out = run_code(hub, token, ALICE, RELOAD)
    assert _prediction(out, "LOADED") == pytest.approx(platform.trained_prediction, abs=1e-6)
