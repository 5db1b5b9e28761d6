"""Sentinel (1 master, 1 replica, 3 sentinels): a manual failover (SENTINEL FAILOVER) under a
load of creates through ``Sentinel.master_for()``. Without the durability option acknowledged
creates may be lost (asynchronous replication: the count is printed); with
``durability="replicated"`` none is."""

from __future__ import annotations

import secrets

import pytest

from .runs import sentinel_failover, sentinel_manager, under_load


@pytest.mark.slow
@pytest.mark.parametrize("durability", [None, "replicated"])
def test_manual_failover_under_load(sentinel_group, durability) -> None:
    namespace = "rss" + secrets.token_hex(4)
    manager = sentinel_manager(sentinel_group, namespace, durability)
    try:
        run = under_load(manager, lambda: sentinel_failover(sentinel_group))
    finally:
        manager.close()
    print(f"\nSentinel failover, durability={durability}: {run.row()}")
    assert len(run.acked) >= 600  # writes resumed on the new master
    if durability:
        assert run.lost == 0, run.row()
