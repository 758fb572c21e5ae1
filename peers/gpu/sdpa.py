"""PyTorch's peers for the GPU table of docs/performance.md.

Prints, in the same format as phasebench's `attention_throughput` test:
causal bf16 `scaled_dot_product_attention` with 32 query and 8 key/value
heads (grouped, and with the keys repeated to 32 heads), head sizes 64
and 128, 512 to 8192 tokens; then the device-to-device copy bandwidth that
the decode roofline divides by. Median of 20 calls after 3 warm-ups,
timed with CUDA events; fresh random inputs.
"""

import torch
import torch.nn.functional as F


def median_ms(fn, warmup=3, reps=20):
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main():
    device = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
    print("kernel             seq  heads  d    median_ms  tflops")
    heads, kv_heads = 32, 8
    for d in (64, 128):
        for seq in (512, 2048, 8192):
            q = torch.randn(1, heads, seq, d, device=device, dtype=torch.bfloat16)
            k = torch.randn(1, kv_heads, seq, d, device=device, dtype=torch.bfloat16)
            v = torch.randn(1, kv_heads, seq, d, device=device, dtype=torch.bfloat16)
            flops = 4.0 * seq * seq * d * heads / 2
            gqa = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
            print(f"{'torch_sdpa_gqa':<18} {seq:>5} {heads:>5} {d:>3} {gqa:>12.4f} {flops / gqa / 1e9:>7.1f}")
            kr, vr = k.repeat_interleave(heads // kv_heads, 1), v.repeat_interleave(heads // kv_heads, 1)
            mha = median_ms(lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=True))
            print(f"{'torch_sdpa_mha':<18} {seq:>5} {heads:>5} {d:>3} {mha:>12.4f} {flops / mha / 1e9:>7.1f}")
    n = 1 << 30  # 2 GiB of bf16 each way
    a = torch.randn(n, device=device, dtype=torch.bfloat16)
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a))
    print(f"copy_bandwidth_GBps {2 * a.numel() * a.element_size() / (ms / 1e3) / 1e9:.1f}")


if __name__ == "__main__":
    main()
