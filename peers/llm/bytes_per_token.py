#!/usr/bin/env python3
"""Memory roofline for f32 decode.

Bytes read per decoded token at context length L (f32, 4 bytes/element):
  * every weight matrix and norm vector of every layer
    (wq, wk, wv, wo, w_gate, w_up, w_down, attn_norm, ffn_norm),
  * the final norm,
  * the output head (vocab x dim) -- with tied embeddings this is the
    embedding matrix, read in full once per token,
  * NOT the embedding lookup itself (one row, dim*4 bytes: negligible),
  * the KV cache read by attention: 2 (K and V) x layers x kv_dim x L x 4.
Activations, logits and the KV write of the new token are ignored (they are
small and mostly cache-resident).

roofline tok/s = bandwidth / bytes_per_token: the best decode rate any
engine can reach if it must stream those bytes from DRAM once per token.

Usage:
  bytes_per_token.py [--gbs 14.1 | --membw-json FILE] [--L 160] [--preset all]
Prints one JSON line per (preset, L). With --membw-json the all-threads best
GB/s from membw's JSON line is used (and the median is reported too).

Note on L: a decode of G tokens after a P-token prompt reads a cache of
P+1 .. P+G positions; the mean is P + (G+1)/2 (160.5 for 128 + 64), which is
what run_peers.sh uses for its "% of roofline" column.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from presets import PRESETS, kv_dim  # noqa: E402

F32 = 4


def weight_elems(p):
    d, h, kvd = p["dim"], p["hidden"], kv_dim(p)
    per_layer = (d * d          # wq
                 + 2 * d * kvd  # wk, wv
                 + d * d        # wo
                 + 3 * d * h    # gate, up, down
                 + 2 * d)       # two RMSNorm weight vectors
    return p["layers"] * per_layer + d  # + final norm


def bytes_per_token(p, L, bytes_per_elem=F32):
    weights = weight_elems(p) * bytes_per_elem
    head = p["vocab"] * p["dim"] * bytes_per_elem  # tied: the embedding matrix
    kv = 2 * p["layers"] * kv_dim(p) * L * bytes_per_elem
    return {"weights_bytes": weights, "head_bytes": head, "kv_bytes": kv,
            "total_bytes": weights + head + kv}


def read_membw(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                j = json.loads(line)
                if j.get("bench") == "membw":
                    return j
    raise SystemExit(f"no membw JSON line in {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gbs", type=float, default=None, help="bandwidth in GB/s (1e9 B/s)")
    ap.add_argument("--membw-json", default=None)
    ap.add_argument("--L", default="128,160.5,2048", help="context lengths, comma separated")
    ap.add_argument("--preset", default="all", choices=["all"] + sorted(PRESETS))
    args = ap.parse_args()

    median_gbs = None
    if args.membw_json:
        m = read_membw(args.membw_json)
        gbs, median_gbs = m["all_threads_best_gbs"], m["all_threads_median_gbs"]
    else:
        gbs = args.gbs
    names = sorted(PRESETS, reverse=True) if args.preset == "all" else [args.preset]
    for name in names:
        p = PRESETS[name]
        for L in [float(x) for x in args.L.split(",") if x]:
            b = bytes_per_token(p, L)
            row = {"bench": "roofline", "preset": name, "L": L,
                   **{k: int(round(v)) for k, v in b.items()},
                   "total_mb": round(b["total_bytes"] / 1e6, 3)}
            if gbs:
                row["gbs"] = gbs
                row["roofline_tok_s"] = round(gbs * 1e9 / b["total_bytes"], 2)
            if median_gbs:
                row["gbs_median"] = median_gbs
                row["roofline_tok_s_at_median_bw"] = round(median_gbs * 1e9 / b["total_bytes"], 2)
            print(json.dumps(row))


if __name__ == "__main__":
    main()
