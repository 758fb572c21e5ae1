#!/usr/bin/env python3
"""The tables of a peers/serving/run.sh output folder, as Markdown on stdout
and as tables.json beside it (what tests/serving_peers.rs checks).

Usage: tables.py OUT_DIR
"""

import glob
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def throughput(out):
    rows = []
    for folder in sorted(glob.glob(os.path.join(out, "throughput-*"))):
        preset = folder.rsplit("-", 1)[1]
        results = load(os.path.join(folder, "results.json"))
        for run in results["runs"]:
            seconds = run["elapsed_ns"] / 1e9
            counters = run.get("counters", {})
            tokens = counters.get("output_tokens", 0)
            rows.append({
                "preset": preset,
                "server": run["workload"],
                "streams": int(run["matrix"]["streams"]),
                "requests": run["operations"],
                "errors": run["errors"],
                "output_tokens": tokens,
                "seconds": seconds,
                "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
                "counted_by": "server" if counters.get("usage_reported") else "client",
            })
    for row in rows:
        single = [r for r in rows if (r["preset"], r["server"], r["streams"]) == (row["preset"], row["server"], 1)]
        row["vs_one_stream"] = row["tokens_per_second"] / single[0]["tokens_per_second"] if single and single[0][
            "tokens_per_second"] else None
    return rows


TOLERANCE = {"ttft_ms": 0.10, "itl_ms": 0.05, "tpot_ms": 0.05}


def side_by_side(out):
    reps = []
    for folder in sorted(glob.glob(os.path.join(out, "aiperf-*"))):
        rep = folder.rsplit("-", 1)[1]
        aiperf = load(os.path.join(folder, "profile_export_aiperf.json"))
        ours = load(os.path.join(out, f"phasebench-{rep}", "results.json"))["runs"][0]
        p50 = lambda name: ours["metrics"][name]["summary"]["p50"] * 1e3
        reps.append({
            "rep": int(rep),
            "aiperf": {
                "requests": aiperf["request_count"]["avg"],
                "ttft_ms": aiperf["time_to_first_token"]["p50"],
                "itl_ms": aiperf["inter_chunk_latency"]["p50"],
                "tpot_ms": aiperf["inter_token_latency"]["p50"],
            },
            "phasebench": {
                "requests": ours["operations"],
                "ttft_ms": p50("ttft"),
                "itl_ms": p50("itl"),
                "tpot_ms": p50("tpot"),
            },
        })
    summary = {}
    for figure in ["ttft_ms", "itl_ms", "tpot_ms"]:
        a = [r["aiperf"][figure] for r in reps]
        b = [r["phasebench"][figure] for r in reps]
        if not a:
            continue
        # How far either client's own medians spread between repetitions of
        # the same load: the noise of the machine and the server.
        spread = max(max(a) - min(a), max(b) - min(b))
        difference = statistics.median(b) - statistics.median(a)
        # The stated tolerance (docs/performance.md says why): the gaps
        # between tokens are timed by both clients the same way, so 5%; the
        # first token also carries each client's own cost of building and
        # sending a request, which for a Python client sharing one core with
        # its helper processes is milliseconds, so 10%.
        tolerance = TOLERANCE[figure] * statistics.median(a)
        summary[figure] = {
            "aiperf": statistics.median(a),
            "phasebench": statistics.median(b),
            "difference": difference,
            "relative": difference / statistics.median(a),
            "spread": spread,
            "tolerance": tolerance,
            "agree": abs(difference) <= tolerance,
        }
    return reps, summary


def main():
    out = sys.argv[1]
    rows = throughput(out)
    reps, summary = side_by_side(out)
    with open(os.path.join(out, "tables.json"), "w") as f:
        json.dump({"throughput": rows, "side_by_side": reps, "agreement": summary}, f, indent=1)
    if rows:
        print("| preset | streams | server | requests | errors | output tokens | tok/s | × one stream |")
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
        for r in sorted(rows, key=lambda r: (r["preset"] != "small", r["server"], r["streams"])):
            ratio = f"{r['vs_one_stream']:.2f}×" if r["vs_one_stream"] else "-"
            print(f"| {r['preset']} | {r['streams']} | {r['server']} | {r['requests']} | {r['errors']} | "
                  f"{r['output_tokens']} ({r['counted_by']}) | {r['tokens_per_second']:.1f} | {ratio} |")
        print()
    if reps:
        print("| repetition | client | requests | ttft p50 | itl p50 (every chunk gap) | tpot p50 (per request) |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for r in reps:
            for client in ["aiperf", "phasebench"]:
                c = r[client]
                print(f"| {r['rep']} | {client} | {c['requests']:.0f} | {c['ttft_ms']:.2f} ms | {c['itl_ms']:.3f} ms | "
                      f"{c['tpot_ms']:.3f} ms |")
        print()
        print("| figure | AIPerf (median of repetitions) | phasebench | difference | spread of repetitions | "
              "tolerance | agree |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for figure, s in summary.items():
            print(f"| {figure[:-3]} p50 | {s['aiperf']:.3f} ms | {s['phasebench']:.3f} ms | {s['difference']:+.3f} ms "
                  f"({s['relative']:+.1%}) | {s['spread']:.3f} ms | {TOLERANCE[figure]:.0%} ({s['tolerance']:.3f} ms) | "
                  f"{'yes' if s['agree'] else 'NO'} |")


if __name__ == "__main__":
    main()
