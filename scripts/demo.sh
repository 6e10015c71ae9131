#!/usr/bin/env bash
# The main job: a regtest worker node that mines, completes a prompt with the bundled model,
# and checks completions with RASTiC — an honest one passes, a tampered one is caught.
set -euo pipefail
cd "$(dirname "$0")/.."

export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
model="$(scripts/fetch-model.sh "$CAMEL_MODEL_DIR")"

echo "== building camel-worker (release)"
cargo build --release --quiet -p camel-worker
bin="${CARGO_TARGET_DIR:-target}/release/camel-worker"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

prompt="Llamas and alpacas are"
tokens=48
job=(--model "$model" --prompt "$prompt" --max-tokens "$tokens")

echo
echo "== completing \"$prompt\" (greedy, up to $tokens tokens)"
"$bin" complete "${job[@]}" --json > "$work/honest.json"
python3 - "$work/honest.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(c["text"].strip())
print(f'-- {len(c["ids"])} tokens, stop: {c["stop"]}, {c["decode_tokens_per_s"]:.0f} tok/s, model {c["model_id"][:16]}…')
PY

echo
echo "== full RASTiC check of that output (exit 0 = valid)"
"$bin" verify "${job[@]}" --output-ids @"$work/honest.json" --full

echo
echo "== the same output with one token substituted halfway (a cheat); expect INVALID"
python3 - "$work/honest.json" "$work/cheat.txt" <<'PY'
import json, sys
ids = json.load(open(sys.argv[1]))["ids"]
i = len(ids) // 2
ids[i] = 1000 if ids[i] != 1000 else 1001
open(sys.argv[2], "w").write(",".join(map(str, ids)))
PY
set +e
"$bin" verify "${job[@]}" --output-ids @"$work/cheat.txt" --full
rc=$?
set -e
if [ "$rc" -ne 1 ]; then
  echo "demo: expected the tampered output to be rejected (exit 1), got exit $rc" >&2
  exit 1
fi
echo
echo "demo: honest output accepted, tampered output rejected."
