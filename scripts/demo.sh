#!/usr/bin/env bash
# The demo in one command: the OneAccess simulator (:9000), an echo app (:9001) and
# the gateway (:8080). Open http://localhost:8080/ and log in as alice / alice-password.
# It installs only what building needs (setup.sh --build), not the tests' servers
# and browser nor the benchmark's peers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --build
echo "demo: building, then starting (a first build takes minutes: README, \"Two commands\")" >&2
exec cargo run -q -p oneaccess-demo -- "$@"
