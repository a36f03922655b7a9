#!/usr/bin/env bash
# Builds reel with its tests (RelWithDebInfo, ./build) and runs the whole suite with
# CTest: unit tests, tests that drive the real reeld/reelctl, and the systemd unit
# check. Exits with CTest's status, so CI (.ci/run) fails when any test fails.
#
#   bash scripts/test.sh              # everything
#   bash scripts/test.sh -R Store     # extra arguments go to ctest (here: a name filter)
#   JOBS=2 bash scripts/test.sh       # build parallelism (default: nproc)
#   REEL_SANITIZE=address,undefined bash scripts/test.sh   # ASan+UBSan suite in ./build-asan
#                                     # (no LibTorch plugins; any sanitizer report fails its test)
#
# Needs root (or password-less sudo) only if packages are missing; otherwise it prints
# the apt-get command to run as root. Each test has a timeout set in tests/CMakeLists.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/build.sh
reel_build test.sh

echo "==> Running the tests"
rc=0
if [[ -n ${REEL_SANITIZE:-} ]]; then
  # Leaks are checked (detect_leaks); a report aborts the process, which fails the test.
  export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
fi
ctest --test-dir "$build" --output-on-failure -j2 "$@" || rc=$?
if [[ $rc -ne 0 ]]; then
  echo "test.sh: some tests failed (ctest exit $rc); their output is above." >&2
  echo "test.sh: re-run one with: ctest --test-dir build --output-on-failure -R <name>" >&2
fi
exit "$rc"
