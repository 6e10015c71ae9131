#!/usr/bin/env bash
# Time from starting the terminal wallet to its first frame on screen, under tmux, against a
# local regtest node; against the same measure for `true` (tmux's own start and polling).
# Prints a table of medians over N runs. Uses the binaries of `cargo build --workspace --bins`.
#
#   scripts/bench-tui-startup.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10}"
bin="${CARGO_TARGET_DIR:-target}/debug"
tmp="$(mktemp -d)"
sock="camel-bench-$$"
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; [ -n "${node:-}" ] && kill "$node" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin/camel-node" --regtest --no-p2p --api-port 0 --data-dir "$tmp/node" >/dev/null 2>&1 &
node=$!
for _ in $(seq 100); do [ -f "$tmp/node/api.addr" ] && break; sleep 0.05; done
url="http://$(cat "$tmp/node/api.addr")"
export CAMEL_WALLET_PASSPHRASE=bench
"$bin/camel-wallet" --wallet-dir "$tmp/w" --node "$url" --json init --network regtest >/dev/null 2>&1

# Milliseconds from new-session to `$2` appearing in the pane of command `$1`.
measure() {
  local start end
  start=$(date +%s%N)
  tmux -L "$sock" new-session -d -s b -x 100 -y 30 "$1"
  until tmux -L "$sock" capture-pane -p -t b 2>/dev/null | grep -q "$2"; do :; done
  end=$(date +%s%N)
  tmux -L "$sock" kill-session -t b 2>/dev/null || true
  echo $(( (end - start) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

base=$(for _ in $(seq "$n"); do measure "echo READY; sleep 5" READY; done | median)
tui=$(for _ in $(seq "$n"); do measure "$bin/camel-wallet --wallet-dir $tmp/w --node $url" "CamelidCoin wallet"; done | median)
echo "| to first frame (median of $n) | ms |"
echo "|---|---|"
echo "| tmux baseline (echo) | $base |"
echo "| camel-wallet tui | $tui |"
echo "| difference | $((tui - base)) |"
