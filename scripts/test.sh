#!/usr/bin/env bash
# The project's test command: fetches the bundled model if needed, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
scripts/fetch-model.sh "$CAMEL_MODEL_DIR" >/dev/null
cargo test --workspace --all-targets
