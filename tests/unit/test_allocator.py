"""hub.gpus.allocator.GpuAllocator and hub.gpus.inventory, against a fake Docker
engine (an object with the few docker.APIClient methods the allocator calls) and
a real ThreadPoolExecutor, so blocking engine calls really run on other threads.

The ledger is rebuilt from the engine's containers on every look: live
containers with an ``org.mlhub.gpus`` label hold GPUs, exited ones do not, and
reservations of spawns in progress count until ``settle()``. Concurrency tests
start many reservations at once (asyncio.gather) while the fake engine answers
slowly, and check that no GPU is ever handed out twice."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from docker.errors import APIError, ImageNotFound
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.gpus.allocator import (
    GPU_LABEL,
    LIVE_STATES,
    SERVER_LABEL,
    USER_LABEL,
    GpuAllocator,
    QuotaExceeded,
)
from hub.gpus.inventory import GPU, NVIDIA_SMI_QUERY, from_ids, parse_nvidia_smi_csv, probe_with_engine
from hub.gpus.ledger import Holding, Ledger, NotEnoughGPUs

CREATED = 1714564800  # 2024-05-01T12:00:00Z, as the engine reports "Created"


class FakeEngine:
    """The container list of a Docker engine, with docker.APIClient.containers()'s
    signature. ``delay`` makes each list call slow (it runs on an executor thread)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self._lock = threading.Lock()
        self._containers: dict[str, dict] = {}
        self._n = 0
        self.list_calls = 0
        self.threads: set[str] = set()
        # set by tests that need to hold a list call after it has read the state
        self.listed = threading.Event()
        self.gate: threading.Event | None = None

    # -- what tests do to the engine
    def run(self, user: str, server: str, gpus: str, state: str = "running", created=CREATED) -> str:
        with self._lock:
            self._n += 1
            cid = f"c{self._n:04d}"
            self._containers[cid] = {
                "Id": cid,
                "Names": [f"/jupyter-{user}-{server}"],
                "Labels": {
                    GPU_LABEL: gpus,
                    USER_LABEL: user,
                    SERVER_LABEL: server,
                    "org.mlhub.component": "notebook",
                },
                "State": state,
                "Created": created,
            }
            return cid

    def add_raw(self, container: dict) -> None:
        with self._lock:
            self._n += 1
            self._containers[container.get("Id", f"raw{self._n}")] = container

    def set_state(self, cid: str, state: str) -> None:
        with self._lock:
            self._containers[cid]["State"] = state

    def remove(self, cid: str) -> None:
        with self._lock:
            del self._containers[cid]

    # -- docker.APIClient
    def containers(self, quiet=False, all=False, trunc=False, latest=False, since=None,
                   before=None, limit=-1, size=False, filters=None):
        self.threads.add(threading.current_thread().name)
        with self._lock:
            self.list_calls += 1
            snapshot = copy.deepcopy(list(self._containers.values()))
        self.listed.set()
        if self.gate is not None:
            assert self.gate.wait(5), "test gate never opened"
        if self.delay:
            time.sleep(self.delay)
        out = []
        for c in snapshot:
            if not all and c["State"] != "running":
                continue
            wanted = (filters or {}).get("label", [])
            for f in [wanted] if isinstance(wanted, str) else wanted:
                k, _, v = f.partition("=")
                if k not in c["Labels"] or (v and c["Labels"][k] != v):
                    break
            else:
                out.append(c)
        return out


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="docker") as ex:
        yield ex


@pytest.fixture(scope="module")
def module_executor():
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="docker-m") as ex:
        yield ex


def make(engine, executor, gpus=("0", "1", "2", "3"), slots=1) -> GpuAllocator:
    return GpuAllocator(engine, executor, gpus, probe_image="mlhub/notebook:test", slots=slots)


def held(ledger: Ledger) -> dict[tuple[str, str], tuple[str, ...]]:
    return {h.key: h.gpu_ids for h in ledger.holdings}


# ---------------------------------------------------------------- engine state -> ledger


async def test_ledger_is_rebuilt_from_live_containers_labels(executor):
    engine = FakeEngine()
    engine.run("ann", "", "0")
    engine.run("bob", "train", "1,2", state="created")
    engine.run("cy", "", "3", state="paused")
    alloc = make(engine, executor)
    led = await alloc.ledger()
    assert held(led) == {("ann", ""): ("0",), ("bob", "train"): ("1", "2"), ("cy", ""): ("3",)}
    assert led.free_ids() == []
    assert led.gpu_ids == ("0", "1", "2", "3")
    # the blocking engine call ran on the executor, not on the event loop's thread
    assert engine.threads and all(t.startswith("docker") for t in engine.threads)


