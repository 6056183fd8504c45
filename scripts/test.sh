#!/usr/bin/env bash
# Every test of the workspace: unit tests, and the end-to-end tests that run the
# OneAccess simulator, an echo app and the gateway in-process on ephemeral ports.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace "$@"
