#!/usr/bin/env bash
# A performance gate for CI: run a scenario, compare it with the stored
# baseline, write the comparison to the job summary, and fail the job on a
# significant regression.
#
#   examples/ci/gate.sh SCENARIO BASELINE_DIR OUT_DIR [phasebench run options…]
#
# SCENARIO      the scenario to run (e.g. scenarios/quickstart.yaml)
# BASELINE_DIR  a run folder (with results.json) from the main branch; when
#               it has none, the gate runs, says there is no baseline yet,
#               and passes: the main branch's job stores this run as one
# OUT_DIR       the run folder to create; the job keeps it as an artifact,
#               and on the main branch it becomes the next baseline
#
# Environment (optional):
#   PHASEBENCH            the phasebench binary (default: phasebench on PATH)
#   REPEAT                passes of every phase (default 5): compare tests the
#                         difference across passes, so more passes find
#                         smaller changes
#   MIN_EFFECT            the smallest change that counts (default 2%)
#   GITHUB_STEP_SUMMARY   set by GitHub Actions: the summary is appended there;
#                         elsewhere it is written to OUT_DIR/summary.md
#
# Exit status: 0 no significant regression (or no baseline), 1 a
# significant regression or a target missed, 2 bad input, 3 an error.
set -uo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 SCENARIO BASELINE_DIR OUT_DIR [phasebench run options…]" >&2
  exit 2
fi
scenario="$1" baseline="$2" out="$3"
shift 3
phasebench="${PHASEBENCH:-phasebench}"
repeat="${REPEAT:-5}"
min_effect="${MIN_EFFECT:-2%}"

"$phasebench" run "$scenario" --out "$out" --repeat "$repeat" --no-history --quiet "$@"
run_status=$?
if [[ $run_status -ge 2 ]]; then
  echo "phasebench run failed (exit $run_status)" >&2
  exit "$run_status"
fi

summary="${GITHUB_STEP_SUMMARY:-$out/summary.md}"
{
  echo "## phasebench: $(basename "$scenario")"
  echo
  if [[ $run_status -eq 1 ]]; then
    echo "**A target was missed or a run was cut short** (phasebench run exited 1): see the report."
    echo
  fi
} >>"$summary"

if [[ ! -f "$baseline/results.json" ]]; then
  echo "No baseline yet ($baseline/results.json): this run is not compared. The main branch's job stores one." >>"$summary"
  "$phasebench" report "$out" --format md >>"$summary" || true
  exit "$run_status"
fi

compare_out="$(mktemp)"
"$phasebench" compare --min-effect "$min_effect" "$baseline/results.json" -- "$out/results.json" >"$compare_out"
compare_status=$?
if [[ $compare_status -ge 2 ]]; then
  echo "phasebench compare failed (exit $compare_status)" >&2
  rm -f "$compare_out"
  exit "$compare_status"
fi
{
  if [[ $compare_status -eq 1 ]]; then
    echo "**Significant regression** against the baseline ($baseline):"
  else
    echo "No significant regression against the baseline ($baseline)."
  fi
  echo
  echo '```text'
  cat "$compare_out"
  echo '```'
} >>"$summary"
rm -f "$compare_out"
if [[ $compare_status -eq 1 || $run_status -eq 1 ]]; then
  exit 1
fi
exit 0
