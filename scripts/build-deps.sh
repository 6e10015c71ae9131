#!/usr/bin/env bash
# Installs the system packages llama.cpp's build needs (cmake, clang, libclang for bindgen),
# and tmux, which the terminal wallet's test drives, when they are missing: with apt, as root or through a sudo that needs no password; otherwise
# it stops at once with the exact command to run.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 \
  || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
  || ls /usr/lib/aarch64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
  || [ -n "${LIBCLANG_PATH:-}" ] \
  || need+=(libclang-dev)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "build-deps: install ${need[*]} (llama.cpp needs cmake and libclang; the tests need tmux), then run this again" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  # Only a sudo that needs no password: a script must not stop at a hidden prompt.
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    echo "build-deps: the build and the tests need ${need[*]}; install them with" >&2
    echo "  sudo apt-get install -y ${need[*]}" >&2
    echo "then run this again" >&2
    exit 1
  fi
fi
echo "build-deps: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
