#!/usr/bin/env bash
# reel in one command on a fresh Debian 12: installs the build dependencies, builds
# reeld and reelctl (RelWithDebInfo, ./build, shared with scripts/test.sh), starts a
# throwaway daemon with its own state dir and socket, runs one job of the diagnostic
# `sleep` model to completion and shows it, runs a tiny Wan 2.1 text-to-video job and
# prints the path of its MP4 (copied to build/quickstart/), and stops the daemon again.
# Nothing outside ./build and a temp dir is touched.
#
#   bash scripts/quickstart.sh          # KEEP=1 keeps the temp dir (state, log, config)
#   JOBS=2 bash scripts/quickstart.sh   # build parallelism (default: nproc)
#
# Needs root (or password-less sudo) only if packages are missing; otherwise it prints
# the apt-get command to run as root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/build.sh
reel_build quickstart reeld reelctl wan
step() { printf '\n==> %s\n' "$*"; }
die() { reel_fail "$@"; }

reeld="$build/daemon/reeld"
reelctl="$build/ctl/reelctl"

# A private daemon: state, socket, config and log all live in one temp dir. /tmp rather
# than $TMPDIR keeps the socket path well under the 108-byte AF_UNIX limit.
tmp=$(mktemp -d /tmp/reel-quickstart.XXXXXX)
log="$tmp/reeld.log"
sock="$tmp/reeld.sock"
daemon_pid=

cleanup() {
  local rc=$?
  if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f $log ]]; then
    printf '\nquickstart: last lines of the daemon log (%s):\n' "$log" >&2
    tail -n 30 "$log" >&2 || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    printf '\nquickstart: kept %s (config, state, log)\n' "$tmp"
  else
    rm -rf "$tmp"
    [[ $rc -eq 0 ]] || printf 'quickstart: removed %s; run with KEEP=1 to keep it for a look\n' "$tmp" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat > "$tmp/reeld.toml" <<EOF
# Written by scripts/quickstart.sh; every key is documented in config/reeld.toml.
[daemon]
state_dir = "$tmp/state"
socket_path = "$sock"
EOF

step "Starting reeld (state in $tmp/state, socket $sock)"
"$reeld" --config "$tmp/reeld.toml" >"$log" 2>&1 &
daemon_pid=$!

ctl() { "$reelctl" --socket "$sock" "$@"; }

deadline=$((SECONDS + 30))
until ctl --timeout 2 status >/dev/null 2>&1; do
  kill -0 "$daemon_pid" 2>/dev/null ||
    die "reeld exited during start-up" "its log is shown below; fix what it says (config, permissions) and run again"
  ((SECONDS < deadline)) ||
    die "reeld did not answer on $sock within 30 s" "its log is shown below"
  sleep 0.2
done
ctl status || die "reelctl status failed"

step "Submitting a job of the diagnostic 'sleep' model and waiting for it"
echo "\$ reelctl submit sleep --param seconds=2 --wait"
ctl submit sleep --param seconds=2 --wait ||
  die "the sleep job did not succeed" "see 'reelctl show' output and the daemon log below"

job=$(ctl -q ls --limit 1) || die "reelctl ls failed"
[[ -n $job ]] || die "reelctl ls shows no job after the submit"

step "The finished job"
echo "\$ reelctl show $job"
ctl show "$job" || die "reelctl show $job failed"

step "Text to video with Wan 2.1 at tiny size (random weights: a smoke test, not a picture)"
echo "\$ reelctl submit wan2.1-t2v-tiny --param prompt='a red fox runs through fresh snow' --wait"
ctl submit wan2.1-t2v-tiny --param "prompt=a red fox runs through fresh snow" --wait ||
  die "the text-to-video job did not succeed" "see the daemon log below"
wan_job=$(ctl -q ls --limit 1) || die "reelctl ls failed"
mp4=$(ctl show --json "$wan_job" | grep -o '"[^"]*\.mp4"' | head -1 | tr -d '"')
[[ -f $mp4 ]] || die "job $wan_job reports no MP4" "see 'reelctl show $wan_job'"
mkdir -p "$build/quickstart"
cp "$mp4" "$build/quickstart/wan2.1-t2v-tiny.mp4"
echo "MP4: $build/quickstart/wan2.1-t2v-tiny.mp4 (kept; the job's own copy was $mp4)"

step "Stopping reeld (SIGTERM)"
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
[[ $rc -eq 0 ]] || die "reeld exited with status $rc after SIGTERM" "its log is shown below"
echo "reeld stopped cleanly; its log was $log$([[ ${KEEP:-0} == 1 ]] || echo ' (removed with the temp dir; KEEP=1 keeps it)')"

printf '\nquickstart: OK. Next: bash scripts/test.sh runs the test suite; README.md shows reelctl usage.\n'
