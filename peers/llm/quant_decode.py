#!/usr/bin/env python3
"""llama.cpp's side of quant_decode.sh: GGUF files in every weight type, and
llama.cpp's decode rate on each.

  quant_decode.py make PRESET TYPE...   writes GGUF_DIR/PRESET-TYPE.gguf for each
                                        TYPE (f16, q8_0, q4_0, q4_k) by quantizing
                                        PRESET-f32.gguf with llama.cpp itself
                                        (`pure`: every matrix in TYPE, as
                                        phasebench's `dtype` stores them)
  quant_decode.py decode FILE LABEL     decode rate: a 128-token prompt, then 64
                                        greedy steps, --reps times after one
                                        warm-up, F32 KV cache, 2 threads

Prints one JSON line per measurement (peers/llm/README.md's shape).
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_cpp  # noqa: E402
from llamacpp_peer import prompt_tokens, run_decode  # noqa: E402

FTYPES = {"f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
          "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q4_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}


def make(args):
    gguf_dir = os.environ.get("GGUF_DIR", "/tmp/phasebench-gguf")
    source = os.path.join(gguf_dir, f"{args.preset}-f32.gguf")
    for kind in args.types:
        out = os.path.join(gguf_dir, f"{args.preset}-{kind}.gguf")
        if os.path.exists(out):
            continue
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = FTYPES[kind]
        params.pure = True
        params.nthread = os.cpu_count() or 1
        if llama_cpp.llama_model_quantize(source.encode(), (out + ".tmp").encode(), params) != 0:
            sys.exit(f"llama_model_quantize {source} -> {kind} failed")
        os.rename(out + ".tmp", out)
        print(json.dumps({"bench": "make", "preset": args.preset, "type": kind, "path": out,
                          "bytes": os.path.getsize(out)}), flush=True)


def decode(args):
    llm = llama_cpp.Llama(model_path=args.file, n_ctx=512, n_batch=512, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=False, type_k=0, type_v=0,
                          flash_attn=False, use_mmap=False, verbose=False)
    n_vocab = llm.n_vocab()
    toks = prompt_tokens(128, n_vocab, 1234)
    run_decode(llm, toks, 8, n_vocab)  # warm-up
    rates = []
    for _ in range(args.reps):
        seconds, _, _ = run_decode(llm, toks, 64, n_vocab)
        rates.append(64 / seconds)
    print(json.dumps({"bench": "llama.cpp", "label": args.label, "metric": "decode", "reps": args.reps,
                      "median_tok_s": statistics.median(rates), "min_tok_s": min(rates),
                      "max_tok_s": max(rates), "llama_cpp_python": llama_cpp.__version__}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("preset")
    m.add_argument("types", nargs="+", choices=sorted(FTYPES))
    d = sub.add_parser("decode")
    d.add_argument("file")
    d.add_argument("label")
    d.add_argument("--reps", type=int, default=5)
    d.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    make(args) if args.command == "make" else decode(args)


if __name__ == "__main__":
    main()
