#!/usr/bin/env bash
# Installs what is missing on a fresh Debian/Ubuntu machine, in one of two sets:
#
#   setup.sh          everything: what the tests, CI (.ci/run) and the load
#                     benchmark need (scripts/test.sh, scripts/loadbench.sh)
#   setup.sh --build  only what building the gateway needs, which is all the
#                     demo needs (scripts/demo.sh): cmake (Pingora's zlib-ng is
#                     built with it) and a C toolchain (AWS-LC, ring, SQLite,
#                     mimalloc, zstd are built with cc). The demo's simulator and
#                     echo app run inside its own process: it needs no server.
#                     pkg-config is not needed: aws-lc-sys only asks it whether
#                     the system has an AWS-LC, and builds its own when not.
#
# Everything adds redis-server (the tests run the Redis session store against a
# real server) and nginx (the forward-auth tests run a real nginx in front of
# the gateway; only its binary is used, the packaged service is not needed) and
# chromium with chromedriver (demo/tests/browser.rs logs in through the demo
# with a real headless browser), promtool from the prometheus package
# (tests/metrics.rs lints /metrics with it), the load benchmark's peers and load
# generator:
# wrk, Apache with mod_auth_openidc and with mod_auth_cas
# (loadbench/tests/smoke.rs runs the benchmark briefly), and the
# interoperability tests' servers (npm and PyPI).
# Idempotent: does nothing when everything is there.
set -euo pipefail

case "${1:-}" in
  "") profile=all ;;
  --build) profile=build ;;
  *)
    echo "usage: $0 [--build]   (no argument: everything the tests and the benchmark need)" >&2
    exit 2
    ;;
esac

need=()
# Building (every set).
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ "$profile" = all ]; then
  command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  # Redis Sentinel and redis-cli (a cluster is made with it): the Sentinel and
  # Cluster store tests (tests/store.rs) and the failover test (tests/sessions.rs).
  command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
  command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
  # .ci/run makes a throwaway assertion key for config/example.toml with it, and
  # the load benchmark a certificate for mod_auth_cas's ticket validation.
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  # demo/tests/browser.rs looks for exactly these paths (Debian's packages).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  # tests/metrics.rs lints /metrics with promtool (Debian's prometheus package).
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  # The load benchmark (scripts/loadbench.sh) and its smoke test.
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  [ -x /usr/sbin/apache2 ] || need+=(apache2)
  [ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
  [ -f /usr/lib/apache2/modules/mod_auth_cas.so ] || need+=(libapache2-mod-auth-cas)
  # The interoperability tests' independent servers: panva's oidc-provider
  # (Node.js, npm) and django-mama-cas (Python, a virtualenv of its own).
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is missing: install Rust from rustup.rs first" >&2; exit 1; }

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]}"
  # Packages such as nginx and redis-server start their service on install.
  # Nothing here needs that (the tests start their own on free ports), and a
  # failed start (port 80 taken, no init system) would fail the install: a
  # policy-rc.d that refuses every start, for the length of the install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ "$profile" = all ] || exit 0

# The independent servers themselves, at the versions their lock files name.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -d "$here/interop/oidc-provider/node_modules/oidc-provider" ]; then
  echo "setup: installing oidc-provider (npm)"
  npm ci --prefix "$here/interop/oidc-provider" --no-audit --no-fund --silent
fi
if [ ! -x "$here/interop/mama-cas/.venv/bin/python" ] \
  || ! "$here/interop/mama-cas/.venv/bin/python" -c "import mama_cas" 2>/dev/null; then
  echo "setup: installing django-mama-cas (PyPI)"
  python3 -m venv "$here/interop/mama-cas/.venv"
  "$here/interop/mama-cas/.venv/bin/pip" install -q -r "$here/interop/mama-cas/requirements.txt"
fi
