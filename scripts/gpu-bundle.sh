#!/usr/bin/env bash
# Builds, on a CPU machine, what scripts/gpu-check.sh runs on a GPU machine:
# the phasebench binary and the CUDA test binary, stripped, in gpu-bundle/.
# CUDA is loaded at run time, so nothing here needs CUDA. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
test_binary=$(cargo test --release --locked --test llm_cuda --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "llm_cuda":
        print(m["executable"])')
mkdir -p gpu-bundle
strip -o gpu-bundle/phasebench target/release/phasebench
strip -o gpu-bundle/llm_cuda "$test_binary"
ls -la gpu-bundle
