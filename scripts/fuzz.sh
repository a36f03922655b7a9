#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan+UBSan) in ./build-fuzz and runs each
# for SECONDS (default 600: the documented 10-minute run per target) on its seed corpus
# fuzz/corpus/<target>/. New interesting inputs collect in build-fuzz/fuzz-corpus/<target>/
# (kept between runs, never committed); a crash leaves its input in
# build-fuzz/fuzz-artifacts/<target>/ and makes this script exit 1 after the others ran.
#
#   bash scripts/fuzz.sh              # every target, 10 minutes each
#   bash scripts/fuzz.sh 20           # CI: 20 seconds each (scripts/test.sh runs this)
#   FUZZ_TARGETS="config_fuzz" bash scripts/fuzz.sh 60
#
# Reproduce a crash: build-fuzz/fuzz/<target> <artifact file>. Then add the input to a
# unit test in tests/ next to the fix (docs/RELIABILITY.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-600}
repo=$(pwd)
build="$repo/build-fuzz"

fail() { printf '\nfuzz.sh: FAILED: %s\n' "$1" >&2; exit 1; }
command -v clang++ >/dev/null || fail "clang++ is missing: run scripts/install-deps.sh (FUZZ_PACKAGES) as root"

printf '\n==> Building the fuzz targets (clang, ASan+UBSan) in %s\n' "$build"
CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DREEL_FUZZ=ON -DREEL_BUILD_TESTS=OFF -DREEL_BUILD_BENCH=OFF >/dev/null ||
  fail "cmake could not configure $build (a build folder made by another compiler? remove it)"
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target fuzz_targets || fail "the fuzz targets did not build"

read -r -a built <<< "$(tr ';' ' ' < "$build/fuzz/targets.txt")"
read -r -a targets <<< "${FUZZ_TARGETS:-${built[*]}}"
crashed=()
export LSAN_OPTIONS="suppressions=$repo/fuzz/lsan.supp:print_suppressions=0"
for t in "${targets[@]}"; do
  [[ -x $build/fuzz/$t ]] || fail "no fuzz target '$t' (built: ${built[*]})"
  corpus="$build/fuzz-corpus/$t" artifacts="$build/fuzz-artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  printf '\n==> %s for %s s\n' "$t" "$seconds"
  # -timeout: one input running longer than 10 s is a hang, reported like a crash.
  # -rss_limit_mb: the torch readers map whole files; 2 GiB is far above any seed.
  if ! "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" "$repo/fuzz/corpus/$t" \
      >"$build/fuzz-artifacts/$t.log" 2>&1; then
    crashed+=("$t")
    grep -E 'ERROR|runtime error|property violated|Test unit written' "$build/fuzz-artifacts/$t.log" | head -5 >&2 || true
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$build/fuzz-artifacts/$t.log" || true
done

if [[ ${#crashed[@]} -gt 0 ]]; then
  printf '\nfuzz.sh: FAILED: crashes in: %s\n' "${crashed[*]}" >&2
  printf 'fuzz.sh: inputs and logs are in %s/fuzz-artifacts/; reproduce with build-fuzz/fuzz/<target> <input>\n' "$build" >&2
  exit 1
fi
printf '\nfuzz.sh: %d target(s), %s s each, no crash\n' "${#targets[@]}" "$seconds"
