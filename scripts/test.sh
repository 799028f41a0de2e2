#!/usr/bin/env bash
# Set up, then run the whole test suite (unit tests and the end-to-end tests in tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --no-fail-fast "$@"
