// Token embedding gather: row `ids[r]` of the table into row r of the f32
// residual stream. Grid: one block per token.

template <typename T>
__device__ void embedding(const T* table, const unsigned int* ids, float* x, int dim) {
    const T* row = table + (long long)ids[blockIdx.x] * dim;
    float* out = x + (long long)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) out[i] = to_float(row[i]);
}

extern "C" __global__ void embedding_f32(const float* table, const unsigned int* ids, float* x, int dim) {
    embedding(table, ids, x, dim);
}

extern "C" __global__ void embedding_bf16(const bf16* table, const unsigned int* ids, float* x, int dim) {
    embedding(table, ids, x, dim);
}
