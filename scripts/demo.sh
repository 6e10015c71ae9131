#!/usr/bin/env bash
# The main command: installs the build tools if missing, fetches the bundled model, builds the
# binaries (the same dev profile the tests use, so the two commands share one build) and runs
# `camel-testnet demo`: three workers on loopback, a fresh wallet paying for a completion that
# two other workers verify, then a cheating worker caught and slashed.
# Arguments go to `camel-testnet demo` (e.g. --json, --keep, --prompt TEXT).
set -euo pipefail
cd "$(dirname "$0")/.."

export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
scripts/setup.sh >/dev/null

echo "== building camel-worker and camel-testnet (a few minutes the first time)" >&2
cargo build --workspace --bins
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug"

echo >&2
exec "$bin/camel-testnet" demo "$@"