@pytest.mark.parametrize("state", sorted(LIVE_STATES))
async def test_every_live_state_holds_its_gpus(executor, state):
    engine = FakeEngine()
    engine.run("ann", "", "1", state=state)
    led = await make(engine, executor).ledger()
    assert held(led) == {("ann", ""): ("1",)}


@pytest.mark.parametrize("state", ["exited", "dead", "removing"])
async def test_stopped_containers_hold_nothing(executor, state):
    engine = FakeEngine()
    engine.run("ann", "", "0", state=state)
    engine.run("bob", "", "1")
    led = await make(engine, executor).ledger()
    assert held(led) == {("bob", ""): ("1",)}
    assert led.free_ids() == ["0", "2", "3"]


async def test_engine_holdings_details(executor):
    engine = FakeEngine()
    engine.run("ann", "", "0,3", created=CREATED)
    engine.run("cpu-user", "", "")  # CPU-only server: label present, empty
    engine.add_raw({"Id": "hub", "Labels": {"org.mlhub.component": "hub"}, "State": "running"})
    engine.add_raw({"Id": "odd", "Labels": {GPU_LABEL: "2"}, "State": "running"})  # no user label
    hs = await make(engine, executor).engine_holdings()
    assert hs == [
        Holding("ann", "", ("0", "3"), datetime.fromtimestamp(CREATED, timezone.utc)),
        Holding("?", "", ("2",), None),
    ]
    assert not any(h.pending for h in hs)


async def test_container_removed_by_hand_disappears_from_the_ledger(executor):
    engine = FakeEngine()
    cid = engine.run("ann", "", "0")
    engine.run("bob", "", "1")
    alloc = make(engine, executor)
    assert held(await alloc.ledger()) == {("ann", ""): ("0",), ("bob", ""): ("1",)}
    engine.remove(cid)  # docker rm -f by an admin
    assert held(await alloc.ledger()) == {("bob", ""): ("1",)}
    h = await alloc.reserve("cy", "", 1, quota=1)
    assert h.gpu_ids == ("0",)


async def test_crashed_container_frees_its_gpu(executor):
    engine = FakeEngine()
    cid = engine.run("ann", "", "0")
    alloc = make(engine, executor, gpus=("0",))
    with pytest.raises(NotEnoughGPUs):
        await alloc.reserve("bob", "", 1, quota=1)
    engine.set_state(cid, "exited")
    assert (await alloc.reserve("bob", "", 1, quota=1)).gpu_ids == ("0",)


async def test_hub_restart_sees_the_same_holdings(executor):
    engine = FakeEngine()
    alloc = make(engine, executor)
    for user, server, n in [("ann", "", 1), ("bob", "train", 2)]:
        h = await alloc.reserve(user, server, n, quota=2)
        engine.run(user, server, ",".join(h.gpu_ids))  # the spawn creates its container
        alloc.settle(user, server)
    before = held(await alloc.ledger())
    assert before == {("ann", ""): ("0",), ("bob", "train"): ("1", "2")}

    restarted = make(engine, executor)  # a new hub process, same engine
    assert held(await restarted.ledger()) == before
    with pytest.raises(NotEnoughGPUs):
        await restarted.reserve("cy", "", 2, quota=2)
    assert (await restarted.reserve("cy", "", 1, quota=2)).gpu_ids == ("3",)


async def test_gpu_ids_outside_the_inventory_are_ignored(executor):
    # MLHUB_GPUS shrank from 0-3 to 0,1 while a container still holds GPU 3
    engine = FakeEngine()
    engine.run("ann", "", "3")
    led = await make(engine, executor, gpus=("0", "1")).ledger()
    assert led.usage() == {"0": 0, "1": 0}
    assert led.free_ids() == ["0", "1"]


# ---------------------------------------------------------------- reservations


async def test_pending_reservation_counts_until_settled(executor):
    engine = FakeEngine()
    alloc = make(engine, executor, gpus=("0", "1"))
    h = await alloc.reserve("ann", "", 1, quota=1)
    assert h.gpu_ids == ("0",) and h.pending and h.since is not None
    led = await alloc.ledger()
    assert held(led) == {("ann", ""): ("0",)}  # no container yet: the reservation holds it
    assert (await alloc.reserve("bob", "", 1, quota=1)).gpu_ids == ("1",)
    alloc.settle("ann", "")  # spawn failed, no container: GPU 0 is free again
    assert held(await alloc.ledger()) == {("bob", ""): ("1",)}
    alloc.settle("ann", "")  # twice: no-op
    alloc.settle("nobody", "")


