#!/usr/bin/env bash
# The project's test command: installs the build tools and fetches the bundled model if
# needed, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
export CAMEL_PY_DIR="${CAMEL_PY_DIR:-$CAMEL_MODEL_DIR/python}"
scripts/setup.sh >/dev/null
cargo test --workspace --all-targets
