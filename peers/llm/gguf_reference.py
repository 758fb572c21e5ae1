#!/usr/bin/env python3
"""GGUF files for the llama.cpp agreement test, and llama.cpp's answers on them.

Writes into DIR, with the `gguf` package (weights from numpy's PCG64, seed 7):

  f32.gguf, f16.gguf, q8_0.gguf   a random llama of the test shape (dim 256,
                                  hidden 512, 2 layers, 4 heads over 2 kv heads
                                  of 64, vocab 320, its own output head), stored in each type;
  fixture.gguf                    tests/fixtures/llama-tiny (transformers'
                                  LlamaForCausalLM) converted as llama.cpp's
                                  converter does: names mapped, q and k rows
                                  interleaved for llama.cpp's rotary, F32;
  fixture-llama3.gguf             tests/fixtures/llama-tiny-llama3 (bf16,
                                  tied, multi-query) likewise, its Llama 3
                                  rope scaling as `rope_freqs.weight`;
  qwen2.gguf                      a random Qwen2 of the test shape, F32: the
                                  llama block with q, k and v biases and
                                  rotary on halves, so its q and k rows are
                                  not interleaved (numpy seed 11);
  q4_k.gguf                       f32.gguf quantized by llama.cpp itself
                                  (llama_model_quantize, Q4_K, `pure`: every
                                  matrix Q4_K) -- only when llama-cpp-python is
                                  installed; the test otherwise uses the copy
                                  committed in tests/fixtures/gguf/.

With --reference FILE (needs llama-cpp-python), llama.cpp then evaluates a
24-token prompt on every file and writes, per file, its sha256, the prompt,
the last position's logits and the 16 tokens greedy decoding continues with.
The committed tests/fixtures/gguf/reference.json was made so:

  /work/bench-venv/bin/python peers/llm/gguf_reference.py /tmp/gguf \
      --reference tests/fixtures/gguf/reference.json
  cp /tmp/gguf/q4_k.gguf tests/fixtures/gguf/q4_k.gguf

The files are byte-for-byte the same on every run (the sha256 in the
reference says so), so a checkout without llama.cpp regenerates them with
the `gguf` package alone and checks phasebench against the committed answers.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

import numpy as np

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SHAPE = dict(dim=256, hidden=512, layers=2, heads=4, kv_heads=2, vocab=320, context=512,
             rope_theta=10000.0, eps=1e-5)
PROMPT = [(17 * i + 5) % 250 + 3 for i in range(24)]  # inside both vocabularies (320, 256)
GREEDY = 16


def dummy_vocab(n, ranked=False):
    """A SentencePiece-style list llama.cpp's loader accepts: <unk>, <s>, </s>,
    byte tokens (as many as fit, <0x0A> among them), then placeholders, with
    score 0, or (`ranked`, as make_gguf.py's benchmark files have them) the
    placeholders scored -0, -1, -2, ... in order."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(min(256, n - 3)):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
    i = 0
    while len(tokens) < n:
        tokens.append(f"\u2581t{i}")
        types.append(gguf.TokenType.NORMAL)
        i += 1
    placed = len(tokens) - i
    scores = [0.0] * placed + ([-float(k) for k in range(i)] if ranked else [0.0] * i)
    return tokens, scores, [int(t) for t in types]


def interleave(w, heads):
    """llama.cpp's converter's q/k row order: each head's rotary pairs adjacent."""
    rows, cols = w.shape
    return w.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def writer(path, shape, vocab_size, file_type, arch="llama"):
    w = gguf.GGUFWriter(path, arch)
    w.add_name("phasebench-gguf-test")
    w.add_context_length(shape["context"])
    w.add_embedding_length(shape["dim"])
    w.add_block_count(shape["layers"])
    w.add_feed_forward_length(shape["hidden"])
    w.add_head_count(shape["heads"])
    w.add_head_count_kv(shape["kv_heads"])
    w.add_rope_dimension_count(shape["dim"] // shape["heads"] if "head_dim" not in shape else shape["head_dim"])
    if "head_dim" in shape:
        w.add_key_length(shape["head_dim"])
        w.add_value_length(shape["head_dim"])
    w.add_rope_freq_base(shape["rope_theta"])
    w.add_layer_norm_rms_eps(shape["eps"])
    w.add_vocab_size(vocab_size)
    w.add_file_type(file_type)
    tokens, scores, types = dummy_vocab(vocab_size)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    return w


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def random_tensors(seed=7, interleaved=True):
    """The random model's tensors by GGUF name, numpy (out, in), q/k
    interleaved for llama.cpp's rotary unless told otherwise."""
    s = SHAPE
    rng = np.random.default_rng(seed)
    order = interleave if interleaved else (lambda w, heads: w)
    d, h, hd = s["dim"], s["hidden"], s["dim"] // s["heads"]
    kvd = s["kv_heads"] * hd

    def rand(shape, std):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    out = {"token_embd.weight": rand((s["vocab"], d), 1.0)}
    for layer in range(s["layers"]):
        b = f"blk.{layer}"
        out[f"{b}.attn_norm.weight"] = (1.0 + rand(d, 0.1)).astype(np.float32)
        out[f"{b}.attn_q.weight"] = order(rand((d, d), d ** -0.5), s["heads"])
        out[f"{b}.attn_k.weight"] = order(rand((kvd, d), d ** -0.5), s["kv_heads"])
        out[f"{b}.attn_v.weight"] = rand((kvd, d), d ** -0.5)
        out[f"{b}.attn_output.weight"] = rand((d, d), d ** -0.5)
        out[f"{b}.ffn_norm.weight"] = (1.0 + rand(d, 0.1)).astype(np.float32)
        out[f"{b}.ffn_gate.weight"] = rand((h, d), d ** -0.5)
        out[f"{b}.ffn_up.weight"] = rand((h, d), d ** -0.5)
        out[f"{b}.ffn_down.weight"] = rand((d, h), h ** -0.5)
    out["output_norm.weight"] = (1.0 + rand(d, 0.1)).astype(np.float32)
    out["output.weight"] = rand((s["vocab"], d), d ** -0.5)
    return out


def write_random(path, kind):
    Q = gguf.GGMLQuantizationType
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]
    w = writer(path, SHAPE, SHAPE["vocab"], file_type)
    for name, t in random_tensors().items():
        if t.ndim == 1 or kind == "f32":
            w.add_tensor(name, t)
        elif kind == "f16":
            w.add_tensor(name, t.astype(np.float16))
        else:
            q = gguf.quants.quantize(t, Q.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=Q.Q8_0)
    finish(w)


def write_qwen2(path):
    """The Qwen2 file: the random model's shape (numpy seed 11), q and k
    rows as they are (Qwen2's rotary is on halves, as Hugging Face's), and a
    bias on q, k and v large enough to move the answer."""
    w = writer(path, SHAPE, SHAPE["vocab"], gguf.LlamaFileType.ALL_F32, arch="qwen2")
    tensors = random_tensors(seed=11, interleaved=False)
    rng = np.random.default_rng(12)
    kvd = SHAPE["kv_heads"] * SHAPE["dim"] // SHAPE["heads"]
    for layer in range(SHAPE["layers"]):
        for part, width in (("q", SHAPE["dim"]), ("k", kvd), ("v", kvd)):
            tensors[f"blk.{layer}.attn_{part}.bias"] = rng.standard_normal(width, dtype=np.float32) * np.float32(0.5)
    for name, t in tensors.items():
        w.add_tensor(name, t)
    finish(w)


def read_safetensors(directory):
    """Every tensor of a checkpoint directory as float32 numpy arrays (bf16
    widened by hand: numpy has no bf16)."""
    import glob
    import struct

    out = {}
    for name in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        data = open(name, "rb").read()
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + length])
        body = data[8 + length:]
        for tensor, info in header.items():
            if tensor == "__metadata__":
                continue
            start, end = info["data_offsets"]
            raw = body[start:end]
            if info["dtype"] == "F32":
                values = np.frombuffer(raw, dtype=np.float32)
            elif info["dtype"] == "BF16":
                values = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                sys.exit(f"{name}: {tensor} is {info['dtype']}")
            out[tensor] = values.reshape(info["shape"]).astype(np.float32)
    return out


