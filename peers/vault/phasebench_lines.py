#!/usr/bin/env python3
"""Turn a phasebench results.json from phasebench-peer.yaml or
phasebench-writers.yaml into the JSON lines of run_peers.sh (one per run).

usage: phasebench_lines.py RESULTS_JSON KEYS VALUE_SIZE

Runs named `<workload>-<durability>` (A-none, A-durable, ...) become YCSB
lines; runs named `W-<sync>` (W-always, W-group) become workload W lines
with `writers` (the run's closed-loop concurrency) and a `label` that names
the sync policy ("phasebench vault always"), so make_table.py keeps the
policies apart. Used by peers.d/phasebench.
"""
import json
import sys


def us(metrics, name, stat):
    summary = metrics.get(name, {}).get("summary")
    return round(summary[stat] * 1e6, 2) if summary and summary["count"] else None


def scalar(metrics, name):
    return metrics.get(name, {}).get("value")


def warmup_count(text):
    """`2000x` -> 2000; a duration or `none` -> None."""
    text = str(text or "")
    if text == "none":
        return 0
    return int(text[:-1]) if text.endswith("x") and text[:-1].isdigit() else None


def ycsb_line(run, keys, value_size):
    workload, durability = run["workload"].split("-")
    metrics = run["metrics"]
    return {
        "bench": "phasebench", "workload": workload, "durability": durability,
        "keys": keys, "value_size": value_size, "ops": run["operations"],
        "elapsed_s": run["elapsed_ns"] / 1e9, "throughput_ops_s": metrics["throughput"]["value"],
        "read_p50_us": us(metrics, "read_latency", "p50"), "read_p99_us": us(metrics, "read_latency", "p99"),
        "read_p999_us": us(metrics, "read_latency", "p999"),
        "update_p50_us": us(metrics, "update_latency", "p50"), "update_p99_us": us(metrics, "update_latency", "p99"),
        "cache_hit_rate": scalar(metrics, "cache_hit_rate"),
    }


def writers_line(run, keys, value_size):
    sync = run["workload"].split("-", 1)[1]
    metrics = run["metrics"]
    load = run.get("load") or {}
    options = (run.get("engine") or {}).get("options") or {}
    return {
        "bench": "phasebench", "label": f"phasebench vault {sync}", "sync": options.get("sync", sync),
        "workload": "W", "durability": "durable", "writers": load.get("concurrency"),
        "keys": keys, "value_size": value_size, "ops": run["operations"],
        "elapsed_s": run["elapsed_ns"] / 1e9, "throughput_ops_s": metrics["throughput"]["value"],
        # op `write` records every call in the harness's `latency` only.
        "update_p50_us": us(metrics, "latency", "p50"), "update_p99_us": us(metrics, "latency", "p99"),
        "update_p999_us": us(metrics, "latency", "p999"), "update_max_us": us(metrics, "latency", "max"),
        "updates": run["operations"], "errors": run.get("errors"),
        "warmup_ops": warmup_count(run.get("warmup")),
        "syncs": scalar(metrics, "syncs"), "bytes_written": scalar(metrics, "bytes_written"),
    }


def main(argv):
    results, keys, value_size = argv[1], int(argv[2]), int(argv[3])
    with open(results, encoding="utf-8") as f:
        runs = json.load(f)["runs"]
    for run in runs:
        name = run["workload"]
        if not run.get("complete", True) or run.get("errors"):
            print(f"phasebench_lines: run {run.get('id', name)}: complete={run.get('complete')} "
                  f"errors={run.get('errors')} {run.get('failure') or ''}", file=sys.stderr)
        line = writers_line(run, keys, value_size) if name.startswith("W-") else ycsb_line(run, keys, value_size)
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
