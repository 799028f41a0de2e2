#!/usr/bin/env bash
# Installs what Reel needs on a fresh Debian 12 machine (as root, or with sudo), then makes
# the test fixtures. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  nasm ffmpeg fonts-dejavu-core time chromium
  meson ninja-build clang libclang-dev
  postgresql
)
# Node.js runs the player tests; the machine image may already have a newer one.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "error: cargo not found; install the Rust toolchain (rustup)" >&2; exit 1; }
# Real players and an independent MP4 parser for the tests (never a browser download:
# Chromium comes from Debian).
if [ ! -d tests/players/node_modules/playwright-core ] || [ tests/players/package-lock.json -nt tests/players/node_modules ]; then
  (cd tests/players && npm ci --no-audit --no-fund --loglevel=error)
fi
# A real S3-compatible server for the publishing tests (s3s-fs: an S3 server over a folder,
# from crates.io; MinIO is not installable here). Built once into ~/.cargo/bin (~3 minutes).
S3S_VERSION=0.14.1
if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "building s3s-fs $S3S_VERSION (the S3-compatible server the tests publish to)"
  cargo install --quiet --locked s3s-fs --version "$S3S_VERSION" --features binary
fi
bash fixtures/make.sh
