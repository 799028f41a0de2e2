#!/usr/bin/env bash
# The main job on the bundled fixture: set up, build, then encode the 720p mezzanine with the
# built-in H.264 ladder into ./out/ (one fragmented MP4 per rung, plus audio).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p reel-cli
./target/release/reel probe fixtures/out/mezz_720p25.mp4
rm -rf out/renditions out/title
./target/release/reel encode fixtures/out/mezz_720p25.mp4 --ladder "${1:-h264}" --out out/renditions
./target/release/reel package out/renditions/*.mp4 --out out/title
echo "renditions in $(pwd)/out/renditions; DASH and HLS in $(pwd)/out/title (manifest.mpd, master.m3u8)"
