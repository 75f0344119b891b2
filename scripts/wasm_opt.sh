#!/usr/bin/env bash
# Runs binaryen's wasm-opt over the .wasm cargo just wrote, in place (`make build`).
#   scripts/wasm_opt.sh WASM_OPT WASM [wasm-opt flags...]
# cargo re-links WASM from its deps/ copy on every build, even a no-op one, so the unoptimised
# module comes back each time: keep the last input (WASM.in) and its output (WASM.out) beside it,
# and when cargo's module is that same input again, copy the output back instead of spending
# ~20 s optimising the same bytes.
set -euo pipefail
wasm_opt=$1 wasm=$2
shift 2
if cmp -s "$wasm" "$wasm.in" && [ -s "$wasm.out" ]; then
    cp "$wasm.out" "$wasm.tmp"
elif cmp -s "$wasm" "$wasm.out"; then
    exit 0
else
    echo "wasm-opt $* $wasm"
    cp "$wasm" "$wasm.in.tmp"
    "$wasm_opt" "$@" "$wasm.in.tmp" -o "$wasm.out.tmp"
    mv "$wasm.in.tmp" "$wasm.in"
    mv "$wasm.out.tmp" "$wasm.out"
    cp "$wasm.out" "$wasm.tmp"
fi
# A new file, not a write through cargo's hard link (that would change its deps/ copy too).
mv "$wasm.tmp" "$wasm"
