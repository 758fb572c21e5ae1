#!/usr/bin/env python3
"""Peer benchmark: llama.cpp (through llama-cpp-python) on CPU with an F32
random-weight GGUF made by make_gguf.py.

For each preset it measures
  * prefill: evaluation of the whole prompt (token ids, no tokenizer) into an
    empty KV cache, until the last position's logits are available;
  * decode: after a prompt of --decode-prompt tokens, --decode-gen greedy
    steps (argmax over the last logits, then evaluate that one token);
    tok/s = gen / wall time of those steps (prompt not counted).
Each measurement is repeated --reps times after one untimed warm-up; median,
min and max are reported. llama.cpp's own perf counters (t_p_eval / t_eval)
are reported next to the wall-clock figures as a cross-check of the Python
overhead. Output: one JSON line per measurement.

Defaults follow the brief: n_threads = n_threads_batch = 2, logits_all=False,
F32 KV cache (so the KV bytes match the f32 roofline; --kv f16 gives
llama.cpp's default), flash attention off (llama-cpp-python's default;
--flash-attn turns it on), n_batch 2048 / n_ubatch 512 (llama-bench's
defaults: a 2048-token prompt is one llama_decode call in 4 micro-batches).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from presets import PRESETS  # noqa: E402

import llama_cpp  # noqa: E402
from llama_cpp import Llama  # noqa: E402

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1


def prompt_tokens(n, vocab, seed):
    rng = np.random.default_rng(seed ^ 0x5EED70C5)
    # avoid the 259 special/byte ids at the start of the dummy vocab
    return [int(t) for t in rng.integers(259, vocab, size=n)]


def last_logits(llm, n_vocab):
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,))


def perf(llm):
    d = llama_cpp.llama_perf_context(llm.ctx)
    return d.t_p_eval_ms, d.n_p_eval, d.t_eval_ms, d.n_eval


def run_prefill(llm, toks, n_vocab):
    llm.reset()  # n_tokens = 0; eval() then drops the whole KV cache
    llama_cpp.llama_perf_context_reset(llm.ctx)
    t = time.perf_counter()
    llm.eval(toks)
    nxt = int(np.argmax(last_logits(llm, n_vocab)))
    dt = time.perf_counter() - t
    tp, npv, te, ne = perf(llm)
    return dt, nxt, tp + te


def run_decode(llm, toks, gen, n_vocab):
    _, nxt, _ = run_prefill(llm, toks, n_vocab)
    llama_cpp.llama_perf_context_reset(llm.ctx)
    out = []
    t = time.perf_counter()
    for _ in range(gen):
        llm.eval([nxt])
        nxt = int(np.argmax(last_logits(llm, n_vocab)))
        out.append(nxt)
    dt = time.perf_counter() - t
    tp, npv, te, ne = perf(llm)
    return dt, out, tp + te


def stats(xs):
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="all", choices=["all"] + sorted(PRESETS))
    ap.add_argument("--gguf-dir", default=os.environ.get("GGUF_DIR", "/tmp/phasebench-gguf"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prefill", default="128,2048")
    ap.add_argument("--decode-prompt", type=int, default=128)
    ap.add_argument("--decode-gen", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv", choices=["f32", "f16"], default="f32")
    ap.add_argument("--flash-attn", action="store_true")
    ap.add_argument("--n-batch", type=int, default=2048)
    ap.add_argument("--n-ubatch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--label", default="llama.cpp")
    args = ap.parse_args()
    prefills = [int(x) for x in args.prefill.split(",") if x]

    names = sorted(PRESETS, reverse=True) if args.preset == "all" else [args.preset]
    for name in names:
        p = PRESETS[name]
        path = os.path.join(args.gguf_dir, f"{name}-f32.gguf")
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run make_gguf.py --preset {name}")
        n_ctx = p["max_ctx"] + args.decode_gen + 64
        kv_type = GGML_TYPE_F32 if args.kv == "f32" else GGML_TYPE_F16
        t0 = time.perf_counter()
        llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=args.n_batch, n_ubatch=args.n_ubatch,
                    n_threads=args.threads, n_threads_batch=args.threads, logits_all=False,
                    type_k=kv_type, type_v=kv_type, flash_attn=args.flash_attn,
                    use_mmap=False, seed=args.seed, verbose=False)
        n_vocab = llm.n_vocab()
        assert n_vocab == p["vocab"]
        base = {"bench": "llamacpp-peer", "label": args.label, "preset": name}
        print(json.dumps({**base, "metric": "model", "n_ctx": llama_cpp.llama_n_ctx(llm.ctx),
                          "n_params": llama_cpp.llama_model_n_params(llm.model),
                          "threads": args.threads, "kv": args.kv, "flash_attn": args.flash_attn,
                          "n_batch": args.n_batch, "n_ubatch": args.n_ubatch,
                          "load_s": round(time.perf_counter() - t0, 3),
                          "llama_cpp_python": llama_cpp.__version__,
                          "system_info": llama_cpp.llama_print_system_info().decode()}),
              flush=True)

        for n in prefills:
            toks = prompt_tokens(n, n_vocab, args.seed)
            _, _, _ = run_prefill(llm, toks, n_vocab)  # warm-up
            ms, internal = [], []
            for _ in range(args.reps):
                dt, nxt, internal_ms = run_prefill(llm, toks, n_vocab)
                ms.append(dt * 1e3)
                internal.append(internal_ms)
            med, lo, hi = stats(ms)
            print(json.dumps({**base, "metric": "prefill", "tokens": n, "reps": args.reps,
                              "median_ms": round(med, 2), "min_ms": round(lo, 2),
                              "max_ms": round(hi, 2), "prefill_tok_s": round(n / med * 1e3, 1),
                              "llamacpp_internal_median_ms": round(statistics.median(internal), 2)}),
                  flush=True)

        if args.decode_gen > 0:
            toks = prompt_tokens(args.decode_prompt, n_vocab, args.seed)
            _, first, _ = run_decode(llm, toks, args.decode_gen, n_vocab)  # warm-up
            tps, internal = [], []
            for _ in range(args.reps):
                dt, out, internal_ms = run_decode(llm, toks, args.decode_gen, n_vocab)
                if out != first:
                    print(json.dumps({**base, "warning": "greedy decode not reproducible"}),
                          file=sys.stderr)
                tps.append(args.decode_gen / dt)
                internal.append(args.decode_gen / (internal_ms / 1e3))
            med, lo, hi = stats(tps)
            print(json.dumps({**base, "metric": "decode", "prompt": args.decode_prompt,
                              "gen": args.decode_gen, "reps": args.reps,
                              "median_tok_s": round(med, 2), "min_tok_s": round(lo, 2),
                              "max_tok_s": round(hi, 2), "median_ms_per_tok": round(1e3 / med, 3),
                              "llamacpp_internal_median_tok_s": round(statistics.median(internal), 2),
                              "distinct_tokens": len(set(first)), "first_tokens": first[:8]}),
                  flush=True)
        del llm


if __name__ == "__main__":
    main()
