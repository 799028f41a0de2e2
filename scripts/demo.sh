#!/usr/bin/env bash
# The main job on the bundled fixture: set up, build, then encode the 720p mezzanine with the
# built-in H.264 ladder into ./out/ (one fragmented MP4 per rung, plus audio).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p reel-cli
./target/release/reel probe fixtures/out/mezz_720p25.mp4
./target/release/reel encode fixtures/out/mezz_720p25.mp4 --ladder "${1:-h264}" --out out
echo "renditions written to $(pwd)/out"
