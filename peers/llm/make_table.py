#!/usr/bin/env python3
"""Combine the JSON lines of membw, the peers (and any extra peer) into one
markdown table.

Usage: make_table.py [--L 160.5] FILE...   (every file holds JSON lines)

Rows are keyed by (preset, peer); the peer name is the line's "label" if it
has one, else its "bench". A peer contributes with lines like
  {"bench":"phasebench","preset":"small","metric":"prefill","tokens":128,"median_ms":12.3,...}
  {"bench":"phasebench","preset":"small","metric":"decode","median_tok_s":200.0,
   "min_tok_s":190.0,"max_tok_s":205.0,...}
Lines of other shapes are ignored. The roofline uses the best all-threads
bandwidth over every membw line found (an upper bound: the VM's bandwidth
is noisy), at context L (default: mean context of a 64-token decode after a
128-token prompt).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bytes_per_token import bytes_per_token  # noqa: E402
from presets import PRESETS  # noqa: E402


def fmt(x, nd=1):
    return "—" if x is None else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--L", type=float, default=160.5)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    membw = []
    rows = {}  # (preset, peer) -> dict
    peak_rss = {}  # (preset, attention) -> MiB
    order = []
    for path in args.files:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    j = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if j.get("bench") == "membw":
                    membw.append(j)
                    continue
                preset, metric = j.get("preset"), j.get("metric")
                if metric == "peak_rss" and preset in PRESETS:
                    peak_rss[(preset, j.get("attention"))] = j["peak_rss_mib"]
                    continue
                if preset not in PRESETS or metric not in ("prefill", "decode"):
                    continue
                key = (preset, j.get("label") or j.get("bench", "?"))
                if key not in rows:
                    rows[key] = {}
                    order.append(key)
                r = rows[key]
                if metric == "prefill":
                    r[f"prefill_{j['tokens']}"] = j["median_ms"]
                    r[f"prefill_{j['tokens']}_range"] = (j.get("min_ms"), j.get("max_ms"))
                else:
                    r["decode"] = j["median_tok_s"]
                    r["decode_range"] = (j.get("min_tok_s"), j.get("max_tok_s"))

    gbs = max((m["all_threads_best_gbs"] for m in membw), default=None)
    gbs_med = None
    if membw:
        meds = sorted(m["all_threads_median_gbs"] for m in membw)
        gbs_med = meds[len(meds) // 2]

    out = []
    if membw:
        st = max(m["single_thread_best_gbs"] for m in membw)
        out.append(f"Memory read bandwidth (membw, {len(membw)} run(s)): all threads best "
                   f"{gbs:.1f} GB/s (median of run medians {gbs_med:.1f} GB/s), "
                   f"1 thread best {st:.1f} GB/s. Roofline at L = {args.L:g} "
                   f"uses the best all-threads figure.")
        out.append("")
    out.append("| preset | peer | prefill 128 (ms) | prefill 2048 (ms) | decode tok/s (min–max) | % of roofline |")
    out.append("|---|---|---:|---:|---:|---:|")
    for preset in [p for p in ("small", "base") if any(k[0] == p for k in order)]:
        b = bytes_per_token(PRESETS[preset], args.L)["total_bytes"]
        roof = gbs * 1e9 / b if gbs else None
        out.append(f"| {preset} | roofline ({b / 1e6:.1f} MB/token) | | | "
                   f"{fmt(roof)} | 100 |")
        # bf16 weights with an f32 KV cache read half the weight bytes: their own roofline.
        half = bytes_per_token(PRESETS[preset], args.L, 2)
        b16 = half["weights_bytes"] + half["head_bytes"] + bytes_per_token(PRESETS[preset], args.L)["kv_bytes"]
        roof16 = gbs * 1e9 / b16 if gbs else None
        has_bf16 = any(k[0] == preset and "bf16" in k[1] for k in order)
        if has_bf16:
            out.append(f"| {preset} | roofline, bf16 weights ({b16 / 1e6:.1f} MB/token) | | | "
                       f"{fmt(roof16)} | 100 |")
        for key in [k for k in order if k[0] == preset]:
            r = rows[key]
            roof_row = roof16 if "bf16" in key[1] else roof
            dec = r.get("decode")
            rng = r.get("decode_range", (None, None))
            dec_s = "—" if dec is None else (
                f"{dec:.1f} ({fmt(rng[0])}–{fmt(rng[1])})" if rng[0] is not None else f"{dec:.1f}")
            pct = fmt(100 * dec / roof_row, 0) if (dec and roof_row) else "—"
            out.append(f"| {preset} | {key[1]} | {fmt(r.get('prefill_128'))} | "
                       f"{fmt(r.get('prefill_2048'))} | {dec_s} | {pct} |")
    flash_rows = [p for p in ("small", "base")
                  if (p, "phasebench") in rows and (p, "phasebench-flash") in rows]
    if flash_rows:
        out.append("")
        out.append("phasebench prefill of 2048 tokens, naive against flash attention (f32; peak memory is the "
                   "process's peak resident set over a run of 128- and 2048-token prefills with that attention):")
        out.append("")
        out.append("| preset | naive (ms) | flash (ms) | speed-up | naive peak RSS (MiB) | flash peak RSS (MiB) |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for preset in flash_rows:
            naive = rows[(preset, "phasebench")].get("prefill_2048")
            flash = rows[(preset, "phasebench-flash")].get("prefill_2048")
            ratio = f"{naive / flash:.2f}x" if naive and flash else "—"
            out.append(f"| {preset} | {fmt(naive)} | {fmt(flash)} | {ratio} | "
                       f"{fmt(peak_rss.get((preset, 'naive')))} | {fmt(peak_rss.get((preset, 'flash')))} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
