#!/usr/bin/env bash
# The load benchmark (README, "How fast"): builds the gateway, the OneAccess
# simulator and the harness (with its Pingora floor) in release mode, then runs
# the gateway side by side with nginx, Apache mod_auth_openidc, Apache
# mod_auth_cas and the floor on loopback. Arguments go to
# oneaccess-loadbench (--help lists them); the report goes to
# bench-results/latest.md unless --out says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -q -p oneaccess-gateway -p oneaccess-sim -p oneaccess-loadbench --bins
exec "${CARGO_TARGET_DIR:-target}/release/oneaccess-loadbench" "$@"