def llama3_rope_factors(config, head_dim):
    """Llama 3 rope scaling as llama.cpp's converter stores it: one divisor
    per frequency pair (`rope_freqs.weight`)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling")
    theta = rope.get("rope_theta", config.get("rope_theta"))
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    original = rope["original_max_position_embeddings"]
    factors = []
    for i in range(head_dim // 2):
        wavelength = 2 * np.pi * theta ** (2 * i / head_dim)
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32), theta


def write_fixture(path, name):
    """A transformers fixture converted as llama.cpp's converter converts it."""
    fixture = os.path.join(ROOT, "tests", "fixtures", name)
    config = json.load(open(os.path.join(fixture, "config.json")))
    weights = read_safetensors(fixture)
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    rope = config.get("rope_parameters") or config.get("rope_scaling")
    factors = None
    theta = config.get("rope_theta", 10000.0)
    if rope and rope.get("rope_type", rope.get("type")) == "llama3":
        factors, theta = llama3_rope_factors(config, head_dim)
    elif rope and "rope_theta" in rope:
        theta = rope["rope_theta"]
    shape = dict(dim=config["hidden_size"], hidden=config["intermediate_size"],
                 layers=config["num_hidden_layers"], heads=config["num_attention_heads"],
                 kv_heads=config["num_key_value_heads"], head_dim=head_dim,
                 context=config["max_position_embeddings"], rope_theta=theta,
                 eps=config["rms_norm_eps"])
    w = writer(path, shape, config["vocab_size"], gguf.LlamaFileType.ALL_F32)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for hf in sorted(weights):
        t = weights[hf]
        if hf in names:
            name = names[hf]
        else:
            _, _, layer, rest = hf.split(".", 3)
            part = parts[rest.rsplit(".", 1)[0]]
            name = f"blk.{layer}.{part}.weight"
            if part == "attn_q":
                t = interleave(t, shape["heads"])
            elif part == "attn_k":
                t = interleave(t, shape["kv_heads"])
        w.add_tensor(name, np.ascontiguousarray(t))
    if factors is not None:
        w.add_tensor("rope_freqs.weight", factors)
    finish(w)


