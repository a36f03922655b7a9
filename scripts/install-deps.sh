#!/usr/bin/env bash
# Installs what building and testing reel needs on Debian 12 (apt). Idempotent: when
# every package is already installed it does nothing (no apt-get, no root needed).
# When something is missing it uses apt-get as root, or through `sudo -n` when that
# works without a password; otherwise it prints the command to run as root and exits 1.
set -euo pipefail

# Build and test toolchain. Later features append their packages to their own list
# and add it to PACKAGES below.
BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libboost-dev libsqlite3-dev sqlite3 libtomlplusplus-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  systemd            # systemd-analyze, systemd-sysusers, systemd-tmpfiles for the unit check
)
# Model plugins: LibTorch (CPU build; reference BLAS is ~40x slower than OpenBLAS, so
# the pthread OpenBLAS is installed with it), SentencePiece for the T5 tokenizer, and
# FFmpeg's libraries (with x264) for writing and reading video, ICU for tokenizers.
PLUGIN_PACKAGES=(
  libtorch-dev libopenblas0-pthread libsentencepiece-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
  libicu-dev         # Unicode classes for the Llama-3 tokenizer's regex (HunyuanVideo-Avatar)
)

# Remote-model plugins: libcurl (OpenSSL TLS) for the DashScope API.
REMOTE_PACKAGES=(
  libcurl4-openssl-dev ca-certificates
  openssl            # the TLS-verification test serves a self-signed certificate with openssl s_server
)

# Reliability suite (docs/RELIABILITY.md): clang with libFuzzer and the sanitizer
# runtimes for scripts/fuzz.sh.
FUZZ_PACKAGES=(
  clang libclang-rt-14-dev
)

PACKAGES=("${BUILD_PACKAGES[@]}" "${PLUGIN_PACKAGES[@]}" "${REMOTE_PACKAGES[@]}" "${FUZZ_PACKAGES[@]}")

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: this script needs a Debian-based system (dpkg, apt-get)." >&2
  echo "install-deps: install these packages (or their equivalents) yourself: ${PACKAGES[*]}" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n env DEBIAN_FRONTEND=noninteractive)
else
  echo "install-deps: not root and no password-less sudo; run this as root, then re-run:" >&2
  echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
