"""The exceptions of redis-sessions, in one place.

``SessionError`` is the root. ``ValidationError`` is also a ``ValueError`` and carries Node's error
name in ``.code`` (missingParameter, invalidFormat, invalidValue) and Node's message, so users
arriving from Node's redis-sessions see the same words. ``BackendError`` covers every failure of
Redis itself; ``BackendUnavailable`` is the one for "Redis could not be reached in time".
"""

from __future__ import annotations

from ._constants import MAX_DEPTH

__all__ = [
    "SessionError",
    "ValidationError",
    "BackendError",
    "BackendUnavailable",
    "BackendUnsupported",
    "SessionTooLarge",
    "SessionRotated",
    "ReplicationTimeout",
    "forbidden_type",
    "not_finite",
    "key_not_text",
    "not_unicode",
    "too_deep",
    "number_too_large",
]


class SessionError(Exception):
    """Base class of every error raised by redis-sessions."""


class ValidationError(SessionError, ValueError):
    """An argument broke one of Node's validation rules (or one of ours, with the same codes)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ValidationError({self.code!r}, {self.message!r})"


class SessionTooLarge(ValidationError):
    """The session data would exceed the documented size limits (keys or bytes)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalidValue", message)


class SessionRotated(SessionError):
    """A change was not saved: a concurrent request (a log-in) replaced the session's token.

    The browser holds the new cookie; the old token's request keeps it and saves nothing.
    """


class BackendError(SessionError):
    """Redis answered with an error, or its answer made no sense."""


class BackendUnavailable(BackendError):
    """Redis could not be reached, or did not answer within the client's timeout.

    The original redis-py exception is kept as ``__cause__``.
    """


class BackendUnsupported(BackendError):
    """Redis answered, but cannot run redis-sessions: it has no Redis Functions (a Redis before
    7.0, FUNCTION or FCALL renamed away) or its ACL forbids what the library needs.

    Retrying does not help: the server or the user's permissions must change. The message names
    what is needed and never quotes the server's reply (which would echo the library's Lua, keys
    or tokens).
    """


# The checks of session data values, made by both cores and by the Session mapping: one wording.


def forbidden_type(key: object) -> ValidationError:
    return ValidationError(
        "invalidValue",
        f"d.{key} has a forbidden type. Only strings, numbers, booleans, null, lists and objects "
        "are allowed.",
    )


def not_finite(key: object) -> ValidationError:
    return ValidationError("invalidValue", f"d.{key} must be a finite number")


def key_not_text(key: object, inside: object = None) -> ValidationError:
    """A key that is not a str: a top-level one, or one inside the value of ``inside``."""
    if inside is None:
        return ValidationError("invalidValue", f"d keys must be strings, got {type(key).__name__}")
    return ValidationError(
        "invalidValue", f"d.{inside} holds a key that is not a string ({type(key).__name__})"
    )


def not_unicode(key: object) -> ValidationError:
    return ValidationError("invalidValue", f"d.{key!r} is not valid Unicode")


def too_deep(key: object) -> ValidationError:
    return ValidationError(
        "invalidValue", f"d.{key} is nested too deeply (more than {MAX_DEPTH} levels of lists and objects)"
    )


def number_too_large(key: object) -> ValidationError:
    return ValidationError("invalidValue", f"d.{key} holds an integer with too many digits to store")


class ReplicationTimeout(BackendError):
    """``durability="replicated"``: the write was done on the master, but fewer replicas than
    asked acknowledged it in time (WAIT), so a failover now could still undo it.

    ``acknowledged`` is how many replicas did; ``reply`` the operation's own reply.
    """

    def __init__(self, message: str, acknowledged: int, reply: object = None) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.reply = reply
