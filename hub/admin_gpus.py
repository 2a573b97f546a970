"""Admins' view of the GPUs: which server holds which GPU, since when, and the
utilisation where the host reports it.

- ``/hub/gpus``: a page (admins only: the ``admin-ui`` scope);
- ``/hub/api/gpus``: the same as JSON (``admin:servers`` scope), for scripts.

Both read the live ledger, rebuilt from the engine like every allocation.
"""

from __future__ import annotations

from datetime import datetime, timezone

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from .spawner import MlhubSpawner


async def gpu_report(spawner: MlhubSpawner) -> dict:
    allocator = spawner.allocator
    inventory = await allocator.inventory(refresh=True)  # fresh utilisation when probed
    ledger = await allocator.ledger()
    holders = ledger.holders()
    now = datetime.now(timezone.utc)
    rows = []
    for gpu in inventory:
        held = [
            {
                "user": h.user,
                "server": h.server,
                "since": h.since.isoformat() if h.since else None,
                "minutes": int((now - h.since).total_seconds() // 60) if h.since else None,
                "pending": h.pending,
            }
            for h in holders.get(gpu.id, [])
        ]
        rows.append(
            {
                "id": gpu.id,
                "uuid": gpu.uuid,
                "model": gpu.model,
                "memory_mib": gpu.memory_mib,
                "utilization": gpu.utilization,
                "holders": held,
                "free_slots": ledger.slots - len(held),
            }
        )
    return {
        "inventory_source": allocator.inventory_note,
        "sharing": ledger.slots,
        "free": len(ledger.free_ids()),
        "total": len(inventory),
        "gpus": rows,
    }


def _spawner_of(handler) -> MlhubSpawner:
    """A spawner to reach the allocator through (one per hub process, shared).

    A user's own; for a service token (``mlhub-admin``, which has no spawner) the
    first hub user's: every spawner shares the same allocator."""
    owner = handler.current_user
    if getattr(owner, "spawner", None) is None:
        orm_user = handler.db.query(orm.User).order_by(orm.User.id).first()
        if orm_user is None:
            raise web.HTTPError(409, "no hub users yet: add one (the GPU report reads the ledger through a spawner)")
        owner = handler.users[orm_user]
    spawner = owner.spawner
    if not isinstance(spawner, MlhubSpawner):  # pragma: no cover - misconfiguration
        raise web.HTTPError(500, "GPU view needs MlhubSpawner")
    return spawner


class GpuPageHandler(BaseHandler):
    @web.authenticated
    @needs_scope("admin-ui")
    async def get(self):
        report = await gpu_report(_spawner_of(self))
        html = await self.render_template("gpus.html", report=report)
        self.finish(html)


class GpuApiHandler(APIHandler):
    @needs_scope("admin:servers")
    async def get(self):
        self.write(await gpu_report(_spawner_of(self)))


HANDLERS = [
    (r"/gpus", GpuPageHandler),
    (r"/api/gpus", GpuApiHandler),
]