async def test_settle_after_container_exists_keeps_the_gpu_held(executor):
    engine = FakeEngine()
    alloc = make(engine, executor, gpus=("0",))
    h = await alloc.reserve("ann", "", 1, quota=1)
    engine.run("ann", "", ",".join(h.gpu_ids))
    alloc.settle("ann", "")
    assert alloc.pending == {}
    led = await alloc.ledger()
    assert held(led) == {("ann", ""): ("0",)}
    with pytest.raises(NotEnoughGPUs):
        await alloc.reserve("bob", "", 1, quota=1)


async def test_cpu_only_reservation_records_nothing(executor):
    alloc = make(FakeEngine(), executor, gpus="none")
    h = await alloc.reserve("ann", "", 0, quota=0)
    assert h.gpu_ids == ()
    assert alloc.pending == {}
    with pytest.raises(NotEnoughGPUs) as exc:
        await alloc.reserve("ann", "", 1, quota=1)
    assert "none free" in str(exc.value)


async def test_respawn_replaces_the_servers_own_holding(executor):
    engine = FakeEngine()
    engine.run("ann", "", "0")  # still listed while the server restarts
    alloc = make(engine, executor, gpus=("0", "1"))
    # its own GPU is not counted against it: both GPUs are available to it
    h = await alloc.reserve("ann", "", 2, quota=2)
    assert h.gpu_ids == ("0", "1")
    # the reservation overrides the old container's label for that server
    assert held(await alloc.ledger()) == {("ann", ""): ("0", "1")}


async def test_quota_counts_gpus_on_the_users_other_servers(executor):
    engine = FakeEngine()
    engine.run("ann", "a", "0")  # a running server
    engine.run("ann", "old", "1", state="exited")  # stopped: not counted
    alloc = make(engine, executor)
    await alloc.reserve("ann", "b", 1, quota=2)  # a spawn in progress: counted
    with pytest.raises(QuotaExceeded) as exc:
        await alloc.reserve("ann", "c", 1, quota=2)
    assert str(exc.value) == (
        "Your GPU quota is 2; you hold 2 on other servers and asked for 1. "
        "Stop another server or ask for fewer GPUs."
    )
    # other users' GPUs do not count against ann
    await alloc.reserve("bob", "", 1, quota=1)
    # the server being (re)started is not one of the "other" servers
    h = await alloc.reserve("ann", "b", 1, quota=2)
    assert len(h.gpu_ids) == 1
    with pytest.raises(QuotaExceeded, match="you hold 1 on other servers and asked for 2"):
        await alloc.reserve("ann", "b", 2, quota=2)
    # a CPU-only server is never over quota
    assert (await alloc.reserve("ann", "c", 0, quota=2)).gpu_ids == ()


async def test_quota_is_checked_before_availability(executor):
    engine = FakeEngine()
    engine.run("bob", "", "0,1,2,3")
    alloc = make(engine, executor)
    with pytest.raises(QuotaExceeded):
        await alloc.reserve("ann", "", 3, quota=2)
    with pytest.raises(NotEnoughGPUs):
        await alloc.reserve("ann", "", 2, quota=2)


async def test_asking_for_more_than_the_host_has_is_refused(executor):
    alloc = make(FakeEngine(), executor, gpus=("0", "1"))
    with pytest.raises(NotEnoughGPUs) as exc:
        await alloc.reserve("ann", "", 3, quota=8)
    assert str(exc.value).startswith("You asked for 3 GPUs, but 2 free (0, 1). Held by: nobody.")
    assert alloc.pending == {}


async def test_refused_reservation_changes_nothing(executor):
    engine = FakeEngine()
    engine.run("bob", "", "0")
    alloc = make(engine, executor, gpus=("0", "1"))
    await alloc.reserve("ann", "x", 1, quota=1)
    pending = dict(alloc.pending)
    with pytest.raises(NotEnoughGPUs):
        await alloc.reserve("cy", "", 1, quota=1)
    with pytest.raises(QuotaExceeded):
        await alloc.reserve("ann", "y", 1, quota=1)
    assert alloc.pending == pending


