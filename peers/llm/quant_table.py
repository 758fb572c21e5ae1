#!/usr/bin/env python3
"""The table of quant_decode.sh from its JSON lines: decode tok/s of both
programs (median, range), their ratio, and each one's fraction of the memory
roofline (membw's best all-threads GB/s before the runs ÷ bytes per token)."""

import json
import sys


def main():
    lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    membw = next(d for d in lines if d["bench"] == "membw" and d.get("when") == "before")
    after = next((d for d in lines if d["bench"] == "membw" and d.get("when") == "after"), None)
    gbs = membw["all_threads_best_gbs"]
    rows = {}
    for d in lines:
        if "preset" in d and "type" in d:
            rows.setdefault((d["preset"], d["type"]), {})[d["bench"] if d["bench"] != "llama.cpp" else "llama"] = d
    print(f"Bandwidth (membw, all threads, best): {gbs:.1f} GB/s before"
          + (f", {after['all_threads_best_gbs']:.1f} GB/s after" if after else "") + ".\n")
    print("| shape | type | MB/token | phasebench tok/s | llama.cpp tok/s | ratio | roofline tok/s | phasebench % | llama.cpp % |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (preset, kind), row in rows.items():
        if not all(k in row for k in ("model", "phasebench", "llama")):
            continue
        mb = row["model"]["bytes_per_token"] / 1e6
        roof = gbs * 1e3 / mb
        pb, lc = row["phasebench"], row["llama"]
        cell = lambda d: f"{d['median_tok_s']:.1f} ({d['min_tok_s']:.1f}–{d['max_tok_s']:.1f})"
        print(f"| {preset} | {kind} | {mb:.1f} | {cell(pb)} | {cell(lc)} | {pb['median_tok_s'] / lc['median_tok_s']:.2f} "
              f"| {roof:.1f} | {100 * pb['median_tok_s'] / roof:.0f}% | {100 * lc['median_tok_s'] / roof:.0f}% |")


if __name__ == "__main__":
    main()
