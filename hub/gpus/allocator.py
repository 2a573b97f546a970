"""GPU allocation for spawns: the ledger rebuilt from the engine, under one lock.

One allocator per hub process. A spawn asking for GPUs calls :meth:`reserve`,
which, under an asyncio lock, rebuilds the ledger from the engine's notebook
containers (their ``org.mlhub.gpus`` label) plus the reservations of spawns
still creating their container, picks free GPUs, and records a reservation.
Two users asking for the last GPU at once: the lock orders them, the second
sees the first's reservation and is refused. The reservation is dropped once
the container exists (its label then carries the truth) or the spawn failed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import Executor
from datetime import datetime, timezone

from .inventory import GPU, from_ids, probe_with_engine
from .ledger import Holding, Ledger, NotEnoughGPUs

log = logging.getLogger(__name__)

GPU_LABEL = "org.mlhub.gpus"
USER_LABEL = "org.mlhub.user"
SERVER_LABEL = "org.mlhub.server"
LIVE_STATES = {"created", "running", "restarting", "paused"}


class QuotaExceeded(Exception):
    pass


def _parse_time(text: str | int | None) -> datetime | None:
    if isinstance(text, int):
        return datetime.fromtimestamp(text, timezone.utc)
    return None


class GpuAllocator:
    """``client`` is a docker.APIClient whose blocking calls run on ``executor``.
    ``gpus`` is MLHUB_GPUS: 'auto', 'none' or a tuple of ids; ``reserved`` ids (or
    UUIDs) belong to other containers of the stack and are never handed out."""

    def __init__(
        self,
        client,
        executor: Executor,
        gpus: str | tuple[str, ...],
        probe_image: str,
        slots: int = 1,
        reserved: tuple[str, ...] = (),
    ):
        self.client = client
        self.executor = executor
        self.spec = gpus
        self.probe_image = probe_image
        self.slots = slots
        self.reserved = frozenset(reserved)
        self.lock = asyncio.Lock()
        self.pending: dict[tuple[str, str], Holding] = {}
        self._inventory: list[GPU] | None = None
        self.inventory_note = ""

    async def docker(self, method: str, *args, **kwargs):
        call = functools.partial(getattr(self.client, method), *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    # ------------------------------------------------------------------ inventory
    async def inventory(self, refresh: bool = False) -> list[GPU]:
        if self._inventory is not None and not refresh:
            return self._inventory
        if self.spec == "none":
            gpus, note = [], "MLHUB_GPUS=none: CPU-only"
        elif isinstance(self.spec, tuple):
            gpus, note = from_ids(self.spec), f"{len(self.spec)} GPU(s) listed in MLHUB_GPUS"
        else:
            gpus, note = await asyncio.get_running_loop().run_in_executor(
                self.executor, probe_with_engine, self.client, self.probe_image
            )
        kept = [g for g in gpus if g.id not in self.reserved and g.uuid not in self.reserved]
        if len(kept) != len(gpus):
            held = ", ".join(g.id for g in gpus if g not in kept)
            note += f"; GPU {held} kept for TF Serving (docker-compose.gpu.yml), not handed out"
            gpus = kept
        if self._inventory is None or note != self.inventory_note:
            log.info("GPU inventory: %s", note)
        self._inventory, self.inventory_note = gpus, note
        return gpus

    # ------------------------------------------------------------------ engine state
    async def engine_holdings(self) -> list[Holding]:
        containers = await self.docker("containers", all=True, filters={"label": GPU_LABEL})
        out = []
        for c in containers:
            labels = c.get("Labels") or {}
            ids = tuple(i for i in labels.get(GPU_LABEL, "").split(",") if i)
            if not ids or c.get("State") not in LIVE_STATES:
                continue
            out.append(
                Holding(
                    user=labels.get(USER_LABEL, "?"),
                    server=labels.get(SERVER_LABEL, ""),
                    gpu_ids=ids,
                    since=_parse_time(c.get("Created")),
                )
            )
        return out

    async def ledger(self) -> Ledger:
        inventory = await self.inventory()
        # Reservations as they stand BEFORE the engine is read: one settled while
        # we wait for the engine has its container by then, but the read may have
        # missed it; counting the snapshot too never loses it.
        before = dict(self.pending)
        holdings = {h.key: h for h in await self.engine_holdings()}
        holdings.update(before)
        holdings.update(self.pending)  # a spawn in progress overrides its old container
        return Ledger.build([g.id for g in inventory], holdings.values(), self.slots)

    # ------------------------------------------------------------------ spawns
    async def reserve(self, user: str, server: str, n: int, quota: int) -> Holding:
        """Reserve ``n`` GPUs for a spawn; raise QuotaExceeded or NotEnoughGPUs."""
        async with self.lock:
            ledger = await self.ledger()
            ledger.release(user, server)  # this server's old holding is being replaced
            if n and ledger.count_for_user(user) + n > quota:
                held = ledger.count_for_user(user)
                raise QuotaExceeded(
                    f"Your GPU quota is {quota}; you hold {held} on other servers "
                    f"and asked for {n}. Stop another server or ask for fewer GPUs."
                )
            if n > len(ledger.gpu_ids):
                raise NotEnoughGPUs(n, ledger.free_ids(), [h for h in ledger.holdings if h.gpu_ids])
            holding = ledger.allocate(user, server, n, since=datetime.now(timezone.utc))
            if holding.gpu_ids:
                self.pending[(user, server)] = holding
            return holding

    def settle(self, user: str, server: str) -> None:
        """The spawn finished (its container holds the label) or failed: drop the reservation."""
        self.pending.pop((user, server), None)
