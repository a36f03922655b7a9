# Shared by quickstart.sh and test.sh (sourced, not run): install what is missing and
# build into ./build. Both scripts use the same build type so neither rebuilds the other.
#   reel_build SCRIPT_NAME [TARGET...]    (no targets: everything)
# REEL_SANITIZE=address,undefined builds in ./build-asan instead, every target
# instrumented and without the LibTorch plugins (see docs/RELIABILITY.md).

reel_fail() {
  printf '\n%s: FAILED: %s\n' "$REEL_SCRIPT" "$1" >&2
  [[ $# -gt 1 ]] && printf '%s: %s\n' "$REEL_SCRIPT" "$2" >&2
  exit 1
}

reel_build() {
  REEL_SCRIPT=$1
  shift
  repo=$(pwd)
  build="$repo/build"
  jobs=${JOBS:-$(nproc)}
  local extra=()
  if [[ -n ${REEL_SANITIZE:-} ]]; then
    build="$repo/build-asan"
    extra=(-DREEL_SANITIZE="$REEL_SANITIZE" -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON)
  fi

  printf '\n==> Installing dependencies (scripts/install-deps.sh)\n'
  bash scripts/install-deps.sh ||
    reel_fail "dependencies are missing" "run the apt-get command printed above as root, then run this script again"

  printf '\n==> Building (RelWithDebInfo) in %s\n' "$build"
  if [[ -f $build/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build/CMakeCache.txt"; then
    reel_fail "$build was configured with another CMake generator" "remove it (rm -rf build) and run this script again"
  fi
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${extra[@]}" ||
    reel_fail "cmake could not configure the build" "read the CMake errors above"
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$build" -j "$jobs" "${targets[@]}" || reel_fail "the build failed" "read the compiler errors above"
}