def quantize_q4_k(source, path):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.pure = True
    params.nthread = 1
    status = llama_cpp.llama_model_quantize(source.encode(), path.encode(), params)
    if status != 0:
        sys.exit(f"llama_model_quantize failed with {status}")


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def llama_cpp_answers(path):
    import llama_cpp

    # An f32 KV cache, as phasebench keeps (llama.cpp's default is f16), and
    # no flash attention: the same arithmetic, so only the weights' types differ.
    llm = llama_cpp.Llama(model_path=path, n_ctx=128, n_batch=128, n_threads=1, n_threads_batch=1,
                          logits_all=True, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                          flash_attn=False, verbose=False)
    n_vocab = llm.n_vocab()
    llm.reset()
    llm.eval(PROMPT)
    last = np.array(llm.scores[len(PROMPT) - 1][:n_vocab], dtype=np.float32)
    greedy = []
    token = int(np.argmax(last))
    for _ in range(GREEDY):
        greedy.append(token)
        llm.eval([token])
        token = int(np.argmax(np.array(llm.scores[llm.n_tokens - 1][:n_vocab])))
    return last, greedy


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--reference", help="write llama.cpp's answers here (needs llama-cpp-python)")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    files = {}
    for kind in ("f32", "f16", "q8_0"):
        files[kind] = os.path.join(args.dir, f"{kind}.gguf")
        write_random(files[kind], kind)
    files["fixture"] = os.path.join(args.dir, "fixture.gguf")
    write_fixture(files["fixture"], "llama-tiny")
    files["fixture-llama3"] = os.path.join(args.dir, "fixture-llama3.gguf")
    write_fixture(files["fixture-llama3"], "llama-tiny-llama3")
    files["qwen2"] = os.path.join(args.dir, "qwen2.gguf")
    write_qwen2(files["qwen2"])
    try:
        import llama_cpp  # noqa: F401
        have_llama_cpp = True
    except ImportError:
        have_llama_cpp = False
    if have_llama_cpp:
        files["q4_k"] = os.path.join(args.dir, "q4_k.gguf")
        quantize_q4_k(files["f32"], files["q4_k"])
    for kind, path in files.items():
        print(f"{kind}: {path} {os.path.getsize(path)} bytes sha256 {sha256(path)}")
    if not args.reference:
        return
    if not have_llama_cpp:
        sys.exit("--reference needs llama-cpp-python")
    import llama_cpp

    reference = {
        "made_by": "peers/llm/gguf_reference.py",
        "llama_cpp_python": llama_cpp.__version__,
        "gguf": getattr(gguf, "__version__", "0.19.0"),
        "prompt": PROMPT,
        "files": {},
    }
    for kind, path in files.items():
        last, greedy = llama_cpp_answers(path)
        reference["files"][kind] = {
            "sha256": sha256(path),
            "last_logits": [float(x) for x in last],
            "greedy": greedy,
        }
        print(f"{kind}: greedy {greedy}")
    os.makedirs(os.path.dirname(os.path.abspath(args.reference)), exist_ok=True)
    tmp = args.reference + ".tmp"
    with open(tmp, "w") as out:
        json.dump(reference, out, indent=1)
        out.write("\n")
    shutil.move(tmp, args.reference)


if __name__ == "__main__":
    main()
