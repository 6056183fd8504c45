#!/usr/bin/env bash
# The demo in one command: the OneAccess simulator (:9000), an echo app (:9001) and
# the gateway (:8080). Open http://localhost:8080/ and log in as alice / alice-password.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo run -q -p oneaccess-demo -- "$@"