async def test_sharing_slots_lets_servers_share_gpus(executor):
    alloc = make(FakeEngine(), executor, gpus=("0", "1"), slots=2)
    got = [(await alloc.reserve(f"u{i}", "", 1, quota=1)).gpu_ids for i in range(4)]
    assert got == [("0",), ("1",), ("0",), ("1",)]
    with pytest.raises(NotEnoughGPUs):
        await alloc.reserve("u9", "", 1, quota=1)


# ---------------------------------------------------------------- concurrency


async def test_two_users_racing_for_the_last_gpu_exactly_one_wins(executor):
    engine = FakeEngine(delay=0.03)
    engine.run("cy", "", "0")
    alloc = make(engine, executor, gpus=("0", "1"))
    results = await asyncio.gather(
        alloc.reserve("ann", "", 1, quota=1),
        alloc.reserve("bob", "", 1, quota=1),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Holding)]
    losses = [r for r in results if isinstance(r, NotEnoughGPUs)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert wins[0].gpu_ids == ("1",)
    assert losses[0].free == []
    assert f"{wins[0].user} (1)" in str(losses[0]) and "cy (0)" in str(losses[0])
    assert set(alloc.pending) == {(wins[0].user, "")}  # only the winner reserved


async def test_many_concurrent_reservations_never_share_a_gpu(executor):
    engine = FakeEngine(delay=0.005)
    alloc = make(engine, executor, gpus=tuple(str(i) for i in range(8)))
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(alloc.reserve(f"user{i}", "", 1, quota=1) for i in range(20)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Holding)]
    losses = [r for r in results if isinstance(r, NotEnoughGPUs)]
    assert len(wins) == 8 and len(losses) == 12
    ids = [g for h in wins for g in h.gpu_ids]
    assert sorted(ids, key=int) == [str(i) for i in range(8)]  # each GPU exactly once
    assert engine.list_calls == 20  # every reservation looked at the engine
    # the lock serializes them: at least 20 slow engine calls one after another
    assert time.monotonic() - t0 >= 20 * 0.005


async def test_concurrent_multi_gpu_reservations_with_engine_containers(executor):
    engine = FakeEngine(delay=0.002)
    engine.run("old", "", "0,1")
    alloc = make(engine, executor, gpus=tuple(str(i) for i in range(8)), slots=2)
    reqs = [(f"u{i % 5}", f"s{i}", 1 + i % 3) for i in range(15)]
    results = await asyncio.gather(
        *(alloc.reserve(u, s, n, quota=4) for u, s, n in reqs), return_exceptions=True
    )
    assert all(isinstance(r, (Holding, NotEnoughGPUs, QuotaExceeded)) for r in results), results
    use = (await alloc.ledger()).usage()
    assert all(v <= 2 for v in use.values()), use


