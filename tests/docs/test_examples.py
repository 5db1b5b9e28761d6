"""Every Python example in docs/ and README.md runs here, against the tests' private server.

The conventions (docs/contributing.md says the same, for writers):

- Each ```` ```python ```` block runs alone, in a fresh namespace, as a module named
  ``docs_example`` (so ``if __name__ == "__main__":`` parts, such as ``app.run()``, do not
  run): every example carries its own imports.
- The only glue: ``redis://localhost:6379/0`` and ``redis://127.0.0.1:6379/0`` in a block
  become the test server's URL, and ``REDIS_URL`` is set to it. A block that would still reach
  port 6379 (the machine's own server) fails instead of running.
- A block whose first line is ``# not run: <reason>`` is skipped with that reason, shown to
  readers in the block itself.
- An HTML comment right after a block, ``<!-- test`` ... ``-->``, is more code run in the
  block's namespace: assertions that the example does what the page says. Readers never see it.
- The keys an example leaves on the server are deleted afterwards (the server is the tests'
  own; with ``REDIS_URL`` set the examples are skipped: they use the default namespace).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
# an installed wheel's test run (cibuildwheel copies tests/ alone) has no docs to run
SOURCE_TREE = (ROOT / "docs").is_dir()
pytestmark = pytest.mark.skipif(not SOURCE_TREE, reason="not a source tree (no docs/ beside "
                                "the tests)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))] if SOURCE_TREE else []
LOCAL_URLS = ("redis://localhost:6379/0", "redis://127.0.0.1:6379/0")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*$")
_TEST = re.compile(r"\A\s*<!--\s*test\b(?P<code>.*?)-->", re.DOTALL)
_NOT_RUN = re.compile(r"\A#\s*not run:\s*(?P<reason>\S.*)$", re.MULTILINE)


@dataclass
class Example:
    page: Path
    line: int
    code: str
    test: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The page's python blocks, each with the hidden test that follows it (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Example] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, lang = match.group("indent"), match.group("lang")
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        if lang != "python":
            continue
        rest = "\n".join(lines[i:])
        test = _TEST.match(rest)
        found.append(Example(page, start + 1, "\n".join(body) + "\n",
                             textwrap.dedent(test.group("code")) if test else ""))
    return found


ALL = [example for page in PAGES for example in examples(page)]


def test_the_pages_have_examples() -> None:
    """The collector finds the blocks (a broken fence pattern would skip them all silently)."""
    assert len(ALL) >= 20, [e.id for e in ALL]
    assert any(e.page.name == "README.md" for e in ALL)


@pytest.mark.parametrize("example", ALL, ids=[e.id for e in ALL])
def test_example_runs(example: Example, redis_server, redis_url: str, monkeypatch) -> None:
    reason = _NOT_RUN.match(example.code)
    if reason is not None:
        pytest.skip(f"{example.id}: not run: {reason.group('reason')}")
    if redis_server is None:
        pytest.skip("the docs' examples use the default namespace: they run only on the "
                    "tests' private server, not on REDIS_URL")
    code = example.code
    for url in LOCAL_URLS:
        code = code.replace(url, redis_url)
    if ":6379" in code or ":6379" in example.test:
        pytest.fail(f"{example.id} would reach the machine's Redis on port 6379")
    monkeypatch.setenv("REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    before = set(client.scan_iter(count=1000))
    namespace = {"__name__": "docs_example"}
    try:
        exec(compile(code, example.id, "exec"), namespace)  # noqa: S102 - the docs' own code
        if example.test:
            exec(compile(example.test, f"{example.id} (its test)", "exec"), namespace)  # noqa: S102
    finally:
        left = [key for key in client.scan_iter(count=1000) if key not in before]
        if left:
            client.delete(*left)
        client.close()
