"""How the chaos scenarios drive their users: worker threads and tasks, the interruptions
(a SIGALRM handler that raises, asyncio cancellation) and the faults (CLIENT KILL, a paused,
killed or restarted server). Each piece is bounded in time and fails rather than hangs."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from .users import Deadline, Population, Tally, User, arun, run

JOIN = 20.0  # seconds a worker may take to finish after its deadline before the scenario fails


# -- blocking workers --------------------------------------------------------------------------


def drive(manager: Any, pop: Population, users: Sequence[User], deadline: Deadline, tally: Tally,
          seed: int, interrupt: Callable[[], contextlib.AbstractContextManager] | None = None,
          interruptions: tuple[type[BaseException], ...] = ()) -> None:
    """Random calls for ``users`` on ``manager`` until ``deadline``; with ``interrupt``, each
    call runs under ``interrupt()`` (which may raise one of ``interruptions`` into it)."""
    rng = random.Random(seed)
    while deadline:
        plan = pop.plan(rng.choice(users), rng)
        if interrupt is None:
            run(plan, lambda: plan.invoke(manager), tally, interruptions)
            continue

        def invoke(plan=plan) -> Any:  # only the call may be interrupted, not its judging
            with interrupt():
                return plan.invoke(manager)

        try:
            run(plan, invoke, tally, interruptions)
        except interruptions:
            pass  # counted by run()


def in_threads(targets: Sequence[Callable[[], None]]) -> None:
    """Run each target in a thread of its own; fail if one is still running after JOIN."""
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return body

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        pytest.fail(f"{stuck} worker threads still running {JOIN} s after their deadline (a hang)")
    if errors:
        raise errors[0]


def with_background(main: Callable[[], None], background: Sequence[Callable[[], None]]) -> None:
    """Run ``main`` in this thread (signals reach only the main thread) and the others in
    threads; fail when a thread does not finish."""
    done = threading.Event()
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return body

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in background]
    for thread in threads:
        thread.start()
    try:
        main()
    finally:
        done.set()
        deadline = time.monotonic() + JOIN
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        pytest.fail(f"worker threads still running {JOIN} s after their deadline (a hang)")
    if errors:
        raise errors[0]


class Alarm:
    """Exceptions raised from a SIGALRM handler in the main thread, as request-timeout
    decorators and Celery's soft time limits do: ``with alarm.armed(): call()`` raises
    ``exception`` into the call after a random delay (a one-shot ITIMER_REAL), unless the call
    ended first. Use as a context manager around the scenario (it restores the old handler)."""

    def __init__(self, exception: type[BaseException], low: float, high: float,
                 seed: int = 0) -> None:
        self.exception = exception
        self.low, self.high = low, high
        self.rng = random.Random(seed)
        self._armed = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self._armed:
            self._armed = False
            raise self.exception("interrupted by the alarm")

    def __enter__(self) -> Alarm:
        assert threading.current_thread() is threading.main_thread()
        self._previous = signal.signal(signal.SIGALRM, self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)

    @contextlib.contextmanager
    def armed(self, delay: float | None = None) -> Iterator[None]:
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, delay or self.rng.uniform(self.low, self.high))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._armed = False


# -- asyncio workers ---------------------------------------------------------------------------


async def adrive(manager: Any, pop: Population, users: Sequence[User], deadline: Deadline,
                 tally: Tally, seed: int, wait_for: float | None = None) -> None:
    """``drive`` for an async manager; with ``wait_for``, each call is bounded by
    asyncio.wait_for with a random timeout up to that many seconds."""
    rng = random.Random(seed)
    while deadline:
        plan = pop.plan(rng.choice(users), rng)
        if wait_for is None:
            await arun(plan, lambda: plan.invoke(manager), tally, (asyncio.CancelledError,))
            continue
        limit = rng.uniform(0, wait_for)
        try:
            await arun(plan, lambda: asyncio.wait_for(plan.invoke(manager), limit), tally,
                       (asyncio.TimeoutError,))
        except asyncio.TimeoutError:
            pass


async def with_cancels(make_worker: Callable[[int], Any], workers: int, deadline: Deadline,
                       seed: int, every: float = 0.003) -> int:
    """Run ``workers`` tasks (``make_worker(i)`` makes worker i's coroutine, which must end
    once its scenario is over); every ``every`` seconds one is cancelled mid-call and started
    again. Returns the number of cancels; fails when a task outlives the scenario by JOIN."""
    rng = random.Random(seed)
    tasks = {i: asyncio.ensure_future(make_worker(i)) for i in range(workers)}
    cancels = 0
    while deadline:
        await asyncio.sleep(rng.uniform(0, every * 2))
        i = rng.randrange(workers)
        task = tasks[i]
        if not task.done():
            task.cancel()
            cancels += 1
            with contextlib.suppress(asyncio.CancelledError):
                await task
        tasks[i] = asyncio.ensure_future(make_worker(i))
    done, pending = await asyncio.wait(tasks.values(), timeout=JOIN)
    if pending:
        for task in pending:
            task.cancel()
        pytest.fail(f"{len(pending)} tasks still running {JOIN} s after their deadline (a hang)")
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return cancels


# -- faults ------------------------------------------------------------------------------------


def client_kill(url: str) -> int:
    """CLIENT KILL every ordinary client of the server at ``url`` but this one."""
    admin = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
    except redis.RedisError:
        return 0
    finally:
        admin.close()


class FaultLoop:
    """A thread that applies ``faults`` (callables) in turn, a random pause apart, until
    stopped; ``counts`` says how often each ran."""

    def __init__(self, faults: dict[str, Callable[[], None]], every: tuple[float, float],
                 seed: int = 0) -> None:
        self.faults = faults
        self.every = every
        self.rng = random.Random(seed)
        self.counts = dict.fromkeys(faults, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        names = list(self.faults)
        try:
            while not self._stop.wait(self.rng.uniform(*self.every)):
                name = names[sum(self.counts.values()) % len(names)]
                self.faults[name]()
                self.counts[name] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def __enter__(self) -> FaultLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(JOIN)
        if self._thread.is_alive():
            pytest.fail("the fault thread did not stop")
        if self.error is not None:
            raise self.error
