"""Fixtures shared by every test: a real Redis server, a fresh namespace per test.

Tests use ``REDIS_URL`` when it is set; otherwise one private server is started for the whole run
and stopped at the end. No test flushes a database: each test works in a namespace of its own, so
a shared server (REDIS_URL) is never wiped.
"""

from __future__ import annotations

import importlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from redis_sessions import core

from .redis_cluster import Cluster
from .redis_server import RedisServer


def pytest_report_header(config: pytest.Config) -> list[str]:
    url = os.environ.get("REDIS_URL")
    server = f"REDIS_URL={url}" if url else "a private server started by the tests"
    return [f"redis-sessions core: {core.IMPLEMENTATION}; Redis: {server}"]


# Suites about connections and servers, the same with either core: marked slow, so CI's pure-core
# pass (-m "not slow") leaves them to the compiled pass.
SLOW_SUITES = ("chaos", "servers")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if any(here / suite in item.path.parents for suite in SLOW_SUITES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.compiled), pytest.param("pure")],
)
def core_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The one implementation fixture: the compiled core and its pure twin, each imported
    directly (not through the picker, so REDIS_SESSIONS_NO_EXTENSIONS does not hide the compiled
    one). A missing compiled module is a skip with its reason, and a failure on CI."""
    if request.param == "pure":
        return importlib.import_module("redis_sessions._pycore")
    try:
        return importlib.import_module("redis_sessions._core")
    except ImportError as exc:
        reason = f"compiled core redis_sessions._core cannot be imported: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: a missing compiled core is an error)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The private server, or None when REDIS_URL points at one the tests did not start."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    return redis_server.url if redis_server else os.environ["REDIS_URL"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace no other test uses; its keys are deleted afterwards (never a FLUSHDB)."""
    ns = "rstest" + secrets.token_hex(4)
    yield ns
    keys = list(redis_client.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def rs(redis_url: str, namespace: str):
    """A RedisSessions in its own namespace, without the periodic wiper."""
    from redis_sessions import RedisSessions

    manager = RedisSessions(redis_url, namespace=namespace, wipe=0)
    yield manager
    manager.close()


class CommandCounter:
    """Counts the commands clients sent to the server (round trips), through MONITOR.

    Commands that scripts run inside Redis are not counted: one FCALL is one round trip.
    ``count`` stops the count; a marker command tells where the measured block ended.
    """

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.marker = "rs-count-" + secrets.token_hex(8)
        self.commands: list[str] = []
        self.clients: list[str] = []  # who sent each command
        self._monitor = self.client.monitor()
        self._monitor.__enter__()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # a first marker proves MONITOR is live before the block starts
        while not self._ready.wait(0.05):
            self.client.echo(self.marker + "-start")
        self._result: int | None = None

    def _read(self) -> None:
        started = False
        while True:
            info = self._monitor.next_command()
            command = info["command"]
            if not started:
                started = command.startswith(f"ECHO {self.marker}-start")
                if started:
                    self._ready.set()
                continue
            if command.startswith(f"ECHO {self.marker}-start"):
                continue
            if command == f"ECHO {self.marker}-end":
                return
            if info.get("client_type") != "lua":
                self.commands.append(command)
                self.clients.append(f"{info.get('client_address')}:{info.get('client_port')}")

    @property
    def count(self) -> int:
        if self._result is None:
            self.client.echo(self.marker + "-end")
            self._thread.join(10)
            self._monitor.__exit__(None, None, None)
            self.client.close()
            self._result = len(self.commands)
        return self._result

    @property
    def writes(self) -> list[str]:
        """The commands that may write (anything but a hot load's HMGET and the markers)."""
        self.count
        return [c for c in self.commands if not c.startswith(("HMGET ", "ECHO "))]


@pytest.fixture
def command_counter(redis_server: RedisServer | None, redis_url: str):
    """``counter = command_counter(); ...; counter.count``: commands the server ran in between.

    Only meaningful on the private server (nothing else talks to it); on REDIS_URL the test is
    skipped with that reason.
    """
    if redis_server is None:
        pytest.skip("command counting needs the private server (REDIS_URL is shared)")
    def make() -> CommandCounter:
        return CommandCounter(redis_url)

    yield make


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RedisServer]]:
    """``server_factory("--maxmemory", "1mb", ...)``: a private server of its own with these
    configuration directives (a Redis without Functions, with an eviction policy, a cluster
    node...), stopped at the end of the test."""
    started: list[RedisServer] = []

    def start(*config: str) -> RedisServer:
        try:
            server = RedisServer(config=config)
        except RuntimeError as exc:  # no server binary here (REDIS_URL runs may lack one)
            pytest.skip(f"a configured server is needed: {exc}")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The run's Redis Cluster (tests/redis_cluster.py), shared by tests/cluster and tests/chaos."""
    group = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield group.start()
    finally:
        group.stop()


@pytest.fixture
def cluster_ns(cluster: Cluster) -> Iterator[str]:
    """A namespace of one test; its keys are deleted afterwards on every master."""
    ns = "rsc" + secrets.token_hex(4)
    yield ns
    for node in cluster.nodes:
        if node.alive:
            client = node.client()
            try:
                keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
                for key in keys:
                    client.delete(key)
            except redis.ResponseError:
                pass  # a replica refuses writes (READONLY): its master deletes
            finally:
                client.close()
