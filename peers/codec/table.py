#!/usr/bin/env python3
"""Markdown tables from peers/codec/run_peers.sh's folder: per zstd level,
the ratio and the compression and decompression speeds of the zstd command
line (`zstd -b`), python-zstandard (when it ran) and phasebench; medians over
rounds with min–max, and phasebench's speed over each peer's."""

import json
import pathlib
import re
import statistics
import sys


def cli_rows(path):
    rows = {}
    pattern = re.compile(r"round=(\d+) level=(\d+) .*\(x([\d.]+)\),\s*([\d.]+) MB/s,\s*([\d.]+) MB/s")
    for line in path.read_text().splitlines() if path.exists() else []:
        match = pattern.search(line)
        if match:
            _, level, ratio, c, d = match.groups()
            rows.setdefault(int(level), []).append((float(ratio), float(c), float(d)))
    return rows


def python_rows(path):
    rows = {}
    pattern = re.compile(r"level=(\d+) ratio=([\d.]+) compress=([\d.]+) decompress=([\d.]+)")
    for line in path.read_text().splitlines() if path.exists() else []:
        match = pattern.search(line)
        if match:
            level, ratio, c, d = match.groups()
            rows.setdefault(int(level), []).append((float(ratio), float(c), float(d)))
    return rows


def phasebench_rows(folder):
    rows = {}
    for results in sorted(folder.glob("phasebench-*/results.json")):
        runs = {run["id"]: run for run in json.loads(results.read_text())["runs"]}
        for run_id, run in runs.items():
            if run_id.startswith("c-"):
                level = int(run_id[2:])
                compress, decompress = run["metrics"], runs[f"d-{level}"]["metrics"]
                rows.setdefault(level, []).append(
                    (compress["ratio"]["value"], compress["speed"]["value"] / 1e6, decompress["speed"]["value"] / 1e6))
    return rows


def cell(rows, index, digits):
    values = [row[index] for row in rows]
    if digits == 0 and min(values) < 100:
        digits = 1
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main(folder):
    folder = pathlib.Path(folder)
    peers = [("zstd -b", cli_rows(folder / "zstd-cli.txt")),
             ("python-zstandard", python_rows(folder / "python-zstandard.txt"))]
    peers = [(name, rows) for name, rows in peers if rows]
    ours = phasebench_rows(folder)
    for title, index in (("compression", 1), ("decompression", 2)):
        names = [name for name, _ in peers]
        print(f"\n{title} (MB/s of uncompressed data)\n")
        print("| level | ratio phasebench | " + " | ".join(f"ratio {n}" for n in names) + " | phasebench | "
              + " | ".join(names) + " | " + " | ".join(f"phasebench / {n}" for n in names) + " |")
        print("| ---: " * (3 + 3 * len(names)) + "|")
        for level in sorted(ours):
            mine = ours[level]
            theirs = [rows.get(level) for _, rows in peers]
            median = statistics.median(row[index] for row in mine)
            ratios = [f"{median / statistics.median(r[index] for r in rows):.2f}" if rows else "–" for rows in theirs]
            print(f"| {level} | {cell(mine, 0, 3)} | "
                  + " | ".join(cell(rows, 0, 3) if rows else "–" for rows in theirs)
                  + f" | {cell(mine, index, 0)} | "
                  + " | ".join(cell(rows, index, 0) if rows else "–" for rows in theirs)
                  + " | " + " | ".join(ratios) + " |")
    rounds = max((len(rows) for rows in ours.values()), default=0)
    print(f"\nMedians of {rounds} interleaved rounds (min–max in brackets); one thread each, 64 KiB blocks.")


if __name__ == "__main__":
    main(sys.argv[1])
