"""Which server holds which GPU: pure bookkeeping, no I/O.

The ledger is never stored on its own: it is rebuilt from what the engine runs
(each notebook container carries its GPU ids in a label) plus the reservations
of spawns still in progress. So it is right after a hub restart, a crashed
container, or a container removed by hand, and can never drift from reality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping


@dataclass(frozen=True)
class Holding:
    """GPUs held by one server (``user`` / ``server``; server '' is the default one)."""

    user: str
    server: str
    gpu_ids: tuple[str, ...]
    since: datetime | None = None
    pending: bool = False  # reserved by a spawn that has not created its container yet

    @property
    def key(self) -> tuple[str, str]:
        return (self.user, self.server)

    def describe(self) -> str:
        who = self.user + (f"/{self.server}" if self.server else "")
        return f"{who} ({', '.join(self.gpu_ids)})"


class NotEnoughGPUs(Exception):
    """Fewer GPUs are free than asked for; the message says what is free and who holds the rest."""

    def __init__(self, wanted: int, free: list[str], holdings: list[Holding]):
        self.wanted, self.free, self.holdings = wanted, free, holdings
        held = "; ".join(h.describe() for h in holdings) or "nobody"
        free_txt = f"{len(free)} free ({', '.join(free)})" if free else "none free"
        super().__init__(
            f"You asked for {wanted} GPU{'s' if wanted != 1 else ''}, but {free_txt}. "
            f"Held by: {held}. Ask for fewer GPUs, start a CPU-only server, or ask an "
            "admin to stop an idle server."
        )


@dataclass
class Ledger:
    """GPU ids of the host and who holds them.

    ``slots`` is how many servers may share one GPU (1 = exclusive, the default).
    """

    gpu_ids: tuple[str, ...]
    holdings: list[Holding] = field(default_factory=list)
    slots: int = 1

    @classmethod
    def build(
        cls, gpu_ids: Iterable[str], holdings: Iterable[Holding], slots: int = 1
    ) -> "Ledger":
        return cls(tuple(gpu_ids), list(holdings), slots)

    def usage(self) -> dict[str, int]:
        """Servers on each GPU of the inventory (ids outside the inventory are ignored)."""
        use = {g: 0 for g in self.gpu_ids}
        for h in self.holdings:
            for g in h.gpu_ids:
                if g in use:
                    use[g] += 1
        return use

    def free_ids(self) -> list[str]:
        return [g for g, n in self.usage().items() if n < self.slots]

    def held_by(self, user: str, server: str) -> Holding | None:
        return next((h for h in self.holdings if h.key == (user, server)), None)

    def count_for_user(self, user: str) -> int:
        return sum(len(h.gpu_ids) for h in self.holdings if h.user == user)

    def holders(self) -> Mapping[str, list[Holding]]:
        out: dict[str, list[Holding]] = {g: [] for g in self.gpu_ids}
        for h in self.holdings:
            for g in h.gpu_ids:
                out.setdefault(g, []).append(h)
        return out

    def allocate(self, user: str, server: str, n: int, since: datetime | None = None) -> Holding:
        """Reserve ``n`` GPUs for ``user``/``server`` (least used first) and record it.

        A server that already holds GPUs gets the same ones back when ``n`` matches.
        Raises NotEnoughGPUs when fewer than ``n`` are free.
        """
        if n < 0:
            raise ValueError("GPU count must be >= 0")
        existing = self.held_by(user, server)
        if existing is not None and len(existing.gpu_ids) == n:
            return existing
        # what is free once this server's own holding (being replaced) is given back;
        # the ledger changes only if the request succeeds
        others = [h for h in self.holdings if h.key != (user, server)]
        if n == 0:
            self.holdings = others
            return Holding(user, server, (), since)
        usage = Ledger(self.gpu_ids, others, self.slots).usage()
        free = [g for g in self.gpu_ids if usage[g] < self.slots]
        if len(free) < n:
            raise NotEnoughGPUs(n, free, [h for h in others if h.gpu_ids])
        # least shared first, then inventory order: deterministic and spreads load
        chosen = sorted(free, key=lambda g: (usage[g], self.gpu_ids.index(g)))[:n]
        holding = Holding(user, server, tuple(sorted(chosen, key=self.gpu_ids.index)), since, True)
        self.holdings = [*others, holding]
        return holding

    def release(self, user: str, server: str) -> None:
        self.holdings = [h for h in self.holdings if h.key != (user, server)]
