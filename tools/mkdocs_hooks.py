"""MkDocs hooks: the version comes from one place, the installed package's metadata
(pyproject.toml's ``version``, read by ``importlib.metadata`` as ``redis_sessions.__version__``)."""

from __future__ import annotations

from typing import Any


def _version() -> str:
    import redis_sessions

    return redis_sessions.__version__


def on_config(config: Any) -> Any:
    """The footer names the version."""
    config["copyright"] = f"redis-sessions {_version()} · MIT License"
    config["extra"]["version"] = _version()
    return config


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """``{{ version }}`` in a page is the package's version."""
    return markdown.replace("{{ version }}", _version())
