"""Model shapes shared by the Python side of the LLM peer benchmarks.

Must match peers/llm/candle-peer/src/main.rs (PRESETS) and the phasebench
engine's presets. These are the llama2.c stories15M / stories110M shapes with
a 2048-token context, f32, tied embeddings.
"""

PRESETS = {
    # Only for tests that need a model in seconds (tests/openai_llamacpp.rs).
    "tiny": dict(vocab=2048, dim=128, layers=4, heads=4, kv_heads=4,
                 hidden=384, rope_theta=10000.0, eps=1e-5, max_ctx=2048),
    "small": dict(vocab=32000, dim=288, layers=6, heads=6, kv_heads=6,
                  hidden=768, rope_theta=10000.0, eps=1e-5, max_ctx=2048),
    "base": dict(vocab=32000, dim=768, layers=12, heads=12, kv_heads=12,
                 hidden=2048, rope_theta=10000.0, eps=1e-5, max_ctx=2048),
    # The Llama-3.2-1B shape (grouped-query attention; its rope scaling left
    # out, which changes no cost), for quant_decode.sh's Q4_K row.
    "1b": dict(vocab=128256, dim=2048, layers=16, heads=32, kv_heads=8,
               hidden=8192, rope_theta=500000.0, eps=1e-5, max_ctx=2048),
}


def head_dim(p):
    return p["dim"] // p["heads"]


def kv_dim(p):
    return head_dim(p) * p["kv_heads"]
