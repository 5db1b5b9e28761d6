"""Wire compatibility with the real Node ``redis-sessions`` v4, in both directions.

Node and Python share one Redis and one namespace: whatever one side writes, the other must read,
update and kill, with the same keys, hash fields, members, scores and token format.

The npm package is installed once into a cache folder keyed by ``node/package.json``
(``$REDIS_SESSIONS_NODE_CACHE``, else ``~/.cache/redis-sessions-tests/node/<hash>``), and driven by
``node/driver.js``: one long-running node process per module, one JSON command per line.
Without node or npm the module is skipped with the reason; with ``CI`` set it fails instead.

Time is simulated, not slept: ``age()`` moves a session's last activity (and every Redis TTL in
the namespace) back by N seconds, as if N seconds had passed without traffic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

pytestmark = pytest.mark.node

NODE_SRC = Path(__file__).parent / "node"
DRIVER = NODE_SRC / "driver.js"
APP = "interop_app"
# Node's _createToken(): 55 of [A-Ya-z0-9] (no "Z"), "Z", Date.now() in base 36.
TOKEN_RE = re.compile(r"[A-Ya-z0-9]{55}Z([0-9a-z]{8})")


# --------------------------------------------------------------------------------------------
# node, npm and the cached install of redis-sessions@4


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _cache_root() -> Path:
    configured = os.environ.get("REDIS_SESSIONS_NODE_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "redis-sessions-tests" / "node"
    try:
        root.mkdir(parents=True, exist_ok=True)
        return root
    except OSError:
        return Path(tempfile.gettempdir()) / "redis-sessions-tests-node"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One installer at a time (pytest-xdist workers share the cache)."""
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_node_package(npm: str) -> Path:
    """The folder whose node_modules holds redis-sessions@4; installed on first use only."""
    spec = (NODE_SRC / "package.json").read_bytes()
    key = hashlib.sha256(spec).hexdigest()[:16]
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    marker = target / "node_modules" / "redis-sessions" / "package.json"
    if marker.exists():
        return target
    with _file_lock(root / f"{key}.lock"):
        if marker.exists():
            return target
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        try:
            shutil.copy(NODE_SRC / "package.json", work / "package.json")
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--no-package-lock",
                 "--omit=dev", "--loglevel=error"],
                cwd=work, capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"npm install of node/package.json failed ({proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}"
                )
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def node_install() -> tuple[str, Path]:
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if not path]
    if missing:
        _unavailable(
            f"{' and '.join(missing)} not found on PATH: the Node interop tests run the real "
            "npm package redis-sessions@4 and need Node.js >= 16 with npm"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < 16:
        _unavailable(f"node {version or '?'} is too old: redis-sessions@4 needs Node.js >= 16")
    return node, install_node_package(npm)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# the driver process and a Python face for one Node RedisSessions instance


class NodeError(Exception):
    """An error thrown by Node's redis-sessions: ``name`` is Node's code, ``message`` its text."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class NodeDriver:
    def __init__(self, node: str, node_dir: Path) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [node, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, "RS_NODE_DIR": str(node_dir)},
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.seq = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.version = self.call("", "version", {})

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)

    def _stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    def call(self, inst: str, op: str, args: dict, timeout: float = 15.0) -> Any:
        self.seq += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"seq": self.seq, "inst": inst, "op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node driver: no reply to {op} in {timeout}s\n{self._stderr_text()}")
        if line is None:
            raise AssertionError(f"node driver exited ({self.proc.poll()}):\n{self._stderr_text()}")
        reply = json.loads(line)
        assert reply["seq"] == self.seq, reply
        if not reply["ok"]:
            raise NodeError(reply["error"]["name"], reply["error"]["message"])
        return reply["result"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


class NodeRS:
    """One Node ``RedisSessions`` in the driver, with the Python manager's signatures."""

    def __init__(self, driver: NodeDriver, inst: str) -> None:
        self.driver, self.inst = driver, inst

    def call(self, op: str, **args: Any) -> Any:
        return self.driver.call(self.inst, op, {k: v for k, v in args.items() if v is not None})

    def create(self, app, id, ip, ttl=None, d=None, no_resave=None) -> str:
        return self.call("create", app=app, id=id, ip=ip, ttl=ttl, d=d, no_resave=no_resave)["token"]

    def get(self, app, token):
        return self.call("get", app=app, token=token)

    def set(self, app, token, d):
        return self.call("set", app=app, token=token, d=d)

    def kill(self, app, token) -> int:
        return self.call("kill", app=app, token=token)["kill"]

    def killsoid(self, app, id) -> int:
        return self.call("killsoid", app=app, id=id)["kill"]

    def killall(self, app) -> int:
        return self.call("killall", app=app)["kill"]

    def soid(self, app, id) -> list:
        return self.call("soid", app=app, id=id)["sessions"]

    def soapp(self, app, dt) -> list:
        return self.call("soapp", app=app, deltaTime=dt)["sessions"]

    def activity(self, app, dt) -> int:
        return self.call("activity", app=app, deltaTime=dt)["activity"]


@pytest.fixture(scope="module")
def node_driver(node_install: tuple[str, Path]) -> Iterator[NodeDriver]:
    node, node_dir = node_install
    driver = NodeDriver(node, node_dir)
    assert driver.version["version"].startswith("4."), driver.version
    yield driver
    driver.close()


@pytest.fixture
def node_open(node_driver: NodeDriver, redis_url: str, namespace: str):
    """``node_open(name, cachetime=0)``: a Node RedisSessions on this test's namespace, wiper off."""
    opened: list[str] = []

    def open_(name: str = "main", cachetime: int = 0, ns: str | None = None) -> NodeRS:
        node_driver.call(name, "open", {
            "namespace": ns or namespace, "wipe": 0, "cachetime": cachetime,
            "options": {"url": redis_url},
        })
        opened.append(name)
        return NodeRS(node_driver, name)

    yield open_
    for name in opened:
        node_driver.call(name, "close", {})


@pytest.fixture
def node(node_open) -> NodeRS:
    return node_open("main")


@pytest.fixture
def make_rs(redis_url: str, namespace: str):
    """``make_rs(**kwargs)``: another Python RedisSessions (closed afterwards)."""
    from redis_sessions import RedisSessions

    made = []

    def make(**kwargs: Any):
        kwargs.setdefault("namespace", namespace)
        kwargs.setdefault("wipe", 0)
        manager = RedisSessions(redis_url, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def sides(make_rs, node) -> dict[str, Any]:
    """Python as a mixed deployment runs it: redis_ttl=False (the README's advice with Node)."""
    return {"python": make_rs(redis_ttl=False), "node": node}


# --------------------------------------------------------------------------------------------
# raw Redis helpers


def keys_of(client: redis.Redis, ns: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=f"{ns}:*", count=1000))


def server_now(client: redis.Redis) -> int:
    return int(client.time()[0])


def dump(client: redis.Redis, ns: str) -> dict[str, dict]:
    out = {}
    for key in keys_of(client, ns):
        kind = client.type(key).decode()
        if kind == "hash":
            value: Any = {k.decode(): v for k, v in client.hgetall(key).items()}
        elif kind == "zset":
            value = {m.decode(): s for m, s in client.zrange(key, 0, -1, withscores=True)}
        elif kind == "set":
            value = sorted(m.decode() for m in client.smembers(key))
        else:
            value = None
        out[key] = {"type": kind, "ttl": client.ttl(key), "value": value}
    return out


def normalized(layout: dict[str, dict], ns: str, tokens: dict[str, str]) -> dict[str, dict]:
    def norm(text: str) -> str:
        if text.startswith(ns + ":"):
            text = "<ns>" + text[len(ns):]
        for token, name in tokens.items():
            text = text.replace(token, name)
        return text

    out = {}
    for key, entry in layout.items():
        value = entry["value"]
        if entry["type"] in ("zset",):
            value = {norm(m): s for m, s in value.items()}
        elif entry["type"] == "set":
            value = sorted(norm(m) for m in value)
        out[norm(key)] = {**entry, "value": value}
    return out


def age(client: redis.Redis, ns: str, app: str, token: str, seconds: int) -> None:
    """As if ``seconds`` passed since the session's last activity: ``la`` and its three scores
    move back, and every Redis TTL in the namespace shrinks (a key whose TTL runs out is gone)."""
    key = f"{ns}:{app}:{token}"
    la, id_ = client.hmget(key, ["la", "id"])
    assert la is not None, f"age(): no session {key}"
    uid = id_.decode()
    client.hset(key, "la", int(la) - seconds)
    for zkey, member in (
        (f"{ns}:{app}:_sessions", f"{token}:{uid}"),
        (f"{ns}:{app}:_users", uid),
        (f"{ns}:SESSIONS", f"{app}:{token}:{uid}"),
    ):
        score = client.zscore(zkey, member)
        if score is not None:
            client.zadd(zkey, {member: score - seconds}, xx=True)
    for k in keys_of(client, ns):
        pttl = client.pttl(k)
        if pttl > 0:
            if pttl <= seconds * 1000:
                client.delete(k)
            else:
                client.pexpire(k, pttl - seconds * 1000)


def wait_until(probe: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 3.0) -> Any:
    """Poll ``probe()`` until ``check`` accepts its value; return the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if check(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def without(session: dict | None, *fields: str) -> dict | None:
    return None if session is None else {k: v for k, v in session.items() if k not in fields}


# --------------------------------------------------------------------------------------------
# 1. Node creates, Python reads; the raw layouts of both creators are the same

DATA = {
    "s": "héllo wörld ✓ 😀 日本",
    "ascii": "plain",
    "quote": 'a "q" \\ /\n\t',
    "i": 42,
    "neg": -7,
    "zero": 0,
    "f": 0.30000000000000004,
    "f2": 1.5,
    "t": True,
    "fa": False,
}


def test_node_create_python_get_and_identical_layout(rs, node, make_rs, redis_client, namespace):
    t0 = server_now(redis_client)
    token_n = node.create(APP, "user1", "10.0.0.1", ttl=3600, d=DATA)
    layout_n = dump(redis_client, namespace)

    ns_py = namespace + "py"
    py = make_rs(namespace=ns_py, redis_ttl=False)
    try:
        token_p = py.create(APP, "user1", "10.0.0.1", ttl=3600, d=DATA)
        layout_p = dump(redis_client, ns_py)
    finally:
        leftovers = keys_of(redis_client, ns_py)
        if leftovers:
            redis_client.delete(*leftovers)
    t1 = server_now(redis_client)

    n = normalized(layout_n, namespace, {token_n: "<TOKEN>"})
    p = normalized(layout_p, ns_py, {token_p: "<TOKEN>"})
    expected_keys = sorted([
        "<ns>:SESSIONS", f"<ns>:{APP}:_sessions", f"<ns>:{APP}:_users",
        f"<ns>:{APP}:<TOKEN>", f"<ns>:{APP}:us:user1",
    ])
    assert sorted(n) == expected_keys
    assert sorted(p) == expected_keys
    for key in expected_keys:
        assert p[key]["type"] == n[key]["type"], key
        assert n[key]["ttl"] == -1, key  # Node never sets a Redis TTL
        assert p[key]["ttl"] == -1, f"{key}: Python with redis_ttl=False must not set a TTL"

    hn, hp = n[f"<ns>:{APP}:<TOKEN>"]["value"], p[f"<ns>:{APP}:<TOKEN>"]["value"]
    assert set(hn) == {"id", "r", "w", "ip", "la", "ttl", "d"}
    assert set(hp) == set(hn)
    for field in ("id", "r", "w", "ip", "ttl"):
        assert hp[field] == hn[field], field
    assert hn["id"] == b"user1" and hn["r"] == b"1" and hn["w"] == b"1" and hn["ttl"] == b"3600"
    for h in (hn, hp):
        assert t0 <= int(h["la"]) <= t1
        assert json.loads(h["d"]) == DATA
    la_n, la_p = int(hn["la"]), int(hp["la"])

    for la, layout, token in ((la_n, n, token_n), (la_p, p, token_p)):
        assert layout[f"<ns>:{APP}:_sessions"]["value"] == {"<TOKEN>:user1": la}
        assert layout[f"<ns>:{APP}:_users"]["value"] == {"user1": la}
        assert layout["<ns>:SESSIONS"]["value"] == {f"{APP}:<TOKEN>:user1": la + 3600}
        assert layout[f"<ns>:{APP}:us:user1"]["value"] == ["<TOKEN>"]

    # Python reads Node's session exactly as Node would
    got = rs.get(APP, token_n)
    assert got is not None
    assert 0 <= got["idle"] <= 1
    assert without(got, "idle") == {
        "id": "user1", "r": 1, "w": 1, "ttl": 3600, "ip": "10.0.0.1", "d": DATA,
    }
    assert redis_client.hget(f"{namespace}:{APP}:{token_n}", "r") == b"2"  # get counted the read


def test_d_is_stored_with_the_same_bytes_as_node(node, rs, redis_client, namespace):
    """For the same input d, Python stores the bytes JSON.stringify would: compact, UTF-8 as is."""
    d = {"s": "héllo ✓ 😀", "q": 'a"b\\c\n', "i": 42, "f": 0.30000000000000004, "b": True, "n": -1}
    token_n = node.create(APP, "user1", "10.0.0.1", d=d)
    token_p = rs.create(APP, "user1", "10.0.0.1", d=d)
    raw_n = redis_client.hget(f"{namespace}:{APP}:{token_n}", "d")
    raw_p = redis_client.hget(f"{namespace}:{APP}:{token_p}", "d")
    assert raw_p == raw_n


# --------------------------------------------------------------------------------------------
# 2. Python creates, Node reads and writes, Python reads Node's writes; token format


def test_python_tokens_have_nodes_format_and_node_accepts_them(rs, node, redis_client):
    node_token = node.driver.call(node.inst, "token", {})
    assert TOKEN_RE.fullmatch(node_token)  # the pattern describes Node's own tokens
    now_ms = server_now(redis_client) * 1000
    tokens = [rs.create(APP, f"u{i}", "10.0.0.1", ttl=60) for i in range(20)]
    assert len(set(tokens)) == 20
    for token in tokens:
        assert len(token) == 64
        match = TOKEN_RE.fullmatch(token)
        assert match, token
        assert abs(int(match.group(1), 36) - now_ms) < 10_000, token  # creation time in ms
        assert node.get(APP, token)["id"].startswith("u")  # Node's ^[A-Za-z0-9]{64}$ accepts it


def test_python_create_node_get_set_python_reads_node_writes(rs, node, redis_client, namespace):
    token = rs.create(APP, "user2", "10.0.0.2", ttl=1800, d={"a": "x", "n": 1, "é": "ü"})
    key = f"{namespace}:{APP}:{token}"

    got = node.get(APP, token)
    assert 0 <= got["idle"] <= 1
    assert without(got, "idle") == {
        "id": "user2", "r": 1, "w": 1, "ttl": 1800, "ip": "10.0.0.2", "d": {"a": "x", "n": 1, "é": "ü"},
    }
    assert redis_client.hget(key, "r") == b"2"

    res = node.set(APP, token, {"a": None, "c": "y", "f": 0.1, "t": False})
    assert res["w"] == 2
    merged = {"n": 1, "é": "ü", "c": "y", "f": 0.1, "t": False}
    assert res["d"] == merged
    assert json.loads(redis_client.hget(key, "d")) == merged
    assert redis_client.hget(key, "w") == b"2"

    got = rs.get(APP, token)
    assert 0 <= got["idle"] <= 1
    assert without(got, "idle") == {
        "id": "user2", "r": 2, "w": 2, "ttl": 1800, "ip": "10.0.0.2", "d": merged,
    }

    # Node deleting every key drops the d field; Python then reports no "d"
    node.set(APP, token, {k: None for k in merged})
    assert redis_client.hexists(key, "d") is False
    got = rs.get(APP, token)
    assert "d" not in got and got["w"] == 3 and got["r"] == 3


# --------------------------------------------------------------------------------------------
# 3. Python set -> Node get; big integers and floats across both writers

BIG = 12345678901234567  # > 2**53: exact in Python, 12345678901234568 as a JS double
BIG_IN_JS = 12345678901234568


def test_set_merges_across_sides_and_big_ints(rs, node, redis_client, namespace):
    token = node.create(APP, "user3", "10.0.0.3", d={"keep": "k", "drop": 1})
    key = f"{namespace}:{APP}:{token}"

    res = rs.set(APP, token, {"big": BIG, "f": 0.30000000000000004, "drop": None})
    assert res["d"] == {"keep": "k", "big": BIG, "f": 0.30000000000000004}
    raw = redis_client.hget(key, "d")
    assert b"12345678901234567" in raw and b"0.30000000000000004" in raw, raw

    got = node.get(APP, token)
    assert got["d"] == {"keep": "k", "big": BIG_IN_JS, "f": 0.30000000000000004}  # JS rounds
    assert got["w"] == 2

    # Python's own set of another key keeps the big int's exact bytes (no Lua cjson re-encoding)
    rs.set(APP, token, {"other": 1})
    raw = redis_client.hget(key, "d")
    assert b'"big":12345678901234567' in raw.replace(b" ", b""), raw
    assert b"0.30000000000000004" in raw, raw
    assert rs.get(APP, token)["d"] == {"keep": "k", "big": BIG, "f": 0.30000000000000004, "other": 1}

    # Node re-serializes the whole d on set: the big int comes back rounded (documented)
    res = node.set(APP, token, {"x": "y"})
    assert res["d"] == {"keep": "k", "big": BIG_IN_JS, "f": 0.30000000000000004, "other": 1, "x": "y"}
    raw = redis_client.hget(key, "d")
    assert b"12345678901234568" in raw and b"12345678901234567" not in raw
    got = rs.get(APP, token)
    assert got["d"] == {"keep": "k", "big": BIG_IN_JS, "f": 0.30000000000000004, "other": 1, "x": "y"}
    assert got["w"] == 4


# --------------------------------------------------------------------------------------------
# 4. kill, killsoid, killall, soid, soapp, activity


@pytest.mark.parametrize("creator,killer", [("node", "python"), ("python", "node")])
def test_kill_from_either_side_removes_everything(sides, creator, killer, redis_client, namespace):
    token = sides[creator].create(APP, "user4", "10.0.0.4", d={"a": 1})
    assert len(keys_of(redis_client, namespace)) == 5
    assert sides[killer].kill(APP, token) == 1
    assert keys_of(redis_client, namespace) == []
    for side in sides.values():
        assert side.get(APP, token) is None
        assert side.kill(APP, token) == 0


def _populate(sides, app):
    n = sides["node"].create
    p = sides["python"].create
    n(app, "u1", "1.0.0.1")
    n(app, "u1", "1.0.0.2", d={"k": 1})
    p(app, "u1", "1.0.0.3")
    n(app, "u2", "1.0.0.4")
    p(app, "u3", "1.0.0.5", d={"k": "v"})


@pytest.mark.parametrize("killer", ["node", "python"])
def test_killsoid_and_killall_counts(sides, killer, redis_client, namespace):
    app = f"app_{killer}"
    _populate(sides, app)
    assert sides[killer].killsoid(app, "u1") == 3
    left = keys_of(redis_client, namespace)
    assert f"{namespace}:{app}:us:u1" not in left
    assert redis_client.zscore(f"{namespace}:{app}:_users", "u1") is None
    assert redis_client.zcard(f"{namespace}:{app}:_sessions") == 2
    assert redis_client.zcard(f"{namespace}:SESSIONS") == 2
    assert sides[killer].killsoid(app, "u1") == 0
    assert sides[killer].killall(app) == 2
    assert keys_of(redis_client, namespace) == []
    assert sides[killer].killall(app) == 0


def _by_ip(sessions: list[dict]) -> list[dict]:
    return sorted(sessions, key=lambda s: s["ip"])


def _same_sessions(py: list[dict], nd: list[dict]) -> None:
    assert len(py) == len(nd)
    for a, b in zip(_by_ip(py), _by_ip(nd)):
        # the two sides read a second apart at most: idle, and a no_resave session's ttl (its
        # remainder), may differ by one
        assert without(a, "token", "idle", "ttl") == without(b, "idle", "ttl")
        assert abs(a["idle"] - b["idle"]) <= 1
        assert abs(a["ttl"] - b["ttl"]) <= (1 if a.get("no_resave") else 0)


def test_soid_soapp_activity_agree(rs, node, redis_client, namespace):
    # an expired (not yet wiped) session of u1, then live ones, then an old one of u3
    expired = node.create(APP, "u1", "9.9.9.9", ttl=10)
    age(redis_client, namespace, APP, expired, 60)
    tokens = {
        "1.0.0.1": node.create(APP, "u1", "1.0.0.1", d={"k": 1}),
        "1.0.0.2": rs.create(APP, "u1", "1.0.0.2", ttl=600, no_resave=True),
        "1.0.0.3": node.create(APP, "u2", "1.0.0.3"),
        "1.0.0.4": rs.create(APP, "u3", "1.0.0.4", d={"x": "y"}),
    }
    age(redis_client, namespace, APP, tokens["1.0.0.4"], 300)
    node.set(APP, tokens["1.0.0.1"], {"k": 2})  # w=2 on one of them

    py, nd = rs.soid(APP, "u1"), node.soid(APP, "u1")
    assert sorted(s["ip"] for s in nd) == ["1.0.0.1", "1.0.0.2"]  # the expired one is left out
    _same_sessions(py, nd)
    for s in py:
        assert s["token"] == tokens[s["ip"]]

    for dt, ips in ((120, ["1.0.0.1", "1.0.0.2", "1.0.0.3"]),
                    (3600, ["1.0.0.1", "1.0.0.2", "1.0.0.3", "1.0.0.4"])):
        py, nd = rs.soapp(APP, dt), node.soapp(APP, dt)
        assert sorted(s["ip"] for s in nd) == ips
        _same_sessions(py, nd)
        scores = [redis_client.zscore(f"{namespace}:{APP}:_sessions", f"{s['token']}:{s['id']}") for s in py]
        assert scores == sorted(scores, reverse=True)  # newest first

    assert rs.activity(APP, 120) == node.activity(APP, 120) == 2
    assert rs.activity(APP, 3600) == node.activity(APP, 3600) == 3
    assert rs.soid(APP, "nobody") == [] and node.soid(APP, "nobody") == []


# --------------------------------------------------------------------------------------------
# 5. ids containing ":"

ODD_ID = "org:42:user:é"


def test_ids_with_colons_from_both_sides(rs, node, redis_client, namespace):
    token_n = node.create(APP, ODD_ID, "10.0.0.5")
    token_p = rs.create(APP, ODD_ID, "10.0.0.6")
    assert redis_client.zscore(f"{namespace}:{APP}:_sessions", f"{token_p}:{ODD_ID}") is not None
    assert redis_client.zscore(f"{namespace}:SESSIONS", f"{APP}:{token_p}:{ODD_ID}") is not None
    assert redis_client.zscore(f"{namespace}:{APP}:_users", ODD_ID) is not None
    assert sorted(m.decode() for m in redis_client.smembers(f"{namespace}:{APP}:us:{ODD_ID}")) == sorted([token_n, token_p])

    assert rs.get(APP, token_n)["id"] == ODD_ID
    assert node.get(APP, token_p)["id"] == ODD_ID
    assert sorted(s["token"] for s in rs.soid(APP, ODD_ID)) == sorted([token_n, token_p])
    assert [s["id"] for s in node.soid(APP, ODD_ID)] == [ODD_ID, ODD_ID]
    assert [s["id"] for s in rs.soapp(APP, 60)] == [ODD_ID, ODD_ID]

    assert rs.kill(APP, token_n) == 1
    assert node.kill(APP, token_p) == 1
    assert keys_of(redis_client, namespace) == []

    node.create(APP, ODD_ID, "10.0.0.5")
    rs.create(APP, ODD_ID, "10.0.0.6")
    assert rs.killsoid(APP, ODD_ID) == 2
    assert keys_of(redis_client, namespace) == []
    node.create(APP, ODD_ID, "10.0.0.5")
    rs.create(APP, ODD_ID, "10.0.0.6")
    assert node.killsoid(APP, ODD_ID) == 2
    assert keys_of(redis_client, namespace) == []

    # Python's killall keeps such ids whole (Node's splits them at every ":" and leaves
    # us:{id} and the _users member behind)
    node.create(APP, ODD_ID, "10.0.0.5")
    rs.create(APP, ODD_ID, "10.0.0.6")
    rs.create(APP, "plain", "10.0.0.7")
    assert rs.killall(APP) == 3
    assert keys_of(redis_client, namespace) == []


def test_long_ids_node_accepts_are_usable_from_python(rs, node, redis_client, namespace):
    """Node's id rule /^(.*?){1,128}$/ has no length limit in practice: a 200-character id is
    accepted by Node, so Python must at least read, list and kill such sessions."""
    long_id = "L" * 200
    token = node.create(APP, long_id, "10.0.0.8")
    assert rs.get(APP, token)["id"] == long_id
    assert [s["token"] for s in rs.soid(APP, long_id)] == [token]
    assert rs.killsoid(APP, long_id) == 1
    assert keys_of(redis_client, namespace) == []


# --------------------------------------------------------------------------------------------
# 6. no_resave: a fixed expiry on both sides


@pytest.mark.parametrize("creator,reader", [("node", "python"), ("python", "node")])
def test_no_resave_counts_down_on_both_sides(sides, creator, reader, redis_client, namespace):
    token = sides[creator].create(APP, "user6", "10.0.0.6", ttl=100, no_resave=True)
    key = f"{namespace}:{APP}:{token}"
    assert redis_client.hget(key, "no_resave") == b"1"
    expiry = redis_client.zscore(f"{namespace}:SESSIONS", f"{APP}:{token}:user6")

    got = sides[reader].get(APP, token)
    assert got["no_resave"] is True and 99 <= got["ttl"] <= 100

    age(redis_client, namespace, APP, token, 30)
    got = sides[reader].get(APP, token)
    assert got["no_resave"] is True
    # (a second off when Node's first read fell at idle 1: Node v4 then stores the remaining
    # ttl, 99, but moves la only beyond idle 1)
    assert 29 <= got["idle"] <= 31 and abs(got["ttl"] - (100 - got["idle"])) <= 1, got
    assert redis_client.hget(key, "ttl") == str(got["ttl"]).encode()  # the remaining ttl is stored
    now = server_now(redis_client)
    assert abs(int(redis_client.hget(key, "la")) - now) <= 1
    new_expiry = redis_client.zscore(f"{namespace}:SESSIONS", f"{APP}:{token}:user6")
    assert abs(new_expiry - (expiry - 30)) <= 2  # the expiry did not move (in the aged timeline)

    age(redis_client, namespace, APP, token, 20)
    got = sides[creator].get(APP, token)
    assert got["no_resave"] is True
    assert 48 <= got["ttl"] <= 51, got

    age(redis_client, namespace, APP, token, 60)  # past the fixed expiry
    assert sides[reader].get(APP, token) is None
    assert sides[creator].get(APP, token) is None


@pytest.mark.parametrize("creator,reader", [("node", "python"), ("python", "node")])
def test_plain_sessions_slide_on_both_sides(sides, creator, reader, redis_client, namespace):
    token = sides[creator].create(APP, "user6", "10.0.0.6", ttl=100)
    age(redis_client, namespace, APP, token, 90)
    got = sides[reader].get(APP, token)
    assert got["ttl"] == 100 and 89 <= got["idle"] <= 91 and "no_resave" not in got
    now = server_now(redis_client)
    assert abs(redis_client.zscore(f"{namespace}:SESSIONS", f"{APP}:{token}:user6") - (now + 100)) <= 1
    assert abs(int(redis_client.hget(f"{namespace}:{APP}:{token}", "la")) - now) <= 1
    age(redis_client, namespace, APP, token, 90)
    got = sides[creator].get(APP, token)
    assert got is not None, f"kept alive by {reader}, the session is gone from Redis: {keys_of(redis_client, namespace)}"
    assert got["ttl"] == 100
    age(redis_client, namespace, APP, token, 101)
    assert sides[reader].get(APP, token) is None
    assert sides[creator].get(APP, token) is None


@pytest.mark.parametrize("creator", ["node", "python"])
def test_python_redis_ttl_never_outlives_nodes_view(make_rs, node, creator, redis_client, namespace):
    """With redis_ttl=False (the mode for mixed deployments) Python puts no Redis TTL on any key:
    a session kept alive by Node alone never vanishes (nor its index entries) while Node counts
    it as live."""
    py = make_rs(redis_ttl=False)
    sides = {"python": py, "node": node}
    token = sides[creator].create(APP, "user9", "10.0.0.9", ttl=7200)
    assert py.get(APP, token) is not None  # Python touched it once
    for step in range(1, 4):  # then only Node, every 7000 s (within the 7200 s ttl)
        age(redis_client, namespace, APP, token, 7000)
        got = node.get(APP, token)
        assert got is not None, f"the session vanished from Redis after {step} Node-only accesses"
        expiry = redis_client.zscore(f"{namespace}:SESSIONS", f"{APP}:{token}:user9")
        assert expiry is not None, f"{namespace}:SESSIONS vanished (step {step})"
        left = expiry - server_now(redis_client)  # Node's view: the session lives this long
        short = {k: redis_client.pttl(k) / 1000 for k in keys_of(redis_client, namespace)}
        short = {k: v for k, v in short.items() if v >= 0 and v < left - 1}
        assert not short, f"step {step}: keys that expire before Node's expiry in {left}s: {short}"
        assert len(keys_of(redis_client, namespace)) == 5


# --------------------------------------------------------------------------------------------
# 7. cache invalidation across processes


def test_python_writes_invalidate_nodes_cache(rs, node_open, redis_client, namespace):
    cached = node_open("cached", cachetime=60)
    token = rs.create(APP, "user7", "10.0.0.7", d={"v": 1})
    key = f"{namespace}:{APP}:{token}"
    assert cached.get(APP, token)["d"] == {"v": 1}
    redis_client.hset(key, "d", '{"v":2}')  # a write that publishes nothing
    assert cached.get(APP, token)["d"] == {"v": 1}, "control: Node's cache should be on"

    rs.set(APP, token, {"v": 3})
    got = wait_until(lambda: cached.get(APP, token), lambda s: s and s.get("d") == {"v": 3})
    assert got["d"] == {"v": 3}, "Python's set() did not invalidate Node's cache"

    assert rs.kill(APP, token) == 1
    got = wait_until(lambda: cached.get(APP, token), lambda s: s is None)
    assert got is None, "Python's kill() did not invalidate Node's cache"


def test_node_writes_invalidate_pythons_cache(make_rs, node_open, redis_client, namespace,
                                             caplog):
    caplog.set_level(logging.DEBUG, logger="redis_sessions")  # the listener's, if it fails
    try:
        cached = make_rs(cache_time=60)
    except TypeError as exc:
        pytest.skip(f"the Python manager has no cache_time yet: {exc}")
    publisher = node_open("cached", cachetime=60)  # Node publishes only with its cache on
    token = publisher.create(APP, "user7", "10.0.0.7", d={"v": 1})
    key = f"{namespace}:{APP}:{token}"
    channel = f"{namespace}:cache"
    # Python's cache listens from its first get() on and caches only once subscribed
    assert cached.get(APP, token)["d"] == {"v": 1}
    subscribers = wait_until(lambda: dict(redis_client.pubsub_numsub(channel))[channel.encode()],
                             lambda n: n >= 2)
    assert subscribers >= 2, "Python's cache is not subscribed to {ns}:cache"

    def caches() -> bool:  # a raw write (no publish) is hidden by the cache
        seen = cached.get(APP, token)["d"]  # cached once the listener is subscribed
        redis_client.hset(key, "d", json.dumps({"v": seen["v"] - 1}))  # (never the 3 below)
        return cached.get(APP, token)["d"] == seen

    assert wait_until(caches, bool), (
        "control: Python's cache_time=60 should cache get() replies "
        f"(listening: {cached.cache._listening}, entries: {len(cached.cache._entries)}, "
        f"version: {cached.cache._version}, floor: {cached.cache._floor})")

    publisher.set(APP, token, {"v": 3})
    got = wait_until(lambda: cached.get(APP, token), lambda s: s and s.get("d") == {"v": 3})
    assert got["d"] == {"v": 3}, "Node's set() did not invalidate Python's cache"

    assert publisher.kill(APP, token) == 1
    got = wait_until(lambda: cached.get(APP, token), lambda s: s is None)
    assert got is None, "Node's kill() did not invalidate Python's cache"


# --------------------------------------------------------------------------------------------
# 8. the same inputs are refused by both, with Node's codes and messages

GOOD = {"app": APP, "id": "user8", "ip": "10.0.0.8"}
SOME_TOKEN = "A" * 55 + "Z" + "m0000000"

# Nested values are not here: Node refuses them on input, we store them (issue 9) and Node
# reads them back (test_node_reads_nested_values_and_keeps_them_on_its_own_set).
INVALID = [
    ("create", {**GOOD, "app": ""}),
    ("create", {**GOOD, "app": "ab"}),
    ("create", {**GOOD, "app": "a" * 21}),
    ("create", {**GOOD, "app": "bad app"}),
    ("create", {**GOOD, "app": "bad:app"}),
    ("create", {**GOOD, "app": "bäd"}),
    ("create", {**GOOD, "id": ""}),
    ("create", {**GOOD, "id": "a\nb"}),
    ("create", {**GOOD, "id": "a\u2028b"}),
    ("create", {**GOOD, "ip": ""}),
    ("create", {**GOOD, "ip": "x" * 40}),
    ("create", {**GOOD, "ttl": 9}),
    ("get", {"app": APP, "token": ""}),
    ("get", {"app": APP, "token": "short"}),
    ("get", {"app": APP, "token": SOME_TOKEN[:63]}),
    ("get", {"app": APP, "token": SOME_TOKEN[:63] + "!"}),
    ("get", {"app": APP, "token": SOME_TOKEN + "A"}),
    ("get", {"app": "x:y", "token": SOME_TOKEN}),
    ("set", {"app": APP, "token": SOME_TOKEN, "d": {}}),
    ("set", {"app": APP, "token": SOME_TOKEN, "d": [1]}),
    ("kill", {"app": APP, "token": "bad-token"}),
    ("soid", {"app": APP, "id": ""}),
    ("killsoid", {"app": "no", "id": "x"}),
    ("killall", {"app": ""}),
    ("soapp", {"app": APP, "dt": 9}),
    ("activity", {"app": APP, "dt": 0}),
]


@pytest.mark.parametrize("op,args", INVALID, ids=[f"{op}-{i}" for i, (op, _) in enumerate(INVALID)])
def test_invalid_input_rejected_by_both(rs, node, op, args, redis_client, namespace):
    from redis_sessions.errors import ValidationError

    node_args = {("deltaTime" if k == "dt" else k): v for k, v in args.items()}
    with pytest.raises(NodeError) as node_err:
        node.driver.call(node.inst, op, node_args)
    with pytest.raises(ValidationError) as py_err:
        getattr(rs, op)(**args)
    assert (py_err.value.code, str(py_err.value)) == (node_err.value.name, node_err.value.message)
    assert keys_of(redis_client, namespace) == []


def test_default_redis_ttl_is_the_documented_trade_off(rs, node, redis_client, namespace):
    """The default (redis_ttl=True) gives Python's keys a Redis TTL that only Python refreshes:
    why the README tells mixed deployments to pass redis_ttl=False. Node still reads the session
    and its layout is unchanged apart from the TTL."""
    token = node.create(APP, "user10", "10.0.0.10", ttl=300)
    # Python sets the TTL when the activity moves: after more than the resolution (10 s)
    age(redis_client, namespace, APP, token, 15)
    assert rs.get(APP, token) is not None
    ttl = redis_client.ttl(f"{namespace}:{APP}:{token}")
    assert 0 < ttl <= 331  # (to the end of the 30 s step in which it expires)
    assert node.get(APP, token)["id"] == "user10"


# --------------------------------------------------------------------------------------------
# signed cookies: the format of express's cookie-signature, both ways


def test_signed_cookies_verify_with_express_cookie_signature(rs, node_driver):
    from redis_sessions import core

    token = rs.create(APP, "user11", "10.0.0.11")
    secret = "s3cr3t-ünïcode"
    ours = core.sign(token, secret.encode())
    assert node_driver.call("main", "unsign", {"value": ours, "secret": secret}) == token
    assert node_driver.call("main", "unsign", {"value": ours, "secret": "other"}) is False
    theirs = node_driver.call("main", "sign", {"value": token, "secret": secret})
    assert theirs == ours
    assert core.extract_token(f"{APP}={theirs}", APP, [b"old", secret.encode()]) == token


# --------------------------------------------------------------------------------------------
# 9. JSON values and anonymous sessions (issue 9): Node reads nested data; anonymous is invisible


def test_node_reads_nested_values_and_keeps_them_on_its_own_set(rs, node, redis_client,
                                                                  namespace):
    nested = {"cart": [1, {"sku": "x", "qty": 2}], "prefs": {"theme": {"dark": True}}}
    token = rs.create(APP, "user9", "10.0.0.9", d={"flat": 1})
    rs.set(APP, token, nested)
    assert node.get(APP, token)["d"] == {"flat": 1, **nested}
    # Node's set() re-encodes the whole d: nested values survive it
    node.set(APP, token, {"flat": 2})
    assert rs.get(APP, token)["d"] == {"flat": 2, **nested}


def test_anonymous_sessions_are_invisible_to_node(rs, node, redis_client, namespace):
    anonymous = rs.create_anonymous(APP, {"cart": [1, 2]}, ttl=600)
    user = rs.create(APP, "user10", "10.0.0.10")
    assert node.get(APP, anonymous) is None  # a Node app treats the visitor as anonymous
    assert [s["id"] for s in node.soapp(APP, 600)] == ["user10"]
    assert node.activity(APP, 600) == 1
    assert node.kill(APP, anonymous) == 0
    assert rs.load(APP, anonymous)["d"] == {"cart": [1, 2]}  # untouched by Node's calls
    # logging in moves it into a user session Node sees, under a new token
    upgraded = rs.upgrade(APP, anonymous, "user11", "10.0.0.11", 600)
    assert node.get(APP, upgraded["token"])["d"] == {"cart": [1, 2]}
    assert node.get(APP, anonymous) is None
    assert user != anonymous


# --------------------------------------------------------------------------------------------
# "Your devices" with Node on the same Redis: Node's sessions are unknown devices, and what a
# Python sign-in records (beside Node's fields) never disturbs Node


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def test_node_sessions_are_unknown_devices_python_can_end(sides, redis_client, namespace):
    from redis_sessions.devices import from_records

    rs, node = sides["python"], sides["node"]
    signed_in = rs.upgrade(APP, None, "user30", "10.0.0.30", user_agent=FIREFOX)["token"]
    node_token = node.create(APP, "user30", "10.0.0.31", ttl=3600)
    devices = from_records(rs.devices(APP, "user30", signed_in))
    assert [d.label for d in devices] == ["Firefox 133 on Linux", "Unknown device"]
    unknown = devices[1]
    assert unknown.ip == "10.0.0.31" and unknown.user_agent is None
    created = int(TOKEN_RE.fullmatch(node_token).group(1), 36) // 1000
    assert unknown.signed_in is not None and int(unknown.signed_in.timestamp()) == created
    assert node_token not in repr(devices)
    # Python ends the Node session by its handle, from the signed-in device: Node sees it gone
    assert rs.killdevice(APP, "user30", unknown.handle, by=signed_in) == 1
    assert node.get(APP, node_token) is None
    assert [s["id"] for s in node.soid(APP, "user30")] == ["user30"]


def test_node_reads_and_writes_a_python_sign_in_keeping_its_device(sides, redis_client,
                                                                   namespace):
    rs, node = sides["python"], sides["node"]
    token = rs.upgrade(APP, None, "user31", "10.0.0.32", user_agent=FIREFOX)["token"]
    [before] = rs.devices(APP, "user31", token)
    got = node.get(APP, token)
    assert got["id"] == "user31" and got["ip"] == "10.0.0.32"
    assert node.set(APP, token, {"theme": "dark"})["d"] == {"theme": "dark"}
    [after] = rs.devices(APP, "user31", token)
    assert after["handle"] == before["handle"] and after["user_agent"] == FIREFOX
    assert after["signed_in"] == before["signed_in"] and after["current"]
    # Node's kill of that session removes it whole, our fields included
    assert node.kill(APP, token) == 1
    assert redis_client.exists(f"{namespace}:{APP}:{token}") == 0
    assert rs.devices(APP, "user31") == []


def test_log_out_other_devices_ends_node_sessions_too(sides, redis_client, namespace):
    rs, node = sides["python"], sides["node"]
    keep = rs.upgrade(APP, None, "user32", "10.0.0.33", user_agent=FIREFOX)["token"]
    others = [node.create(APP, "user32", "10.0.0.34") for _ in range(3)]
    assert rs.killsoid(APP, "user32", keep=keep) == 3
    assert all(node.get(APP, t) is None for t in others)
    assert [s["id"] for s in node.soid(APP, "user32")] == ["user32"]
    assert node.activity(APP, 600) >= 1
