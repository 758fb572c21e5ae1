# Sourced by the peer scripts that compare phasebench with llama.cpp on GGUF
# files (quant_decode.sh, prefill_flash.sh) after they set HERE: the shared
# settings and the release build.
#
# $1: the script's name, for its log lines and its results folder
# (RESULTS_DIR, default $HERE/results/$1-<utc time>). Sets ROOT, PY
# (BENCH_VENV's python), GGUF_DIR (exported, default /tmp/phasebench-gguf),
# REPS (default 5), OUT (the run's JSON lines, emptied), BIN (phasebench,
# built in release), WORK (a scratch folder, removed on exit) and `log`.
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${BENCH_VENV:-/work/bench-venv}/bin/python"
export GGUF_DIR="${GGUF_DIR:-/tmp/phasebench-gguf}"
REPS="${REPS:-5}"
BENCH_NAME="$1"
RESULTS_DIR="${RESULTS_DIR:-$HERE/results/$BENCH_NAME-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$RESULTS_DIR" "$GGUF_DIR"
OUT="$RESULTS_DIR/lines.jsonl"
: >"$OUT"
log() { echo "[$BENCH_NAME] $*" >&2; }

CARGO_TARGET_DIR="$ROOT/target" cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" >&2
BIN="$ROOT/target/release/phasebench"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
