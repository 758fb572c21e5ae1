// RMSNorm of f32 rows: out = x / sqrt(mean(x²) + eps) · w, written in the
// model's storage type for the next matrix product. Grid: one block per row.

template <typename T>
__device__ void rmsnorm(const float* x, const float* w, T* out, int dim, float eps) {
    __shared__ float scratch[32];
    const float* row = x + (long long)blockIdx.x * dim;
    float squares = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) squares += row[i] * row[i];
    squares = block_sum(squares, scratch);
    float inverse = 1.f / sqrtf(squares / (float)dim + eps);
    T* o = out + (long long)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = from_float<T>(row[i] * inverse * w[i]);
}

extern "C" __global__ void rmsnorm_f32(const float* x, const float* w, float* out, int dim, float eps) {
    rmsnorm(x, w, out, dim, eps);
}

extern "C" __global__ void rmsnorm_bf16(const float* x, const float* w, bf16* out, int dim, float eps) {
    rmsnorm(x, w, out, dim, eps);
}