async def test_settle_during_a_slow_engine_listing_does_not_double_allocate(executor):
    engine = FakeEngine()
    alloc = make(engine, executor, gpus=("0",))
    first = await alloc.reserve("ann", "", 1, quota=1)  # ann's spawn begins
    assert first.gpu_ids == ("0",)

    engine.listed.clear()
    engine.gate = threading.Event()
    bob = asyncio.create_task(alloc.reserve("bob", "", 1, quota=1))
    # bob's reserve has read the engine (no ann container yet) and is still waiting
    assert await asyncio.get_running_loop().run_in_executor(None, engine.listed.wait, 5)
    # meanwhile ann's container is created and her spawn settles
    engine.run("ann", "", "0")
    alloc.settle("ann", "")
    engine.gate.set()
    try:
        result = await bob
    except NotEnoughGPUs:
        return  # the correct answer: GPU 0 is ann's
    pytest.fail(f"GPU handed out twice: ann holds 0 and bob got {result.gpu_ids}")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    n_gpus=st.integers(0, 6),
    slots=st.integers(1, 2),
    quota=st.integers(0, 3),
    running=st.lists(
        st.tuples(st.sampled_from(["ann", "bob", "cy", "dee"]), st.sampled_from(["r1", "r2"]),
                  st.integers(1, 2)),
        max_size=3, unique_by=lambda t: (t[0], t[1]),
    ),
    batch=st.lists(
        st.tuples(st.sampled_from(["ann", "bob", "cy", "dee"]), st.sampled_from(["", "x", "y"]),
                  st.integers(0, 3)),
        # one spawn per server at a time (JupyterHub never starts a server twice at once)
        min_size=1, max_size=8, unique_by=lambda t: (t[0], t[1]),
    ),
)
def test_concurrent_batches_are_serialized_and_never_overcommit(
    module_executor, n_gpus, slots, quota, running, batch
):
    ids = tuple(str(i) for i in range(n_gpus))
    engine = FakeEngine(delay=0.001)
    # some servers already running, placed on the GPUs the way the hub would
    base = Ledger.build(ids, [], slots)
    for user, server, n in running:
        try:
            h = base.allocate(user, server, n)
        except NotEnoughGPUs:
            continue
        engine.run(user, server, ",".join(h.gpu_ids))

    async def scenario():
        alloc = make(engine, module_executor, gpus=ids, slots=slots)
        results = await asyncio.gather(
            *(alloc.reserve(u, s, n, quota) for u, s, n in batch), return_exceptions=True
        )
        return results, await alloc.ledger()

    results, final = asyncio.run(scenario())

    # the same requests one after another, in arrival order, on the pure ledger
    model = Ledger.build(ids, list(base.holdings), slots)
    for (user, server, n), got in zip(batch, results):
        model.release(user, server)
        if n and model.count_for_user(user) + n > quota:
            assert isinstance(got, QuotaExceeded), (user, server, n, got)
            continue
        try:
            want = model.allocate(user, server, n)
        except NotEnoughGPUs:
            assert isinstance(got, NotEnoughGPUs), (user, server, n, got)
            continue
        assert isinstance(got, Holding), (user, server, n, got)
        assert got.gpu_ids == want.gpu_ids
        assert len(set(got.gpu_ids)) == n and set(got.gpu_ids) <= set(ids)

    assert held(final) == held(model)
    assert all(v <= slots for v in final.usage().values())
    granted = [r for r in results if isinstance(r, Holding)]
    for user in {h.user for h in granted if h.gpu_ids}:  # grants stay within the quota
        assert final.count_for_user(user) <= quota


# ---------------------------------------------------------------- inventory


async def test_inventory_none_is_cpu_only(executor):
    alloc = make(FakeEngine(), executor, gpus="none")
    assert await alloc.inventory() == []
    assert "CPU-only" in alloc.inventory_note
    assert (await alloc.ledger()).gpu_ids == ()


async def test_inventory_from_listed_ids(executor):
    alloc = make(FakeEngine(), executor, gpus=("0", "2", "5"))
    inv = await alloc.inventory()
    assert inv == from_ids(("0", "2", "5"))
    assert [g.id for g in inv] == ["0", "2", "5"]
    assert alloc.inventory_note == "3 GPU(s) listed in MLHUB_GPUS"
    assert (await alloc.ledger()).gpu_ids == ("0", "2", "5")


SMI_OUT = (
    "0, GPU-11111111-aaaa-bbbb-cccc-000000000000, NVIDIA H200, 143771, 3, 550.54.15\n"
    "1, GPU-22222222-aaaa-bbbb-cccc-000000000000, NVIDIA H200, 143771, [N/A], 550.54.15\n"
    "\n"
)


class FakeProbeClient:
    """docker.APIClient as probe_with_engine uses it."""

    def __init__(self, *, create_error=None, start_error=None, status=0, stdout=SMI_OUT,
                 stderr="", wait_error=None, remove_error=None):
        self.create_error, self.start_error, self.wait_error = create_error, start_error, wait_error
        self.remove_error = remove_error
        self.status, self.stdout, self.stderr = status, stdout, stderr
        self.created: list[dict] = []
        self.removed: list[tuple[str, bool]] = []
        self.host_config_args: dict = {}

    def create_host_config(self, **kwargs):
        self.host_config_args = kwargs
        return {"HostConfig": kwargs}

    def create_container(self, image, **kwargs):
        if self.create_error:
            raise self.create_error
        self.created.append({"image": image, **kwargs})
        return {"Id": f"probe{len(self.created)}", "Warnings": []}

    def start(self, cid):
        if self.start_error:
            raise self.start_error

    def wait(self, cid, timeout=None):
        if self.wait_error:
            raise self.wait_error
        return {"StatusCode": self.status, "Error": None}

    def logs(self, cid, stdout=True, stderr=True):
        return (self.stdout if stdout else self.stderr).encode()

    def remove_container(self, cid, force=False):
        self.removed.append((cid, force))
        if self.remove_error:
            raise self.remove_error


NO_DRIVER = APIError('could not select device driver "" with capabilities: [[gpu]]')


