// RMSNorm of f32 rows: out = x / sqrt(mean(x²) + eps) · w, written in the
// model's storage type for the next matrix product. Grid: one block per row;
// any whole number of warps (the host uses up to 1024 threads, so rows of
// up to 4096 are read from memory once).

#define CACHED 4  // elements per thread kept in registers between the two passes

template <typename T>
__device__ void rmsnorm(const float* x, const float* w, T* out, int dim, float eps) {
    __shared__ float scratch[32];
    const float* row = x + (long long)blockIdx.x * dim;
    float cached[CACHED];
    float squares = 0.f;
#pragma unroll
    for (int c = 0; c < CACHED; c++) {
        int i = threadIdx.x + c * blockDim.x;
        cached[c] = i < dim ? row[i] : 0.f;
        squares += cached[c] * cached[c];
    }
    for (int i = threadIdx.x + CACHED * blockDim.x; i < dim; i += blockDim.x) squares += row[i] * row[i];
    squares = block_sum(squares, scratch);
    float inverse = 1.f / sqrtf(squares / (float)dim + eps);
    T* o = out + (long long)blockIdx.x * dim;
#pragma unroll
    for (int c = 0; c < CACHED; c++) {
        int i = threadIdx.x + c * blockDim.x;
        if (i < dim) o[i] = from_float<T>(cached[c] * inverse * w[i]);
    }
    for (int i = threadIdx.x + CACHED * blockDim.x; i < dim; i += blockDim.x) {
        o[i] = from_float<T>(row[i] * inverse * w[i]);
    }
}

extern "C" __global__ void rmsnorm_f32(const float* x, const float* w, float* out, int dim, float eps) {
    rmsnorm(x, w, out, dim, eps);
}

extern "C" __global__ void rmsnorm_bf16(const float* x, const float* w, bf16* out, int dim, float eps) {
    rmsnorm(x, w, out, dim, eps);
}
