#!/usr/bin/env python3
"""Markdown table of peers/agents/queues.yaml's results: throughput and
latency p99 (with p50) per queue and agent count."""

import json
import sys


def main(path):
    runs = {r["id"]: r for r in json.load(open(path))["runs"]}
    print("| agents | queue | throughput (tasks/s) | latency p50 | latency p99 | lock wait p99 | lock share |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for workers in (1, 2, 4, 8):
        for queue in ("mutex", "lockfree", "async"):
            run = runs[f"{queue}-{workers}"]
            latency = run["metrics"]["latency"]["summary"]
            seconds = run["elapsed_ns"] / 1e9
            lock = run["metrics"].get("lock_wait", {}).get("summary") or {}
            lock_p99 = f"{lock['p99'] * 1e9:.0f} ns" if lock.get("count") else "–"
            share = run["metrics"].get("lock_share", {}).get("value")
            share = f"{share:.1e}" if share else "0"
            print(f"| {workers} | {queue} | {run['operations'] / seconds:,.0f} | {latency['p50'] * 1e6:.1f} µs "
                  f"| {latency['p99'] * 1e6:.1f} µs | {lock_p99} | {share} |")


if __name__ == "__main__":
    main(sys.argv[1])
