"""Benchmark fixtures: a Redis server (REDIS_URL, else a private one) and a manager on it.

Run with ``pytest bench/`` (they stay out of the default test run); add ``--benchmark-json=F`` to
save figures.
"""

from __future__ import annotations

import secrets

import pytest

from _common import redis_url as _redis_url


@pytest.fixture(scope="session")
def redis_url():
    with _redis_url() as url:
        yield url


@pytest.fixture
def rs(redis_url):
    from redis_sessions import RedisSessions

    manager = RedisSessions(redis_url, namespace="rsbench" + secrets.token_hex(4), wipe=0)
    yield manager
    manager.killall("benchapp")
    manager.close()


def pytest_terminal_summary(terminalreporter, config):
    """Print the throughput of the threaded benchmarks (ops/s), which the table does not show."""
    session = getattr(config, "_benchmarksession", None)
    rows = [
        (bench.name, bench.extra_info["ops_per_s"])
        for bench in getattr(session, "benchmarks", [])
        if "ops_per_s" in bench.extra_info
    ]
    if rows:
        terminalreporter.section("throughput with 8 threads (ops/s, median batch)")
        for name, ops in rows:
            terminalreporter.write_line(f"{name:40} {ops:>10,}")
