#!/usr/bin/env bash
# Screenshot of a run's report.html in headless Chromium (Debian's `chromium`
# package), to check that the charts render in a real browser.
#
#   scripts/report-screenshot.sh RUN_FOLDER OUT.png [WIDTH HEIGHT]
#
# The report is rendered again from RUN_FOLDER/results.json with the
# phasebench on PATH (or target/release/phasebench), so the screenshot shows
# the current templates.
set -euo pipefail
run="${1:?usage: report-screenshot.sh RUN_FOLDER OUT.png [WIDTH HEIGHT]}"
out="${2:?usage: report-screenshot.sh RUN_FOLDER OUT.png [WIDTH HEIGHT]}"
width="${3:-1200}"
height="${4:-3000}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
phasebench="$(command -v phasebench || echo "$repo/target/release/phasebench")"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "needs Chromium: apt install chromium" >&2; exit 2; }
page="$(mktemp -d)/report.html"
"$phasebench" report "$run" --format html >"$page"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" \
  --window-size="$width,$height" --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
echo "wrote $out from $page"
