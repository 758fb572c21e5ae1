#!/usr/bin/env python3
"""Throughput of each workload under each profiler, relative to the bare runs.

    python3 peers/profiling/table.py RUN_FOLDER

Reads the results.json of a run of peers/profiling/overhead.yaml; run ids are
<engine>-<bare|cpu|memory>-<repeat>. Prints a Markdown table: throughput per
repeat, and the mean relative to the mean of the bare repeats.
"""
import json
import statistics
import sys


def main(folder):
    with open(f"{folder}/results.json") as handle:
        results = json.load(handle)
    table = {}
    for run in results["runs"]:
        engine, profiler, _ = run["id"].rsplit("-", 2)
        table.setdefault(engine, {}).setdefault(profiler, []).append(run["metrics"]["throughput"]["value"])
    print("| workload | profile | throughput per repeat (ops/s) | relative to bare |")
    print("| --- | --- | --- | ---: |")
    for engine, profilers in table.items():
        bare = statistics.mean(profilers["bare"])
        for profiler, values in profilers.items():
            shown = ", ".join(f"{value:,.0f}" for value in values)
            relative = statistics.mean(values) / bare
            low, high = min(values) / bare, max(values) / bare
            print(f"| {engine} | {profiler} | {shown} | {relative:.2f} ({low:.2f}–{high:.2f}) |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
