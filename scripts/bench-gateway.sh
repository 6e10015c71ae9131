#!/usr/bin/env bash
# Completions through `camel-wallet serve` (each one a paid job, verified by two peers) against
# bare generation of the same prompts by `camel-worker complete`, on a local regtest network
# of 3 workers (one block every 500 ms). Prints a table. Uses the binaries of
# `cargo build --workspace --bins` and the bundled model in $CAMEL_MODEL_DIR.
#
#   scripts/bench-gateway.sh [N] [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5}"
tokens="${2:-64}"
bin="${CARGO_TARGET_DIR:-target}/debug"
model="${CAMEL_MODEL_DIR:-models}/SmolLM2-135M-Instruct.Q4_1.gguf"
tmp="$(mktemp -d)"
cleanup() {
  [ -n "${gw:-}" ] && kill "$gw" 2>/dev/null
  "$bin/camel-testnet" down --dir "$tmp/net" >/dev/null 2>&1 || true
  [ -n "${up:-}" ] && kill "$up" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin/camel-testnet" --model "$model" up --dir "$tmp/net" --workers 3 --block-ms 500 >"$tmp/up.log" 2>&1 &
up=$!
for _ in $(seq 600); do [ -f "$tmp/net/testnet.json" ] && break; sleep 0.1; done
api=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['nodes'][0]['api'])" "$tmp/net/testnet.json")
export CAMEL_WALLET_PASSPHRASE=bench CAMEL_GATEWAY_KEY=bench-key
addr=$("$bin/camel-wallet" --wallet-dir "$tmp/w" --node "$api" --json init --network regtest 2>/dev/null \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['address'])")
"$bin/camel-testnet" mine --dir "$tmp/net" --to "$addr" -n 3 >/dev/null
"$bin/camel-testnet" mine --dir "$tmp/net" --to mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r -n 100 >/dev/null
"$bin/camel-wallet" --wallet-dir "$tmp/w" --node "$api" --json serve --listen 127.0.0.1:0 >"$tmp/gw.json" 2>/dev/null &
gw=$!
for _ in $(seq 100); do [ -s "$tmp/gw.json" ] && break; sleep 0.1; done
base=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['listening'])" "$tmp/gw.json")
model_id=""
for _ in $(seq 100); do
  model_id=$(curl -s -H "Authorization: Bearer bench-key" "$base/models" \
    | python3 -c "import json,sys; d=json.load(sys.stdin)['data']; print(d[0]['id'] if d else '')")
  [ -n "$model_id" ] && break; sleep 0.3
done
ms() { echo $(( ($2 - $1) / 1000000 )); }
gw_ms=()
gw_tok=0
for i in $(seq "$n"); do
  t0=$(date +%s%N)
  out=$(curl -s -H "Authorization: Bearer bench-key" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$model_id\",\"prompt\":\"Note $i about camels:\",\"max_tokens\":$tokens,\"temperature\":0}" \
    "$base/completions")
  t1=$(date +%s%N)
  gw_ms+=("$(ms "$t0" "$t1")")
  gw_tok=$(( gw_tok + $(echo "$out" | python3 -c "import json,sys; print(json.load(sys.stdin)['usage']['completion_tokens'])") ))
done
bare_ms=0
bare_tok=0
for i in $(seq "$n"); do
  j=$("$bin/camel-worker" complete --model "$model" --threads 1 --json --max-tokens "$tokens" --prompt "Note $i about camels:" 2>/dev/null)
  bare_ms=$(python3 -c "import json,sys; print($bare_ms + json.loads(sys.argv[1])['total_ms'])" "$j")
  bare_tok=$(( bare_tok + $(echo "$j" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['ids']))") ))
done
gw_total=0; for m in "${gw_ms[@]}"; do gw_total=$(( gw_total + m )); done
sorted=$(printf '%s\n' "${gw_ms[@]}" | sort -n | tr '\n' ' ')
python3 - "$n" "$gw_total" "$gw_tok" "$bare_ms" "$bare_tok" "$sorted" <<'PY'
import sys
n, gw, gtok, bare, btok, sorted_ms = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
print(f"{n} requests, one at a time (ms each: {sorted_ms.strip()})\n")
print("| path | first token ms (mean) | tokens/s |")
print("|---|---|---|")
print(f"| gateway (paid job, 2 verifiers) | {gw/n:.0f} | {gtok/(gw/1000):.1f} |")
print(f"| bare camel-worker complete | {bare/n:.0f} | {btok/(bare/1000):.1f} |")
print(f"\nthroughput ratio {(gtok/(gw/1000))/(btok/(bare/1000)):.3f}; first-token overhead {(gw-bare)/n:.0f} ms per request")
PY
