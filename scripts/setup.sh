#!/usr/bin/env bash
# Installs what Reel needs on a fresh Debian 12 machine (as root, or with sudo), checks that
# the package list covers everything the project uses, then makes the test fixtures. Safe to
# run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "error: cargo not found; install the Rust toolchain (rustup)" >&2; exit 1; }

# The Debian 12 packages, one a line, each with what Reel uses of it. tools/setup-check holds
# this list to two rules (run below, after the install):
#  1. every file the code, fixtures, tests and benchmarks use (GStreamer elements, programs,
#     pkg-config modules, the files in scripts/needs.txt) belongs to a package listed here by
#     name, or to one of Debian's Essential packages;
#  2. every package listed here owns at least one of those files.
# So a missing line fails the check on any machine, however many extra packages it has, and
# so does a line that nothing uses.
packages=(
  # Building: the gstreamer crates find GStreamer through pkg-config.
  pkgconf                          # pkg-config
  libgstreamer1.0-dev              # gstreamer-1.0.pc
  libgstreamer-plugins-base1.0-dev # gstreamer-app/-pbutils/-video-1.0.pc
  nasm                             # rav1e's and libvmaf's assembly (several times faster)
  meson                            # libvmaf-sys builds Netflix's libvmaf with meson ...
  ninja-build                      # ... and ninja
  clang                            # bindgen (libvmaf-sys) asks clang for the system headers
  libclang-14-dev                  # bindgen loads libclang
  xxd                              # libvmaf's build embeds its VMAF models with xxd (without
                                   # it the build succeeds and every VMAF score fails at run time)
  libsvtav1enc-dev                 # SvtAv1Enc.pc, EbSvtAv1Enc.h: SVT-AV1 (reel-svt-av1's bindgen, link)
  # GStreamer: the elements Reel, the fixtures and the tests create, and the demuxers and
  # decoders uridecodebin3 plugs for the sources Reel reads.
  libgstreamer1.0-0                # core elements: queue, tee, capsfilter, filesrc, fakesink
  gstreamer1.0-tools               # gst-launch-1.0 (fixtures), gst-inspect-1.0 (this check)
  gstreamer1.0-plugins-base        # videoconvert, videoscale, audioconvert, uridecodebin3, opus
  gstreamer1.0-plugins-good        # qtdemux, mp4mux, matroska, png
  gstreamer1.0-plugins-bad         # h264parse, tsdemux, av1parse and av1dec (SVT-AV1 trials)
  gstreamer1.0-plugins-ugly        # x264enc
  gstreamer1.0-libav               # avdec_h264, avdec_aac, avenc_aac, FFV1
  gstreamer1.0-x                   # timeoverlay (the fixtures' burnt-in time code)
  fonts-dejavu-core                # the fixtures' time code and the plots' labels
  # Test oracles, peers and servers (never runtime dependencies of reel).
  ffmpeg                           # ffmpeg, ffprobe
  chromium                         # the real players run in headless Chromium
  nodejs                           # node runs playwright-core, the players, mp4box.js
  npm                              # npm ci in tests/players
  postgresql-15                    # initdb, pg_ctl, postgres: the services' PostgreSQL tests
  postgresql-client-common         # psql
  postgresql-client-15             # pg_isready
  procps                           # kill (signals to reel in the end-to-end tests)
  time                             # /usr/bin/time: peak memory in tests and benchmarks
  curl                             # the load benchmark's requests
  wrk                              # the load benchmark's load generator
  nginx                            # the load benchmark's peer for the origin
  openssl                          # the packaging benchmark's keys; the NATS TLS test's CA
  nats-server                      # the distributed tests' NATS JetStream server (2.9.10)
)
# Installed only where the command is missing: NodeSource's nodejs carries its own npm and
# conflicts with Debian's.
declare -A unless_command=([npm]=npm)

missing=()
for package in "${packages[@]}"; do
  command="${unless_command[$package]:-}"
  [ -n "$command" ] && command -v "$command" >/dev/null && continue
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Every GStreamer element, program and file the code, fixtures and tests use must come from
# a package listed above (not merely be on this machine), and every listed package must be
# used: tools/setup-check fails naming the package otherwise.
cargo run --quiet --locked -p reel-setup-check

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
