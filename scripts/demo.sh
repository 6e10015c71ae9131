#!/usr/bin/env bash
# The main job, until the local testnet exists: a regtest worker node mines blocks over its
# API, then the worker completes a prompt with the bundled model and checks completions with
# RASTiC — the honest one passes, a tampered one is caught.
set -euo pipefail
cd "$(dirname "$0")/.."

export CAMEL_MODEL_DIR="${CAMEL_MODEL_DIR:-$PWD/models}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
scripts/build-deps.sh
model="$(scripts/fetch-model.sh "$CAMEL_MODEL_DIR")"

echo "== building camel-worker (release)"
cargo build --release --quiet -p camel-worker
bin="${CARGO_TARGET_DIR:-target}/release/camel-worker"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo
echo "== starting a regtest worker node (chain store, mempool, HTTP API on 127.0.0.1)"
"$bin" node --regtest --data-dir "$work/node" --api-port 0 --p2p-listen /ip4/127.0.0.1/tcp/0 > "$work/node.log" 2>&1 &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$work/node/api.addr" ] && [ -s "$work/node/.cookie" ] && break; sleep 0.1; done
# Private key 1's regtest address: any address of the node's network works.
miner_address="mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"
python3 - "$work/node" "$miner_address" <<'PY'
import json, sys, urllib.request
d, addr = sys.argv[1], sys.argv[2]
api = "http://" + open(f"{d}/api.addr").read().strip()
token = open(f"{d}/.cookie").read().strip()
def call(path, body=None):
    req = urllib.request.Request(api + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
mined = call("/generate", {"n": 101, "address": addr})
tip = call("/tip")
bal = call(f"/address/{addr}/balance")
state = call("/chainstate")
print(f"mined {len(mined['blocks'])} blocks: tip {tip['hash'][:16]}… at height {tip['height']}")
print(f"{addr} holds {bal['confirmed'] / 1e8:.8f} coins in {bal['coins']} coinbase outputs")
print(f"UTXO-set hash {state['utxo_set_hash'][:16]}… over {state['coins']} coins")
call("/shutdown", {})
PY
wait "$node_pid" || { echo "demo: the node did not stop cleanly; its log:" >&2; cat "$work/node.log" >&2; exit 1; }

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
