// SwiGLU activation: out = silu(gate) · up from the fused gate/up product.
//
// gate_up: (rows, 2·hidden) f32, rows [gate | up]; out: (rows, hidden).
// Grid: (rows, ceil(hidden / blockDim.x)).

template <typename T>
__device__ void silu_mul(const float* gate_up, T* out, int hidden) {
    int i = blockIdx.y * blockDim.x + threadIdx.x;
    if (i >= hidden) return;
    const float* row = gate_up + (long long)blockIdx.x * 2 * hidden;
    float gate = row[i];
    out[(long long)blockIdx.x * hidden + i] = from_float<T>(gate / (1.f + expf(-gate)) * row[hidden + i]);
}

extern "C" __global__ void silu_mul_f32(const float* gate_up, float* out, int hidden) {
    silu_mul(gate_up, out, hidden);
}

extern "C" __global__ void silu_mul_bf16(const float* gate_up, bf16* out, int hidden) {
    silu_mul(gate_up, out, hidden);
}