def test_probe_finds_gpus_and_removes_its_container():
    client = FakeProbeClient()
    gpus, note = probe_with_engine(client, "mlhub/notebook:test")
    assert gpus == [
        GPU("0", "GPU-11111111-aaaa-bbbb-cccc-000000000000", "NVIDIA H200", 143771, 3, "550.54.15"),
        GPU("1", "GPU-22222222-aaaa-bbbb-cccc-000000000000", "NVIDIA H200", 143771, None, "550.54.15"),
    ]
    assert note == "2 GPU(s) found by nvidia-smi"
    assert client.removed == [("probe1", True)]
    # the probe gets every GPU, utility capability only, no network
    (req,) = client.host_config_args["device_requests"]
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu", "utility"]]
    assert client.host_config_args["network_mode"] == "none"
    (c,) = client.created
    assert c["image"] == "mlhub/notebook:test" and c["command"] == NVIDIA_SMI_QUERY


def test_probe_on_an_engine_without_nvidia_support_at_start():
    client = FakeProbeClient(start_error=NO_DRIVER)
    gpus, note = probe_with_engine(client, "img")
    assert gpus == []
    assert "NVIDIA" in note and "could not select device driver" in note
    assert client.removed == [("probe1", True)]


def test_probe_on_an_engine_without_nvidia_support_at_create():
    client = FakeProbeClient(create_error=NO_DRIVER)
    gpus, note = probe_with_engine(client, "img")
    assert gpus == [] and "NVIDIA" in note
    assert client.removed == []


def test_probe_image_missing():
    client = FakeProbeClient(create_error=ImageNotFound("no such image: img"))
    assert probe_with_engine(client, "img") == ([], "probe image img not found")
    assert client.removed == []


def test_probe_nvidia_smi_failing():
    client = FakeProbeClient(status=9, stdout="", stderr="NVIDIA-SMI has failed because it couldn't communicate\n")
    gpus, note = probe_with_engine(client, "img")
    assert gpus == []
    assert note == "nvidia-smi failed in the probe container: NVIDIA-SMI has failed because it couldn't communicate"
    assert client.removed == [("probe1", True)]


def test_probe_container_removed_even_when_waiting_fails():
    class Boom(Exception):
        pass

    client = FakeProbeClient(wait_error=Boom("read timed out"))
    with pytest.raises(Boom):
        probe_with_engine(client, "img", timeout=1)
    assert client.removed == [("probe1", True)]


def test_probe_ignores_a_failing_remove():
    client = FakeProbeClient(remove_error=APIError("removal already in progress"))
    gpus, _ = probe_with_engine(client, "img")
    assert len(gpus) == 2
    assert client.removed == [("probe1", True)]


async def test_inventory_auto_probes_once_and_caches(executor):
    client = FakeProbeClient()
    alloc = GpuAllocator(client, executor, "auto", probe_image="mlhub/notebook:test")
    inv = await alloc.inventory()
    assert [g.id for g in inv] == ["0", "1"]
    assert alloc.inventory_note == "2 GPU(s) found by nvidia-smi"
    assert await alloc.inventory() is inv
    assert len(client.created) == 1
    await alloc.inventory(refresh=True)
    assert len(client.created) == 2
    assert client.removed == [("probe1", True), ("probe2", True)]


async def test_inventory_auto_without_nvidia_is_cpu_only(executor):
    client = FakeProbeClient(start_error=NO_DRIVER)
    alloc = GpuAllocator(client, executor, "auto", probe_image="img")
    assert await alloc.inventory() == []
    assert "NVIDIA" in alloc.inventory_note
    assert client.removed == [("probe1", True)]


def test_parse_nvidia_smi_csv():
    assert parse_nvidia_smi_csv("") == []
    assert parse_nvidia_smi_csv("garbage line\n0, x\n") == []
    (g,) = parse_nvidia_smi_csv("3, GPU-abc, Tesla T4, 15360\n")  # older drivers: 4 columns
    assert g == GPU("3", "GPU-abc", "Tesla T4", 15360, None, "")
    assert g.label() == "GPU 3 (Tesla T4, 15 GiB)"
    assert GPU("1").label() == "GPU 1"
    (g,) = parse_nvidia_smi_csv("0, GPU-x, NVIDIA A100-SXM4-80GB, [N/A], 12.0, 535.1\n")
    assert g.memory_mib is None and g.utilization == 12
    assert g.label() == "GPU 0 (NVIDIA A100-SXM4-80GB)"
