#!/usr/bin/env python3
"""Write a random-weight llama GGUF (all tensors F32) for a phasebench preset.

No hub downloads: weights come from numpy's PCG64 with a seed. Scaling keeps
activations O(1): embeddings std 0.02, linear weights std 1/sqrt(fan_in),
RMSNorm weights 1. The output head is tied to the embedding by omitting
`output.weight` (llama.cpp then uses token_embd.weight for the head).

The vocabulary is a dummy llama/SentencePiece-style list of 32000 tokens laid
out like llama2's (<unk>, <s>, </s>, 256 byte tokens <0x00>..<0xFF>, then
placeholder pieces) so that llama.cpp's SPM vocab loader finds everything it
looks up (byte tokens for newline, bos/eos/unk ids). The benchmark feeds token
ids directly, so the text of the pieces never matters.

Usage: make_gguf.py --preset small|base [--out PATH] [--seed S]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from presets import PRESETS, kv_dim  # noqa: E402

import gguf  # noqa: E402
from gguf_reference import dummy_vocab  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    p = PRESETS[args.preset]
    out = args.out or os.path.join(
        os.environ.get("GGUF_DIR", "/tmp/phasebench-gguf"), f"{args.preset}-f32.gguf")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    def rand(shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std))

    w = gguf.GGUFWriter(out, "llama")
    w.add_name(f"phasebench-{args.preset}-random")
    w.add_context_length(p["max_ctx"])
    w.add_embedding_length(p["dim"])
    w.add_block_count(p["layers"])
    w.add_feed_forward_length(p["hidden"])
    w.add_head_count(p["heads"])
    w.add_head_count_kv(p["kv_heads"])
    w.add_rope_dimension_count(p["dim"] // p["heads"])
    w.add_rope_freq_base(p["rope_theta"])
    w.add_layer_norm_rms_eps(p["eps"])
    w.add_vocab_size(p["vocab"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens, scores, types = dummy_vocab(p["vocab"], ranked=True)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    d, h, kvd = p["dim"], p["hidden"], kv_dim(p)
    # numpy shapes are (rows=out, cols=in) like PyTorch; gguf stores ggml ne
    # reversed, i.e. ne = [in, out], which is what llama.cpp expects.
    w.add_tensor("token_embd.weight", rand((p["vocab"], d), 0.02))
    for l in range(p["layers"]):
        b = f"blk.{l}"
        w.add_tensor(f"{b}.attn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(f"{b}.attn_q.weight", rand((d, d), d ** -0.5))
        w.add_tensor(f"{b}.attn_k.weight", rand((kvd, d), d ** -0.5))
        w.add_tensor(f"{b}.attn_v.weight", rand((kvd, d), d ** -0.5))
        w.add_tensor(f"{b}.attn_output.weight", rand((d, d), d ** -0.5))
        w.add_tensor(f"{b}.ffn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(f"{b}.ffn_gate.weight", rand((h, d), d ** -0.5))
        w.add_tensor(f"{b}.ffn_up.weight", rand((h, d), d ** -0.5))
        w.add_tensor(f"{b}.ffn_down.weight", rand((d, h), h ** -0.5))
    w.add_tensor("output_norm.weight", np.ones(d, dtype=np.float32))
    # no output.weight: tied to token_embd.weight

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f'{{"bench":"make_gguf","preset":"{args.preset}","path":"{out}",'
          f'"bytes":{os.path.getsize(out)},"seconds":{time.time() - t0:.2f}}}')


if __name__ == "__main__":
    main()
