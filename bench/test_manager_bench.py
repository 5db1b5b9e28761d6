"""Manager operations against a real Redis, sequential and with 8 threads (pytest-benchmark).

    pytest bench/test_manager_bench.py --benchmark-columns=median,ops

The threaded benchmarks time one batch of 8 x 50 calls; ``extra_info["ops_per_s"]`` is the
throughput of that batch (median round).
"""

from __future__ import annotations

import itertools
import threading

import pytest

APP = "benchapp"
DATA = {f"key{i}": f"value{i}" for i in range(10)}
THREADS, PER_THREAD = 8, 50


@pytest.fixture
def token(rs):
    return rs.create(APP, "user1", "10.0.0.1", d=DATA)


def test_create(benchmark, rs):
    benchmark(rs.create, APP, "user1", "10.0.0.1", 7200, DATA)


def test_get(benchmark, rs, token):
    assert benchmark(rs.get, APP, token) is not None


def test_set(benchmark, rs, token):
    counter = itertools.count()
    benchmark(lambda: rs.set(APP, token, {"key3": next(counter)}))


def test_soid(benchmark, rs):
    for _ in range(5):
        rs.create(APP, "user1", "10.0.0.1", d=DATA)
    assert len(benchmark(rs.soid, APP, "user1")) == 5


def test_kill(benchmark, rs):
    def setup():
        return (APP, rs.create(APP, "user1", "10.0.0.1")), {}

    benchmark.pedantic(rs.kill, setup=setup, rounds=500)


def _threaded(benchmark, work):
    def batch():
        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    benchmark.pedantic(batch, rounds=10, warmup_rounds=1)
    if benchmark.stats is not None:  # None with --benchmark-disable
        benchmark.extra_info["ops_per_s"] = round(THREADS * PER_THREAD / benchmark.stats.stats.median)


@pytest.mark.parametrize("op", ["create", "get", "set", "soid", "kill"])
def test_threaded(benchmark, rs, op):
    tokens = [rs.create(APP, f"user{i % 8}", "10.0.0.1", d=DATA) for i in range(64)]

    def work():
        for i in range(PER_THREAD):
            if op == "create":
                rs.create(APP, "user1", "10.0.0.1", 7200, DATA)
            elif op == "get":
                rs.get(APP, tokens[i % 64])
            elif op == "set":
                rs.set(APP, tokens[i % 64], {"key3": i})
            elif op == "soid":
                rs.soid(APP, f"user{i % 8}")
            else:
                rs.kill(APP, rs.create(APP, "user9", "10.0.0.1"))  # kill needs a live session

    _threaded(benchmark, work)
