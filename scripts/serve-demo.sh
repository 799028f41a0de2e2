#!/usr/bin/env bash
# Serves the title the main job published (./out/demo, keys in ./out/demo-keys.cpix): imports
# it into the catalog (SQLite in ./out/serve), makes a demo viewer account, and starts
# `reel serve`, which prints the URL of the player page. Runs the main job first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/demo/title.json ] && [ -f out/demo-keys.cpix ] || bash scripts/demo.sh
cargo build --release -p reel-cli
reel=./target/release/reel
$reel serve --data out/serve import out/demo --keys out/demo-keys.cpix
REEL_PASSWORD=demo-password $reel serve --data out/serve account demo@example.com --plan standard --exists-ok
echo "sign in as demo@example.com with the password demo-password"
exec $reel serve --data out/serve "$@"
