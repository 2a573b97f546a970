"""hub.gpus.ledger.Ledger: who holds which GPU. Pure bookkeeping, so it is tested
exhaustively: examples for each rule, then a hypothesis state machine that runs
random allocate/release sequences against a simple model and checks the
invariants after every step (no GPU over-shared, allocation succeeds exactly
when enough GPUs are free, a refusal changes nothing, the ledger can be rebuilt
from its holdings alone, as the allocator does after a hub restart)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hub.gpus.ledger import Holding, Ledger, NotEnoughGPUs

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def ledger(ids="0 1 2 3", slots: int = 1) -> Ledger:
    return Ledger.build(ids.split(), [], slots)


# ---------------------------------------------------------------- exclusive allocation


def test_exclusive_allocation_hands_each_gpu_to_one_server():
    led = ledger("0 1 2")
    a = led.allocate("ann", "", 1)
    b = led.allocate("bob", "", 1)
    c = led.allocate("cy", "train", 1)
    assert [a.gpu_ids, b.gpu_ids, c.gpu_ids] == [("0",), ("1",), ("2",)]
    assert led.free_ids() == []
    assert led.usage() == {"0": 1, "1": 1, "2": 1}
    with pytest.raises(NotEnoughGPUs):
        led.allocate("dee", "", 1)


def test_allocation_records_who_and_since_and_marks_it_pending():
    led = ledger("0 1")
    h = led.allocate("ann", "big", 2, since=T0)
    assert h == Holding("ann", "big", ("0", "1"), T0, pending=True)
    assert led.held_by("ann", "big") is h
    assert led.held_by("ann", "") is None
    assert led.holdings == [h]


def test_multi_gpu_allocation_takes_distinct_free_ids_in_inventory_order():
    led = ledger("0 1 2 3")
    led.allocate("ann", "", 1)  # 0
    led.allocate("bob", "", 1)  # 1
    led.release("ann", "")
    h = led.allocate("cy", "", 3)
    assert h.gpu_ids == ("0", "2", "3")


def test_inventory_order_not_string_order_decides():
    # ids are whatever MLHUB_GPUS lists; "10" must not sort before "2"
    led = Ledger.build(["3", "10", "2"], [], 1)
    assert led.allocate("ann", "", 1).gpu_ids == ("3",)
    assert led.allocate("bob", "", 2).gpu_ids == ("10", "2")


# ---------------------------------------------------------------- sharing (slots > 1)


def test_least_used_first_spreads_servers_over_gpus_when_shared():
    led = ledger("0 1 2", slots=2)
    got = [led.allocate(f"u{i}", "", 1).gpu_ids for i in range(6)]
    # every GPU gets a first server before any gets a second
    assert got == [("0",), ("1",), ("2",), ("0",), ("1",), ("2",)]
    assert led.usage() == {"0": 2, "1": 2, "2": 2}
    assert led.free_ids() == []
    with pytest.raises(NotEnoughGPUs):
        led.allocate("late", "", 1)


def test_shared_multi_gpu_allocation_prefers_idle_gpus():
    led = ledger("0 1 2 3", slots=2)
    led.allocate("ann", "", 1)  # 0
    led.allocate("bob", "", 1)  # 1
    h = led.allocate("cy", "", 3)
    assert h.gpu_ids == ("0", "2", "3")  # 2 and 3 (idle) then 0 (first of the used ones)
    assert led.usage() == {"0": 2, "1": 1, "2": 1, "3": 1}
    assert led.free_ids() == ["1", "2", "3"]


def test_one_server_never_gets_the_same_gpu_twice_even_when_shared():
    led = ledger("0 1", slots=3)
    h = led.allocate("ann", "", 2)
    assert sorted(h.gpu_ids) == ["0", "1"]
    with pytest.raises(NotEnoughGPUs):
        led.allocate("bob", "", 3)  # 2 GPUs with room, not 3


# ---------------------------------------------------------------- idempotency, replacement


def test_same_server_same_count_returns_the_same_holding():
    led = ledger("0 1 2 3")
    first = led.allocate("ann", "x", 2, since=T0)
    led.allocate("bob", "", 1)
    again = led.allocate("ann", "x", 2, since=datetime.now(timezone.utc))
    assert again is first
    assert again.gpu_ids == ("0", "1") and again.since == T0
    assert len(led.holdings) == 2
    assert led.count_for_user("ann") == 2


def test_same_server_different_count_replaces_its_holding():
    led = ledger("0 1 2 3")
    led.allocate("ann", "x", 1)  # 0
    led.allocate("bob", "", 1)  # 1
    h = led.allocate("ann", "x", 3)
    assert h.gpu_ids == ("0", "2", "3")  # its own old GPU counts as free again
    assert [x.key for x in led.holdings] == [("bob", ""), ("ann", "x")]
    assert led.count_for_user("ann") == 3
    smaller = led.allocate("ann", "x", 1)
    assert smaller.gpu_ids == ("0",)
    assert led.count_for_user("ann") == 1
    assert len(led.holdings) == 2


def test_asking_zero_releases_a_previous_holding():
    led = ledger("0 1")
    led.allocate("ann", "", 2)
    h = led.allocate("ann", "", 0)
    assert h.gpu_ids == ()
    assert led.holdings == []
    assert led.free_ids() == ["0", "1"]


def test_zero_gpus_returns_an_empty_holding_without_recording_it():
    led = ledger("0 1")
    h = led.allocate("ann", "cpu", 0, since=T0)
    assert (h.user, h.server, h.gpu_ids, h.since) == ("ann", "cpu", (), T0)
    assert led.holdings == []
    assert led.held_by("ann", "cpu") is None
    # works on a CPU-only host too
    assert Ledger.build([], [], 1).allocate("ann", "", 0).gpu_ids == ()


def test_negative_count_is_refused():
    led = ledger("0 1")
    with pytest.raises(ValueError):
        led.allocate("ann", "", -1)
    assert led.holdings == []


# ---------------------------------------------------------------- release, queries


def test_release_frees_the_gpus_of_that_server_only():
    led = ledger("0 1 2")
    led.allocate("ann", "", 1)
    led.allocate("ann", "train", 1)
    led.allocate("bob", "", 1)
    led.release("ann", "train")
    assert led.free_ids() == ["1"]
    assert led.count_for_user("ann") == 1
    assert led.allocate("cy", "", 1).gpu_ids == ("1",)
    led.release("nobody", "")  # unknown server: no-op
    led.release("ann", "train")  # twice: no-op
    assert len(led.holdings) == 3


def test_count_for_user_sums_all_their_servers():
    led = ledger("0 1 2 3 4")
    led.allocate("ann", "", 1)
    led.allocate("ann", "big", 2)
    led.allocate("bob", "", 2)
    assert led.count_for_user("ann") == 3
    assert led.count_for_user("bob") == 2
    assert led.count_for_user("cy") == 0


def test_usage_and_holders_ignore_nothing_in_the_inventory():
    led = Ledger.build(
        ["0", "1"],
        [Holding("ann", "", ("0", "7")), Holding("bob", "x", ("0",))],
        slots=2,
    )
    # "7" (no longer in the inventory) does not appear in usage or free ids
    assert led.usage() == {"0": 2, "1": 0}
    assert led.free_ids() == ["1"]
    holders = led.holders()
    assert [h.key for h in holders["0"]] == [("ann", ""), ("bob", "x")]
    assert holders["1"] == []


def test_holding_describe():
    assert Holding("ann", "", ("0", "3")).describe() == "ann (0, 3)"
    assert Holding("bob", "train", ("2",)).describe() == "bob/train (2)"


# ---------------------------------------------------------------- the refusal message


def test_not_enough_gpus_says_what_is_free_and_who_holds_the_rest():
    led = ledger("0 1 2 3")
    led.allocate("ann", "", 1)  # 0
    led.allocate("bob", "train", 2)  # 1, 2
    with pytest.raises(NotEnoughGPUs) as exc:
        led.allocate("cy", "", 2)
    e = exc.value
    assert e.wanted == 2
    assert e.free == ["3"]
    assert [h.key for h in e.holdings] == [("ann", ""), ("bob", "train")]
    assert str(e) == (
        "You asked for 2 GPUs, but 1 free (3). Held by: ann (0); bob/train (1, 2). "
        "Ask for fewer GPUs, start a CPU-only server, or ask an admin to stop an idle server."
    )


def test_not_enough_gpus_message_singular_and_none_free():
    led = ledger("0")
    led.allocate("ann", "nb", 1)
    with pytest.raises(NotEnoughGPUs) as exc:
        led.allocate("bob", "", 1)
    msg = str(exc.value)
    assert msg.startswith("You asked for 1 GPU, but none free. Held by: ann/nb (0).")
    assert exc.value.free == []


def test_not_enough_gpus_on_a_cpu_only_host_is_held_by_nobody():
    with pytest.raises(NotEnoughGPUs) as exc:
        Ledger.build([], [], 1).allocate("ann", "", 1)
    assert str(exc.value).startswith("You asked for 1 GPU, but none free. Held by: nobody.")


def test_not_enough_gpus_lists_several_free_ids():
    led = ledger("0 1 2 3")
    led.allocate("ann", "", 1)
    with pytest.raises(NotEnoughGPUs) as exc:
        led.allocate("bob", "", 4)
    assert "You asked for 4 GPUs, but 3 free (1, 2, 3). Held by: ann (0)." in str(exc.value)


def test_refusal_for_a_new_server_leaves_the_ledger_unchanged():
    led = ledger("0 1")
    led.allocate("ann", "", 1)
    before = list(led.holdings)
    with pytest.raises(NotEnoughGPUs):
        led.allocate("bob", "", 2)
    assert led.holdings == before


def test_refused_resize_keeps_the_servers_old_gpus():
    led = ledger("0 1")
    led.allocate("ann", "", 1)  # 0
    led.allocate("bob", "", 1)  # 1
    before = list(led.holdings)
    with pytest.raises(NotEnoughGPUs):
        led.allocate("ann", "", 2)  # 1 (its own) + 0 free: refused
    assert led.holdings == before


# ---------------------------------------------------------------- reconstruction


holding_lists = st.integers(0, 8).flatmap(
    lambda k: st.tuples(
        st.just([str(i) for i in range(k)]),
        st.lists(
            st.tuples(
                st.sampled_from(["ann", "bob", "cy"]),
                st.sampled_from(["", "a", "b"]),
                st.lists(st.integers(0, max(k - 1, 0)), unique=True, max_size=k),
            ),
            max_size=6,
            unique_by=lambda t: (t[0], t[1]),
        ),
        st.integers(1, 3),
    )
)


@settings(max_examples=150, deadline=None)
@given(holding_lists)
def test_build_from_holdings_matches_the_holdings(case):
    ids, raw, slots = case
    holdings = [Holding(u, s, tuple(ids[i] for i in idx)) for u, s, idx in raw if ids]
    led = Ledger.build(ids, holdings, slots)
    expected = {g: sum(g in h.gpu_ids for h in holdings) for g in ids}
    assert led.usage() == expected
    assert led.free_ids() == [g for g in ids if expected[g] < slots]
    for user in ("ann", "bob", "cy"):
        assert led.count_for_user(user) == sum(len(h.gpu_ids) for h in holdings if h.user == user)
    # rebuilding from a copy of its holdings is indistinguishable
    again = Ledger.build(tuple(led.gpu_ids), list(led.holdings), led.slots)
    assert again.usage() == led.usage() and again.holders() == led.holders()


# ---------------------------------------------------------------- state machine

USERS = ["ann", "bob", "cy", "<dee>"]
SERVERS = ["", "train", "gpu"]
ID_POOL = [str(i) for i in range(12)]


class LedgerMachine(RuleBasedStateMachine):
    """Random allocate/release sequences against a dict model {(user, server): ids}."""

    @initialize(
        ids=st.lists(st.sampled_from(ID_POOL), unique=True, min_size=0, max_size=8),
        slots=st.integers(1, 3),
    )
    def setup(self, ids, slots):
        self.ids = tuple(ids)
        self.slots = slots
        self.led = Ledger.build(self.ids, [], slots)
        self.model: dict[tuple[str, str], tuple[str, ...]] = {}

    def model_usage(self, without=None) -> dict[str, int]:
        use = {g: 0 for g in self.ids}
        for key, gids in self.model.items():
            if key != without:
                for g in gids:
                    use[g] += 1
        return use

    @rule(
        user=st.sampled_from(USERS),
        server=st.sampled_from(SERVERS),
        n=st.integers(0, 5),
    )
    def allocate(self, user, server, n):
        key = (user, server)
        old = self.model.get(key)
        before = list(self.led.holdings)
        if old is not None and len(old) == n:
            h = self.led.allocate(user, server, n)
            assert h.gpu_ids == old
            assert self.led.holdings == before
            return
        # the server's own old GPUs count as free for its new request
        use = self.model_usage(without=key)
        free = [g for g in self.ids if use[g] < self.slots]
        try:
            h = self.led.allocate(user, server, n)
        except NotEnoughGPUs as e:
            assert n > len(free), f"refused although {len(free)} free for {n}"
            assert e.wanted == n
            assert e.free == free
            assert f"You asked for {n} GPU" in str(e)
            assert self.led.holdings == before  # a refusal changes nothing, a resize included
            return
        assert n <= len(free), f"granted {n} with only {len(free)} free"
        assert h.key == key
        assert len(h.gpu_ids) == n
        assert len(set(h.gpu_ids)) == n
        assert set(h.gpu_ids) <= set(free)
        # least used first: nothing chosen is busier than anything left out
        if h.gpu_ids and set(free) - set(h.gpu_ids):
            assert max(use[g] for g in h.gpu_ids) <= min(use[g] for g in set(free) - set(h.gpu_ids))
        # and in inventory order
        assert list(h.gpu_ids) == sorted(h.gpu_ids, key=self.ids.index)
        if n == 0:
            assert self.led.held_by(user, server) is None
            self.model.pop(key, None)
        else:
            assert self.led.held_by(user, server) == h
            self.model[key] = h.gpu_ids

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def release_held(self, data):
        key = data.draw(st.sampled_from(sorted(self.model)))
        self.led.release(*key)
        del self.model[key]

    @rule(user=st.sampled_from(USERS), server=st.sampled_from(SERVERS))
    def release_any(self, user, server):
        self.led.release(user, server)
        self.model.pop((user, server), None)

    @invariant()
    def matches_model(self):
        assert {h.key: h.gpu_ids for h in self.led.holdings} == self.model
        assert len(self.led.holdings) == len(self.model)  # one holding per server

    @invariant()
    def no_gpu_over_shared(self):
        use = self.led.usage()
        assert use == self.model_usage()
        assert all(n <= self.slots for n in use.values())
        assert self.led.free_ids() == [g for g in self.ids if use[g] < self.slots]

    @invariant()
    def holdings_well_formed(self):
        for h in self.led.holdings:
            assert h.gpu_ids, "empty holdings are never recorded"
            assert len(set(h.gpu_ids)) == len(h.gpu_ids)
            assert set(h.gpu_ids) <= set(self.ids)

    @invariant()
    def counts_per_user(self):
        for user in USERS:
            assert self.led.count_for_user(user) == sum(
                len(g) for (u, _), g in self.model.items() if u == user
            )

    @invariant()
    def holders_agree_with_usage(self):
        holders = self.led.holders()
        assert {g: len(hs) for g, hs in holders.items()} == self.led.usage()

    @invariant()
    def rebuilt_ledger_is_identical(self):
        again = Ledger.build(self.ids, list(self.led.holdings), self.slots)
        assert again.usage() == self.led.usage()
        assert again.free_ids() == self.led.free_ids()
        for user in USERS:
            assert again.count_for_user(user) == self.led.count_for_user(user)


LedgerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
