"""A failed or cancelled spawn leaves no container, and so no GPU, behind.

JupyterHub cancels ``Spawner.start()`` on ``start_timeout`` and when a user
cancels a pending spawn; the engine may also fail with something other than an
APIError (a read timeout). A container created but never started still carries
its ``org.mlhub.gpus`` label, which the ledger counts. These tests drive the real
MlhubSpawner and GpuAllocator against a FAKE docker APIClient (named as such:
the real engine runs in tests/integration); they check cleanup, not Docker.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

import docker
import requests
from docker.errors import APIError
from traitlets.config import Config

from hub.gpus.allocator import GpuAllocator
from hub.gpus.ledger import NotEnoughGPUs
from hub.spawner import MlhubSpawner


class FakeDocker:
    """FAKE engine: the few docker.APIClient calls DockerSpawner/MlhubSpawner make."""

    def __init__(self, start_error: Exception):
        self.containers_by_id: dict[str, dict] = {}
        self.start_error = start_error
        self.n = 0

    def _find(self, ref):
        for c in self.containers_by_id.values():
            if c["Id"] == ref or c["Name"] == ref:
                return c
        raise APIError("no such container", response=SimpleNamespace(status_code=404, reason="Not Found"))

    def inspect_image(self, image):
        return {"Config": {"Labels": {}, "Cmd": ["jupyterhub-singleuser"]}}

    def inspect_volume(self, name):
        return {"Name": name}

    def create_host_config(self, **kw):
        return docker.types.HostConfig(version="1.44", **kw)

    def create_container(self, **kw):
        self.n += 1
        cid = f"c{self.n}"
        self.containers_by_id[cid] = {"Id": cid, "Name": kw["name"], "Labels": kw["labels"],
                                      "State": {"Running": False, "Status": "created", "ExitCode": 0,
                                                "Error": "", "FinishedAt": "0001-01-01T00:00:00Z"}}
        return {"Id": cid}

    def inspect_container(self, ref):
        return self._find(ref)

    def start(self, cid):
        raise self.start_error

    def containers(self, all=False, filters=None):
        return [{"Id": c["Id"], "Labels": c["Labels"], "State": c["State"]["Status"], "Created": 1714564800}
                for c in self.containers_by_id.values()]

    def remove_container(self, cid, **kw):
        self.containers_by_id.pop(cid, None)

    def stop(self, cid):
        pass


def make_spawner(client, user="alice"):
    c = Config()
    c.MlhubSpawner.gpus = ("0",)
    c.MlhubSpawner.remove = True  # as hub/wiring.py sets it
    fake_user = SimpleNamespace(name=user, url=f"/user/{user}/", admin=False, groups=[],
                                escaped_name=user, base_url=f"/user/{user}/")
    orm_spawner = SimpleNamespace(name="", server=None, state=None, user_options=None)
    hub = SimpleNamespace(api_url="http://hub:8081/hub/api", base_url="/hub/", public_host="",
                          url="http://hub:8081/hub/")
    sp = MlhubSpawner(config=c, user=fake_user, orm_spawner=orm_spawner, hub=hub)
    sp.user_options = {"gpus": 1}
    return sp


@pytest.fixture
def fake_engine(monkeypatch):
    client = FakeDocker(start_error=requests.exceptions.ReadTimeout("engine did not answer in 60 s"))
    monkeypatch.setattr(MlhubSpawner, "_client", client)
    pool = ThreadPoolExecutor(4)
    monkeypatch.setattr(MlhubSpawner, "_pool", pool)
    monkeypatch.setattr(MlhubSpawner, "_allocator", GpuAllocator(client, pool, ("0",), probe_image="x"))
    monkeypatch.setattr(MlhubSpawner, "get_env", lambda self: {})  # JupyterHub's env needs a real hub
    return client


async def test_failed_start_does_not_keep_the_gpu(fake_engine):
    alice = make_spawner(fake_engine, "alice")
    with pytest.raises(Exception):
        await alice.start()
    # what JupyterHub's User.stop() does after a failed start: poll, and stop() only if running
    if await alice.poll() is None:
        await alice.stop()
    left = list(fake_engine.containers_by_id.values())
    assert left == [], left  # removed at once by start()'s cleanup
    try:
        await MlhubSpawner._allocator.reserve("bob", "", 1, 1)
    except NotEnoughGPUs as e:
        pytest.fail(f"GPU 0 still held by alice's dead container {[c['State']['Status'] for c in left]}: {e}")


async def test_cancelled_spawn_does_not_keep_the_gpu(fake_engine):
    """JupyterHub 5.5 cancels Spawner.start() on start_timeout (asyncio.wait_for) and when the
    user cancels a pending spawn (DELETE .../server -> spawn_future.cancel())."""
    gate, entered = threading.Event(), threading.Event()
    real_create = fake_engine.create_container

    def slow_create(**kw):
        entered.set()
        gate.wait(5)
        return real_create(**kw)

    fake_engine.create_container = slow_create
    fake_engine.start_error = None
    alice = make_spawner(fake_engine, "alice")
    task = asyncio.ensure_future(alice.start())
    while not entered.is_set():
        await asyncio.sleep(0.01)
    task.cancel()                 # timeout / user pressed cancel while the engine creates the container
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)      # the engine call finishes on its thread
    if await alice.poll() is None:   # User.stop()
        await alice.stop()
    states = [c["State"]["Status"] for c in fake_engine.containers_by_id.values()]
    assert states == [], states
    try:
        await MlhubSpawner._allocator.reserve("bob", "", 1, 1)
    except NotEnoughGPUs as e:
        pytest.fail(f"GPU 0 held by a container nobody will remove {states}: {e}")

