"""Simulated users for the chaos suite, and the check of every reply they get.

Each user id owns sessions whose data names it (``d={"owner": uid}``) and is driven by one
worker (a thread, a greenlet, a task) at a time, so what each reply may be is known exactly: a
get() returns the caller's id, owner and one of the values its set() calls may have left, or None
only for a session that may be gone; a set() returns the value it wrote; soid(uid) lists only
uid's sessions, every live one of them; a kill of a live session returns 1. Anything else is a
**wrong** reply (another caller's, or a stale one). An interrupted or failed call leaves its
effect unknown, and the model widens what later replies may be (a kill may have happened, a value
may have been written), never what identity they may carry.

Plain Python, importable by the gevent subprocesses (``tests.chaos.users``); the sync and async
runners only differ in how they invoke a planned call (``Plan``).
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis_sessions.errors import SessionError

APP = "chaosapp"
IP = "10.0.0.1"
SAMPLES = 5  # wrong or crashed replies described per tally


class Interrupt(Exception):
    """What a request-timeout decorator or Celery's soft time limit raises from a signal
    handler (an ordinary Exception, neither a Redis nor an OS error)."""


@dataclass
class Tally:
    """What one scenario's calls came to."""

    calls: int = 0
    interrupted: int = 0  # by the scenario's interruption (timeout, kill, signal, cancel)
    failed: int = 0  # a SessionError (BackendUnavailable, ...): visible, allowed
    wrong: int = 0  # a reply that is not the caller's, or a stale one
    crashed: int = 0  # an exception that is neither ours nor the interruption (IndexError, ...)
    samples: list[str] = field(default_factory=list)  # wrong and crashed replies described
    failures: list[str] = field(default_factory=list)  # the first failures described

    def note(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.samples) < SAMPLES:
            self.samples.append(f"{kind}: {text}")

    def add(self, other: Tally) -> Tally:
        for name in ("calls", "interrupted", "failed", "wrong", "crashed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.samples += other.samples[: max(0, SAMPLES - len(self.samples))]
        self.failures += other.failures[: max(0, SAMPLES - len(self.failures))]
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "interrupted": self.interrupted, "failed": self.failed,
                "wrong": self.wrong, "crashed": self.crashed, "samples": self.samples,
                "failures": self.failures}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(**data)

    def line(self, name: str) -> str:
        return (f"{name}: {self.calls} calls, {self.interrupted} interrupted, {self.failed} "
                f"failed, {self.wrong} wrong, {self.crashed} crashed")


