#!/usr/bin/env python3
"""Merge vault benchmark JSON lines into markdown tables.

usage: make_table.py [FILE ...]      (no FILE, or '-': read stdin)

Each input line that parses as a JSON object with at least "bench",
"workload", "durability" and "throughput_ops_s" is one run; other lines are
ignored (with a note on stderr). Repeated runs of the same row are merged by
taking the median of each number.

YCSB table (workloads A, B, C): rows are (workload, durability, store).
After each (workload, durability) group comes a ratio line: every other
store's throughput divided by redb's.

Writers table (workload W, durable writes from N threads; lines also need
"writers"): rows are (store, writers), the store being the line's "label"
if it has one (phasebench's vault carries "phasebench vault always" or
"phasebench vault group", one per sync policy), else its "bench". The last
column is the row's throughput divided by the same store's 1-writer
throughput.
"""
import json
import statistics
import sys

WORKLOAD_ORDER = {"A": 0, "B": 1, "C": 2}
DURABILITY_ORDER = {"none": 0, "durable": 1}
STORE_ORDER = {"redb": 0, "sled": 1}
BASELINE = "redb"
WRITERS_WORKLOAD = "W"
WRITER_FIELDS = ["throughput_ops_s", "update_p50_us", "update_p99_us"]

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
    writer_runs = [r for r in runs if str(r["workload"]).upper() == WRITERS_WORKLOAD]
    ycsb_runs = [r for r in runs if str(r["workload"]).upper() != WRITERS_WORKLOAD]

    out = []
    params = sorted({(r.get("keys"), r.get("value_size")) for r in runs}, key=str)
    for keys, vs in params:
        out.append(f"keys: {keys}, value size: {vs} B")
    if len(params) > 1:
        out.append("**warning: runs with different keys/value size are mixed below**")
    if ycsb_runs:
        out.append("")
        out.extend(ycsb_table(ycsb_runs))
    if writer_runs:
        out.append("")
        out.extend(writers_table(writer_runs))
    print("\n".join(out))
    return 0


def ycsb_table(runs):
    """The YCSB A/B/C table and its ratio lines, as markdown lines."""
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

    out = []
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
    return out


def store_label(r):
    """A W line's row name: its label (a store with its setting), else its bench."""
    label = r.get("label")
    return str(label) if label else str(r["bench"])


def writers_table(runs):
    """The workload W table (store x writers), as markdown lines."""
    groups = {}
    for r in runs:
        w = r.get("writers")
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            print(f"make_table: a W line of {store_label(r)} has no valid \"writers\"; skipped", file=sys.stderr)
            continue
        groups.setdefault((store_label(r), w), []).append(r)
    if not groups:
        return []

    def sort_key(k):
        label, w = k
        bench = groups[k][0]["bench"]
        return (STORE_ORDER.get(bench, 9), label, w)

    rows = {}
    for key in sorted(groups, key=sort_key):
        rs = groups[key]
        rows[key] = {f: median_or_none([r.get(f) for r in rs]) for f in WRITER_FIELDS}
        rows[key]["_n"] = len(rs)
        rows[key]["_ops"] = median_or_none([r.get("ops") for r in rs])

    out = ["Durable writes from concurrent writer threads (workload W, uniform keys, every write synced before it returns):", ""]
    header = ["store", "writers", "ops", "throughput ops/s", "update p50 µs", "update p99 µs", "throughput / 1 writer"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for (label, w), row in rows.items():
        store = label + (f" (median of {row['_n']})" if row["_n"] > 1 else "")
        ops = "–" if row["_ops"] is None else f"{row['_ops']:,.0f}"
        t = row["throughput_ops_s"]
        one = rows.get((label, 1), {}).get("throughput_ops_s")
        ratio = f"{t / one:.2f}×" if t is not None and one else "–"
        cells = [store, str(w), ops, fmt_tput(t), fmt_us(row["update_p50_us"]), fmt_us(row["update_p99_us"]), ratio]
        out.append("| " + " | ".join(cells) + " |")
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv))
