#!/usr/bin/env python3
"""The GPU table of docs/performance.md from one gpu-check.sh folder.

Reads attention.txt (phasebench's attention_throughput), sdpa.txt (PyTorch's
peers and the copy bandwidth) and run/results.json (scenarios/llm-gpu.yaml)
and prints Markdown: flash attention against PyTorch, decode rate against
the HBM roofline, TTFT naive against flash.
"""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llm"))
from bytes_per_token import bytes_per_token  # noqa: E402

# The `1b` preset (src/engines/llm/config.rs).
ONE_B = dict(vocab=128256, dim=2048, layers=16, heads=32, kv_heads=8, hidden=8192)
BF16 = 2


def rows(path):
    table = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 6 and parts[1].isdigit():
                kernel, seq, _heads, d, ms, tflops = parts
                table[(kernel, int(seq), int(d))] = (float(ms), float(tflops))
    return table


def copy_bandwidth(path):
    with open(path) as f:
        for line in f:
            if line.startswith("copy_bandwidth_GBps"):
                return float(line.split()[1])
    return None


def metric(run, name, stat="p50"):
    return run["metrics"][name]["summary"][stat]


def main(folder):
    ours = rows(os.path.join(folder, "attention.txt"))
    peers = rows(os.path.join(folder, "sdpa.txt"))
    print("| head size | tokens | phasebench flash (TFLOP/s) | torch SDPA, GQA | torch SDPA, MHA | ratio to best torch |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (kernel, seq, d), (_ms, tflops) in sorted(ours.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        if not kernel.startswith("flash"):
            continue
        gqa = peers.get(("torch_sdpa_gqa", seq, d), (0, 0))[1]
        mha = peers.get(("torch_sdpa_mha", seq, d), (0, 0))[1]
        best = max(gqa, mha)
        ratio = f"{tflops / best:.2f}x" if best else "n/a"
        print(f"| {d} | {seq} | {tflops:.1f} | {gqa:.1f} | {mha:.1f} | {ratio} |")
    print()
    results = json.load(open(os.path.join(folder, "run", "results.json")))
    runs = results["runs"]
    chat = next(r for r in runs if r["id"] == "chat")
    prompt, generated = chat["params"]["prompt_tokens"], chat["params"]["max_tokens"]
    cache = prompt + (generated + 1) / 2
    need = bytes_per_token(ONE_B, cache, BF16)["total_bytes"]
    bandwidth = copy_bandwidth(os.path.join(folder, "sdpa.txt"))
    rate = metric(chat, "decode_rate")
    print("| decode, `1b` bf16 | value |")
    print("| --- | --- |")
    print(f"| bytes per token (weights + head + KV at {cache:.0f} positions) | {need / 1e9:.3f} GB |")
    if bandwidth:
        roofline = bandwidth * 1e9 / need
        print(f"| copy bandwidth (read + write) | {bandwidth:.0f} GB/s |")
        print(f"| roofline | {roofline:.0f} tok/s |")
        print(f"| decode rate p50 (min–max) | {rate:.0f} tok/s ({metric(chat, 'decode_rate', 'min'):.0f}–"
              f"{metric(chat, 'decode_rate', 'max'):.0f}) = {100 * rate / roofline:.0f}% of roofline |")
    print(f"| TTFT p50 at {prompt} tokens | {1e3 * metric(chat, 'ttft'):.2f} ms |")
    print()
    print("| prompt tokens | TTFT naive p50 (ms) | TTFT flash p50 (ms) | naive / flash |")
    print("| --- | --- | --- | --- |")
    by_length = {}
    for run in runs:
        arm = (run.get("arm") or {}).get("arm")
        if arm is None or "matrix" not in run:
            continue
        by_length.setdefault(int(run["matrix"]["prompt"]), {}).setdefault(arm, []).append(metric(run, "ttft"))
    for length in sorted(by_length):
        arms = by_length[length]
        naive, flash = statistics.median(arms["baseline"]), statistics.median(arms["flash"])
        spread = lambda xs: f"{1e3 * min(xs):.2f}–{1e3 * max(xs):.2f}"  # noqa: E731
        print(f"| {length} | {1e3 * naive:.2f} ({spread(arms['baseline'])}) | {1e3 * flash:.2f} "
              f"({spread(arms['flash'])}) | {naive / flash:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-check-out")