class User:
    """One user id and what its sessions may hold. ``volatile``: the server may lose data (a
    restart without persistence), so a session may vanish."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.live: dict[str, set[Any]] = {}  # token -> the values its "v" may hold
        self.doubtful: dict[str, set[Any]] = {}  # a kill that may or may not have happened
        self.dead: set[str] = set()  # killed for sure
        self.unknown_creates = 0  # creates interrupted: a session we hold no token of may exist

    def tokens(self) -> dict[str, set[Any]]:
        return {**self.live, **self.doubtful}


class Plan:
    """One call about to be made: its manager method, arguments, and how its outcome is judged."""

    __slots__ = ("name", "args", "kwargs", "check", "unsure")

    def __init__(self, name: str, args: tuple, check: Callable[[Any], str | None],
                 unsure: Callable[[], None], **kwargs: Any) -> None:
        self.name, self.args, self.kwargs = name, args, kwargs
        self.check = check  # the reply -> None when it is right, else what is wrong
        self.unsure = unsure  # the call was cut short or failed: widen the model

    def invoke(self, manager: Any) -> Any:
        """Call it on a manager (a coroutine for an async one)."""
        return getattr(manager, self.name)(*self.args, **self.kwargs)


class Population:
    """Many users, their tokens, and the judge of every reply. Create with ``create_all``."""

    def __init__(self, users: int, sessions: int, app: str = APP, seed: int | None = None) -> None:
        tag = secrets.token_hex(3)
        self.app = app
        self.users = [User(f"u{i}-{tag}") for i in range(users)]
        self.sessions = sessions
        self.owner: dict[str, str] = {}  # every token ever returned -> its user id
        self.volatile = False
        self.rng = random.Random(seed)

    # -- set-up and the clean pass -------------------------------------------------------------

    def create_all(self, manager: Any) -> None:
        for user in self.users:
            for _ in range(self.sessions):
                self._created(user, manager.create(self.app, user.uid, IP, d={"owner": user.uid}))

    async def acreate_all(self, manager: Any) -> None:
        for user in self.users:
            for _ in range(self.sessions):
                token = await manager.create(self.app, user.uid, IP, d={"owner": user.uid})
                self._created(user, token)

    def _created(self, user: User, token: str) -> None:
        self.owner[token] = user.uid
        user.live[token] = {None}

    def clean_plans(self) -> list[Plan]:
        """After the chaos: a get() of every session that may live and a soid() of every user."""
        plans = []
        for user in self.users:
            for token in user.tokens():
                plans.append(self._get(user, token))
            plans.append(self._soid(user))
        return plans

    def verify(self, manager: Any, tally: Tally) -> None:
        """The clean pass on a blocking manager (failures are wrong here: nothing interrupts)."""
        for plan in self.clean_plans():
            run(plan, lambda: plan.invoke(manager), tally, ())

    async def averify(self, manager: Any, tally: Tally) -> None:
        for plan in self.clean_plans():
            await arun(plan, lambda: plan.invoke(manager), tally, ())

    def split(self, workers: int) -> list[list[User]]:
        """The users, dealt to ``workers`` workers (each user is driven by one only)."""
        return [self.users[i::workers] for i in range(workers)]

    # -- the calls -----------------------------------------------------------------------------

    def plan(self, user: User, rng: random.Random | None = None) -> Plan:
        """A random call for ``user``: mostly get(), then set(), soid(), create(), kill()."""
        rng = rng or self.rng
        roll = rng.random()
        tokens = list(user.live)
        if not tokens or roll < 0.08:
            return self._create(user)
        token = rng.choice(tokens)
        if roll < 0.55:
            return self._get(user, token)
        if roll < 0.78:
            return self._set(user, token, rng)
        if roll < 0.90:
            return self._soid(user)
        if roll < 0.95 and user.dead:
            return self._get(user, rng.choice(sorted(user.dead)))
        if len(tokens) > 1:
            return self._kill(user, token)
        return self._get(user, token)

    def _describe(self, reply: Any) -> str:
        if isinstance(reply, dict):
            owner = (reply.get("d") or {}).get("owner")
            return f"a session of id {reply.get('id')!r} owner {owner!r} v {(reply.get('d') or {}).get('v')!r}"
        if isinstance(reply, str) and reply in self.owner:
            return f"a token of {self.owner[reply]!r}"
        return repr(reply)[:120]

    def _session_wrong(self, user: User, token: str, reply: Any,
                       expected: set[Any] | None = None) -> str | None:
        """What is wrong with a session reply for ``token`` of ``user`` (None: right)."""
        if reply is None:
            if token in user.live and not self.volatile:
                return f"None for a live session of {user.uid}"
            return None
        if token in user.dead and not isinstance(reply, dict):
            return f"{self._describe(reply)} for a killed session of {user.uid}"
        if not isinstance(reply, dict):
            return f"{self._describe(reply)} for a session of {user.uid}"
        data = reply.get("d") or {}
        if reply.get("id") != user.uid or data.get("owner") != user.uid:
            return f"{self._describe(reply)} for a session of {user.uid}"
        if token in user.dead:
            return f"the killed session of {user.uid} is back"
        values = expected if expected is not None else user.tokens().get(token, {None})
        if data.get("v") not in values:
            return f"v {data.get('v')!r} (a stale reply) where {user.uid}'s is one of {values}"
        return None

    def _get(self, user: User, token: str) -> Plan:
        def check(reply: Any) -> str | None:
            return self._session_wrong(user, token, reply)

        return Plan("get", (self.app, token), check, lambda: None)

    def _set(self, user: User, token: str, rng: random.Random) -> Plan:
        value = f"{user.uid}:{rng.getrandbits(40)}"

        def check(reply: Any) -> str | None:
            wrong = self._session_wrong(user, token, reply, {value})
            if wrong is None and reply is not None and token in user.live:
                user.live[token] = {value}
            return wrong

        def unsure() -> None:
            for pool in (user.live, user.doubtful):
                if token in pool:
                    pool[token].add(value)

        return Plan("set", (self.app, token, {"v": value}), check, unsure)

    def _soid(self, user: User) -> Plan:
        def check(reply: Any) -> str | None:
            if not isinstance(reply, list):
                return f"soid({user.uid}) gave {self._describe(reply)}"
            known = user.tokens()
            listed = set()
            for session in reply:
                token = session.get("token") if isinstance(session, dict) else None
                if token not in known and not user.unknown_creates:
                    return f"soid({user.uid}) listed {self._describe(session)} token {token}"
                wrong = self._session_wrong(user, token, session, known.get(token, {None}))
                if wrong:
                    return f"soid({user.uid}): {wrong}"
                listed.add(token)
            if not self.volatile and not set(user.live) <= listed:
                return f"soid({user.uid}) misses {len(set(user.live) - listed)} live sessions"
            return None

        return Plan("soid", (self.app, user.uid), check, lambda: None)

    def _create(self, user: User) -> Plan:
        def check(reply: Any) -> str | None:
            if not isinstance(reply, str) or len(reply) != 64:
                return f"create({user.uid}) gave {self._describe(reply)}"
            if reply in self.owner:
                return f"create({user.uid}) gave {self._describe(reply)} (not a new one)"
            self._created(user, reply)
            return None

        def unsure() -> None:
            user.unknown_creates += 1

        return Plan("create", (self.app, user.uid, IP), check, unsure, d={"owner": user.uid})

    def _kill(self, user: User, token: str) -> Plan:
        def check(reply: Any) -> str | None:
            values = user.live.pop(token, None)
            if reply == 1 or (reply == 0 and self.volatile):
                user.dead.add(token)
                return None
            if values is not None:
                user.live[token] = values
            return f"kill of a live session of {user.uid} gave {self._describe(reply)}"

        def unsure() -> None:
            if token in user.live:
                user.doubtful[token] = user.live.pop(token)

        return Plan("kill", (self.app, token), check, unsure)


def judge(plan: Plan, reply: Any, tally: Tally) -> None:
    wrong = plan.check(reply)
    if wrong:
        tally.note("wrong", f"{plan.name}: {wrong}")
        plan.unsure()  # whatever it did, its reply does not tell


def settle(plan: Plan, exc: BaseException, tally: Tally,
           interruptions: tuple[type[BaseException], ...]) -> bool:
    """Record a call that raised ``exc``; True when the caller must re-raise it."""
    plan.unsure()
    if isinstance(exc, interruptions):
        tally.interrupted += 1
        return True
    if isinstance(exc, SessionError):
        tally.failed += 1
        if len(tally.failures) < SAMPLES:
            tally.failures.append(f"{plan.name}: {type(exc).__name__}: {exc}"[:300])
        return False
    if isinstance(exc, Exception):
        tally.note("crashed", f"{plan.name}: {type(exc).__name__}: {exc}"[:300])
        return False
    return True  # SystemExit, pytest's own: not ours to swallow


def run(plan: Plan, invoke: Callable[[], Any], tally: Tally,
        interruptions: tuple[type[BaseException], ...]) -> None:
    """Make one call and judge it; an interruption is recorded and re-raised."""
    tally.calls += 1
    try:
        reply = invoke()
    except BaseException as exc:
        if settle(plan, exc, tally, interruptions):
            raise
        return
    judge(plan, reply, tally)


async def arun(plan: Plan, invoke: Callable[[], Any], tally: Tally,
               interruptions: tuple[type[BaseException], ...]) -> None:
    """``run`` for a coroutine."""
    tally.calls += 1
    try:
        reply = await invoke()
    except BaseException as exc:
        if settle(plan, exc, tally, interruptions):
            raise
        return
    judge(plan, reply, tally)


def report(name: str, tallies: Iterable[Tally]) -> Tally:
    """The sum of ``tallies``, printed as one line (pytest -s, or -rA, shows it)."""
    total = Tally()
    for tally in tallies:
        total.add(tally)
    print(total.line(name), flush=True)
    for sample in total.samples:
        print("   ", sample, flush=True)
    return total


class Deadline:
    """A scenario's time box."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def __bool__(self) -> bool:  # True while time is left
        return time.monotonic() < self.end
