#!/usr/bin/env bash
# Checks the systemd integration files with systemd's own tools (a CTest test):
#   - the CMake-configured reeld.service passes `systemd-analyze verify` with no
#     diagnostics at all (verify exits 0 on unknown directives and bad values, it only
#     prints them, so any line about the unit is a failure);
#   - reel.sysusers.conf and reel.tmpfiles.conf apply cleanly to a scratch root.
# verify insists that ExecStart's binary exists, so it checks a copy of the configured
# unit whose ExecStart names the freshly built reeld; everything else is unchanged.
#
# usage: systemd_unit_check.sh <configured reeld.service> <built reeld> <source systemd/ dir>
# Exit: 0 ok, 1 failure, 77 skipped (no systemd tools; CTest SKIP_RETURN_CODE).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <configured reeld.service> <built reeld> <source systemd/ dir>" >&2
  exit 2
fi
unit=$1 reeld=$2 srcdir=$3
# --root makes systemd-sysusers/-tmpfiles resolve relative paths inside the root.
[[ -d $srcdir ]] || { echo "FAIL: $srcdir is not a directory" >&2; exit 1; }
srcdir=$(cd "$srcdir" && pwd)

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not found (install the 'systemd' package: scripts/install-deps.sh)"
    exit 77
  fi
done

fail=0
problem() { echo "FAIL: $*" >&2; fail=1; }

[[ -f $unit ]] || { echo "FAIL: no configured unit at $unit (did CMake configure systemd/reeld.service.in?)" >&2; exit 1; }
[[ -x $reeld ]] || { echo "FAIL: $reeld is not an executable (build reeld first)" >&2; exit 1; }
reeld=$(realpath "$reeld")   # ExecStart= needs an absolute path

work=$(mktemp -d "${TMPDIR:-/tmp}/reel-unit-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- static expectations on the configured unit --------------------------------------
if grep -n '@[A-Za-z_]*@' "$unit"; then
  problem "$unit still contains unsubstituted @VARIABLES@"
fi
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
exec_bin=${exec_start%% *}
[[ $exec_bin == /*/reeld ]] || problem "ExecStart binary '$exec_bin' is not an absolute path to reeld"
for want in 'Type=notify' 'NotifyAccess=main' 'User=reel' 'Group=reel' 'StateDirectory=reel' \
            'RuntimeDirectory=reel' 'KillMode=mixed' 'DevicePolicy=closed' 'WatchdogSec=30'; do
  grep -qx "$want" "$unit" || problem "$unit lacks '$want'"
done
if grep -q '^MemoryDenyWriteExecute=\(yes\|true\|on\|1\)' "$unit"; then
  problem "MemoryDenyWriteExecute breaks CUDA's JIT; remove it"
fi
if grep -q '^PrivateDevices=\(yes\|true\|on\|1\)' "$unit"; then
  problem "PrivateDevices hides /dev/nvidia*; use the DeviceAllow= list instead"
fi

# --- systemd-analyze verify -------------------------------------------------------------
# Returns verify's diagnostics about the unit file in $1 (lines about other units on
# the host are not ours to judge and are only echoed).
verify() {
  local file=$1 out rc=0 ours
  out=$(systemd-analyze verify "$file" 2>&1) || rc=$?
  [[ -n $out ]] && printf '%s\n' "$out" >&2
  ours=$(printf '%s\n' "$out" | grep -F -e "$file" -e "$(basename "$file")" || true)
  if [[ $rc -ne 0 && -z $ours ]]; then ours="systemd-analyze verify exited $rc"; fi
  printf '%s' "$ours"
}

mkdir -p "$work/unit" "$work/selftest"
sed -E "s|^ExecStart=[^ ]+|ExecStart=$reeld|" "$unit" > "$work/unit/reeld.service"
diag=$(verify "$work/unit/reeld.service")
[[ -z $diag ]] || problem "systemd-analyze verify reported problems with reeld.service (see above)"

# Self-test: the check must notice an unknown directive and a bad value in this
# systemd version, or a clean result above means nothing.
sed -e 's/^KillMode=mixed$/KillMode=mixd/' -e '/^\[Service\]$/a ReelNoSuchDirective=1' \
  "$work/unit/reeld.service" > "$work/selftest/reeld.service"
diag=$(verify "$work/selftest/reeld.service" 2>/dev/null)
grep -q 'ReelNoSuchDirective' <<<"$diag" || problem "self-test: verify did not report an unknown directive"
grep -q 'mixd' <<<"$diag" || problem "self-test: verify did not report a bad KillMode value"

# --- sysusers.d and tmpfiles.d, applied to a scratch root ---------------------------
root="$work/root"
mkdir -p "$root/etc"
if ! out=$(systemd-sysusers --root="$root" "$srcdir/reel.sysusers.conf" 2>&1); then
  printf '%s\n' "$out" >&2
  problem "systemd-sysusers rejected reel.sysusers.conf"
elif grep -F "reel.sysusers.conf" <<<"$out" >&2; then
  problem "systemd-sysusers warned about reel.sysusers.conf"
fi
grep -q '^reel:x:[0-9]*:[0-9]*:[^:]*:/var/lib/reel:' "$root/etc/passwd" 2>/dev/null ||
  problem "sysusers did not create the reel user with home /var/lib/reel"

# Not root: chown to the reel user cannot work, so only the rules themselves are judged
# (their diagnostics name "<file>:<line>"), and the modes.
out=$(systemd-tmpfiles --root="$root" --create "$srcdir/reel.tmpfiles.conf" 2>&1) && rc=0 || rc=$?
if grep -F "reel.tmpfiles.conf" <<<"$out" >&2; then
  problem "systemd-tmpfiles reported problems in reel.tmpfiles.conf"
elif [[ $rc -ne 0 && $(id -u) -eq 0 ]]; then
  printf '%s\n' "$out" >&2
  problem "systemd-tmpfiles --create failed (exit $rc)"
fi
reel_uid=$(awk -F: '$1 == "reel" { print $3 }' "$root/etc/passwd" 2>/dev/null || true)
for d in var/lib/reel var/lib/reel/outputs; do
  want="750 $reel_uid" got=$(stat -c '%a %u' "$root/$d" 2>/dev/null || echo missing)
  [[ $(id -u) -eq 0 ]] || { want=750 got=${got%% *}; }
  [[ $got == "$want" ]] || problem "/$d: got '$got', want '$want' (mode, owner uid of reel)"
done

if [[ $fail -ne 0 ]]; then
  echo "systemd unit check FAILED" >&2
  exit 1
fi
echo "systemd unit check passed: reeld.service, reel.sysusers.conf, reel.tmpfiles.conf"
