// Rotary position embedding (the rotate-half convention of Hugging Face
// Llama) applied to the fused q/k/v projection, and the KV-cache append.
//
// qkv:     (seq, (heads + 2·kv_heads)·D) f32, rows [q | k | v]
// q_out:   (seq, heads·D) in the storage type
// k_cache, v_cache: (capacity, kv_heads·D); row `offset + s` is written
// inv_freq: D/2 inverse frequencies (f64, llama3 scaling already applied)
//
// Angles are computed in f64, as the CPU path does, so long positions keep
// their precision. Grid: one block per token.

template <typename T>
__device__ void rotary(const float* qkv, T* q_out, T* k_cache, T* v_cache, const double* inv_freq, int offset,
                       int heads, int kv_heads, int head_dim) {
    int s = blockIdx.x;
    int half = head_dim / 2;
    long long width = (long long)(heads + 2 * kv_heads) * head_dim;
    const float* row = qkv + s * width;
    long long position = (long long)offset + s;
    int pairs = (heads + kv_heads) * half;
    for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
        int head = p / half, i = p % half;
        double sine, cosine;
        sincos((double)position * inv_freq[i], &sine, &cosine);
        float c = (float)cosine, sn = (float)sine;
        const float* src = row + (long long)head * head_dim;
        float a = src[i], b = src[i + half];
        T* dst = head < heads ? q_out + (long long)s * heads * head_dim + (long long)head * head_dim
                              : k_cache + position * kv_heads * head_dim + (long long)(head - heads) * head_dim;
        dst[i] = from_float<T>(a * c - b * sn);
        dst[i + half] = from_float<T>(b * c + a * sn);
    }
    const float* v = row + (long long)(heads + kv_heads) * head_dim;
    for (int i = threadIdx.x; i < kv_heads * head_dim; i += blockDim.x) {
        v_cache[position * kv_heads * head_dim + i] = from_float<T>(v[i]);
    }
}

extern "C" __global__ void rotary_f32(const float* qkv, float* q_out, float* k_cache, float* v_cache,
                                      const double* inv_freq, int offset, int heads, int kv_heads, int head_dim) {
    rotary(qkv, q_out, k_cache, v_cache, inv_freq, offset, heads, kv_heads, head_dim);
}

extern "C" __global__ void rotary_bf16(const float* qkv, bf16* q_out, bf16* k_cache, bf16* v_cache,
                                       const double* inv_freq, int offset, int heads, int kv_heads, int head_dim) {
    rotary(qkv, q_out, k_cache, v_cache, inv_freq, offset, heads, kv_heads, head_dim);
}
