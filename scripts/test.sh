#!/usr/bin/env bash
# Builds reel with its tests (RelWithDebInfo, ./build) and runs the whole suite with
# CTest: unit tests, tests that drive the real reeld/reelctl, and the systemd unit
# check. Exits with CTest's status, so CI (.ci/run) fails when any test fails.
#
#   bash scripts/test.sh              # everything
#   bash scripts/test.sh -R Store     # extra arguments go to ctest (here: a name filter)
#   JOBS=2 bash scripts/test.sh       # build parallelism (default: nproc)
#
# Needs root (or password-less sudo) only if packages are missing; otherwise it prints
# the apt-get command to run as root. Each test has a timeout set in tests/CMakeLists.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
build="$repo/build"
jobs=${JOBS:-$(nproc)}

fail() {
  printf '\ntest.sh: FAILED: %s\n' "$1" >&2
  [[ $# -gt 1 ]] && printf 'test.sh: %s\n' "$2" >&2
  exit 1
}

echo "==> Installing build dependencies (scripts/install-deps.sh)"
bash scripts/install-deps.sh ||
  fail "dependencies are missing" "run the apt-get command printed above as root, then run this script again"

echo "==> Building with tests (RelWithDebInfo) in $build"
if [[ -f $build/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build/CMakeCache.txt"; then
  fail "$build was configured with another CMake generator" "remove it (rm -rf build) and run this script again"
fi
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREEL_BUILD_TESTS=ON ||
  fail "cmake could not configure the build" "read the CMake errors above"
cmake --build "$build" -j "$jobs" || fail "the build failed" "read the compiler errors above"

echo "==> Running the tests"
rc=0
ctest --test-dir "$build" --output-on-failure -j2 "$@" || rc=$?
if [[ $rc -ne 0 ]]; then
  echo "test.sh: some tests failed (ctest exit $rc); their output is above." >&2
  echo "test.sh: re-run one with: ctest --test-dir build --output-on-failure -R <name>" >&2
fi
exit "$rc"
