#!/usr/bin/env bash
# The main job on the bundled fixture: set up, build, then run jobs/demo.toml — per-title
# ladder, CMAF with DASH and HLS, cenc with fresh keys in a CPIX file, published to ./out/demo.
# Running it again resumes or, when everything is done, changes nothing and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p reel-cli
./target/release/reel run jobs/demo.toml "$@"
