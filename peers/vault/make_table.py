#!/usr/bin/env python3
"""Merge vault benchmark JSON lines into a markdown table.

usage: make_table.py [FILE ...]      (no FILE, or '-': read stdin)

Each input line that parses as a JSON object with at least "bench",
"workload", "durability" and "throughput_ops_s" is one run; other lines are
ignored (with a note on stderr). Rows are (workload, durability, store);
repeated runs of the same row are merged by taking the median of each
number. After each (workload, durability) group comes a ratio line: every
other store's throughput divided by redb's.
"""
import json
import statistics
import sys

WORKLOAD_ORDER = {"A": 0, "B": 1, "C": 2}
DURABILITY_ORDER = {"none": 0, "durable": 1}
STORE_ORDER = {"redb": 0, "sled": 1}
BASELINE = "redb"

COLUMNS = [
    ("throughput ops/s", "throughput_ops_s"),
    ("read p50 µs", "read_p50_us"),
    ("read p99 µs", "read_p99_us"),
    ("update p50 µs", "update_p50_us"),
    ("update p99 µs", "update_p99_us"),
]


def read_runs(paths):
    runs = []
    streams = paths or ["-"]
    for p in streams:
        f = sys.stdin if p == "-" else open(p, encoding="utf-8")
        with f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    print(f"make_table: {p}:{n}: not JSON ({e})", file=sys.stderr)
                    continue
                if not all(k in r for k in ("bench", "workload", "durability", "throughput_ops_s")):
                    print(f"make_table: {p}:{n}: missing required fields", file=sys.stderr)
                    continue
                runs.append(r)
    return runs


def median_or_none(vals):
    vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def fmt_tput(v):
    return "–" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main(argv):
    runs = read_runs(argv[1:])
    if not runs:
        print("make_table: no runs found", file=sys.stderr)
        return 1

    groups = {}
    for r in runs:
        key = (str(r["workload"]).upper(), str(r["durability"]).lower(), str(r["bench"]))
        groups.setdefault(key, []).append(r)

    def sort_key(k):
        w, d, s = k
        return (WORKLOAD_ORDER.get(w, 9), w, DURABILITY_ORDER.get(d, 9), d, STORE_ORDER.get(s, 9), s)

    rows = {}
    for key in sorted(groups, key=sort_key):
        rs = groups[key]
        rows[key] = {field: median_or_none([r.get(field) for r in rs]) for _, field in COLUMNS}
        rows[key]["_n"] = len(rs)
        rows[key]["_ops"] = median_or_none([r.get("ops") for r in rs])

    params = sorted({(r.get("keys"), r.get("value_size")) for r in runs}, key=str)
    out = []
    for keys, vs in params:
        out.append(f"keys: {keys}, value size: {vs} B")
    if len(params) > 1:
        out.append("**warning: runs with different keys/value size are mixed below**")
    out.append("")

    header = ["workload", "durability", "store", "ops"] + [c for c, _ in COLUMNS]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")

    ratio_lines = []
    wd_seen = []
    for (w, d, s) in rows:
        if (w, d) not in wd_seen:
            wd_seen.append((w, d))
    for (w, d) in wd_seen:
        keys = [k for k in rows if k[0] == w and k[1] == d]
        for k in keys:
            row = rows[k]
            store = k[2] + (f" (median of {row['_n']})" if row["_n"] > 1 else "")
            ops = "–" if row["_ops"] is None else f"{row['_ops']:,.0f}"
            cells = [w, d, store, ops, fmt_tput(row["throughput_ops_s"])]
            cells += [fmt_us(row[f]) for _, f in COLUMNS[1:]]
            out.append("| " + " | ".join(cells) + " |")
        base = rows.get((w, d, BASELINE), {}).get("throughput_ops_s")
        others = [k for k in keys if k[2] != BASELINE]
        if base and others:
            parts = []
            for k in others:
                t = rows[k]["throughput_ops_s"]
                parts.append(f"{k[2]}/{BASELINE} = {t / base:.2f}×" if t is not None else f"{k[2]}/{BASELINE} = –")
            ratio_lines.append(f"- {w} ({d}): " + ", ".join(parts))
        elif others:
            ratio_lines.append(f"- {w} ({d}): no {BASELINE} run to compare with")

    if ratio_lines:
        out.append("")
        out.append(f"Throughput relative to {BASELINE}:")
        out.append("")
        out.extend(ratio_lines)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
