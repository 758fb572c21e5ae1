#!/usr/bin/env python3
"""Turn the results.json of peers/llm/phasebench-peer.yaml into peer JSON lines.

Usage: phasebench_lines.py RESULTS_JSON PRESET DTYPE

Prints prefill lines (tokens, median/min/max ms) for `phasebench` (naive
attention, f32) and `phasebench-flash`, and a decode line for `phasebench`
(f32) or `phasebench-bf16`. Medians are the p50 of phasebench's histograms,
min and max their extremes: the same statistics the other peers print.
"""

import json
import sys


def main():
    path, preset, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = json.load(open(path))["runs"]
    suffix = "" if dtype == "f32" else f"-{dtype}"
    for run in runs:
        metrics = run["metrics"]
        if run["workload"].startswith("prefill-"):
            attention = run["workload"].removeprefix("prefill-")
            ttft = metrics["ttft"]["summary"]
            label = "phasebench" + suffix + ("" if attention == "naive" else "-flash")
            print(json.dumps({
                "bench": "phasebench", "label": label, "preset": preset, "metric": "prefill",
                "tokens": int(run["matrix"]["n"]), "reps": ttft["count"], "attention": attention,
                "median_ms": ttft["p50"] * 1e3, "min_ms": ttft["min"] * 1e3, "max_ms": ttft["max"] * 1e3,
            }))
        elif run["workload"] == "decode":
            rate = metrics["decode_rate"]["summary"]
            print(json.dumps({
                "bench": "phasebench", "label": "phasebench" + suffix, "preset": preset, "metric": "decode",
                "reps": rate["count"], "median_tok_s": rate["p50"], "min_tok_s": rate["min"],
                "max_tok_s": rate["max"],
            }))


if __name__ == "__main__":
    main()
