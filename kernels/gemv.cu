// Matrix-vector products for decoding steps (one token): y = W·x, or
// y += W·x with `accumulate` (the residual add). W is row-major (rows ×
// cols) in the storage type, x is in the storage type, y is f32. A decoding
// step only streams the weights once, so this is a bandwidth problem: one
// warp per row, 16-byte loads, four of them in flight per lane. The host
// uses these only when cols is a multiple of 8 (so every row is 16-byte
// aligned) and cuBLAS otherwise and for prompts.
//
// Grid: ceil(rows / 8); 256 threads (8 warps, one row each).

__device__ __forceinline__ float dot8(uint4 w, uint4 x) {
    const unsigned int ws[4] = {w.x, w.y, w.z, w.w};
    const unsigned int xs[4] = {x.x, x.y, x.z, x.w};
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        acc += __uint_as_float(ws[i] << 16) * __uint_as_float(xs[i] << 16);
        acc += __uint_as_float(ws[i] & 0xffff0000u) * __uint_as_float(xs[i] & 0xffff0000u);
    }
    return acc;
}

__device__ __forceinline__ float dot8(float4 w0, float4 w1, float4 x0, float4 x1) {
    return w0.x * x0.x + w0.y * x0.y + w0.z * x0.z + w0.w * x0.w + w1.x * x1.x + w1.y * x1.y + w1.z * x1.z +
           w1.w * x1.w;
}

__device__ __forceinline__ void finish_row(float acc, float* y, int row, int accumulate) {
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0) y[row] = accumulate ? y[row] + acc : acc;
}

extern "C" __global__ void __launch_bounds__(256) gemv_bf16(const bf16* w, const bf16* x, float* y, int rows,
                                                            int cols, int accumulate) {
    const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const uint4* wr = (const uint4*)(w + (long long)row * cols);
    const uint4* xv = (const uint4*)x;
    const int vectors = cols / 8;
    float acc = 0.f;
    int i = lane;
    for (; i + 96 < vectors; i += 128) {
        uint4 a = wr[i], b = wr[i + 32], c = wr[i + 64], d = wr[i + 96];
        acc += dot8(a, xv[i]) + dot8(b, xv[i + 32]) + dot8(c, xv[i + 64]) + dot8(d, xv[i + 96]);
    }
    for (; i < vectors; i += 32) acc += dot8(wr[i], xv[i]);
    finish_row(acc, y, row, accumulate);
}

extern "C" __global__ void __launch_bounds__(256) gemv_f32(const float* w, const float* x, float* y, int rows,
                                                           int cols, int accumulate) {
    const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float4* wr = (const float4*)(w + (long long)row * cols);
    const float4* xv = (const float4*)x;
    const int pairs = cols / 8;  // two float4 per step
    float acc = 0.f;
    int i = lane;
    for (; i + 32 < pairs; i += 64) {
        float4 a0 = wr[2 * i], a1 = wr[2 * i + 1], b0 = wr[2 * (i + 32)], b1 = wr[2 * (i + 32) + 1];
        acc += dot8(a0, a1, xv[2 * i], xv[2 * i + 1]) + dot8(b0, b1, xv[2 * (i + 32)], xv[2 * (i + 32) + 1]);
    }
    for (; i < pairs; i += 32) acc += dot8(wr[2 * i], wr[2 * i + 1], xv[2 * i], xv[2 * i + 1]);
    finish_row(acc, y, row, accumulate);
}
