"""The README, the changelog and the version stay as the docs promise (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import redis_sessions

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / "docs").is_dir(),
                                reason="not a source tree (no docs/ beside the tests)")

SETUP_COMMANDS = (
    "python -m pip install '.[demo]' && redis-sessions demo",
    "python -m pip install '.[test]' && python -m pytest",
)


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_readme_is_short_and_keeps_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for command in SETUP_COMMANDS:
        assert command in readme, command
    # not published yet: the README says so, and never tells to run it
    assert "\npip install redis-sessions" not in readme
    assert "`pip install redis-sessions` does not work today" in readme


def test_the_version_comes_from_one_place() -> None:
    """pyproject's version is what the installed package reports, and the changelog has it."""
    assert redis_sessions.__version__ == version()
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    assert releases[0] == "Unreleased" and releases[1] == version()


def test_every_docs_page_is_in_the_nav() -> None:
    """mkdocs build --strict (CI) fails on a page left out of nav; this says which, sooner."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").rglob("*.md"):
        name = page.relative_to(ROOT / "docs").as_posix()
        assert name in nav, f"docs/{name} is not in mkdocs.yml's nav"


def test_links_from_the_readme_into_the_docs_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?:docs/|CHANGELOG|SECURITY)[^)#]*)", readme):
        assert (ROOT / target).is_file(), target
