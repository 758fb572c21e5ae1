// The softmax of naive attention: scaled, causally masked rows of the full
// score matrix.
//
// scores: (heads, seq, total) f32; probs: same shape in the storage type
// (may be `scores` itself for f32). Row r is query i = r mod seq at
// position offset + i, which sees keys 0 ..= offset + i; the rest get 0.
// Grid: one block per row.

template <typename T>
__device__ void causal_softmax(const float* scores, T* probs, int seq, int total, int offset, float scale) {
    __shared__ float scratch[32];
    long long r = blockIdx.x;
    int i = (int)(r % seq);
    int visible = min(total, offset + i + 1);
    const float* s = scores + r * total;
    T* p = probs + r * total;
    float largest = -INFINITY;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) largest = fmaxf(largest, s[j]);
    largest = block_max(largest, scratch);
    float sum = 0.f;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) sum += expf((s[j] - largest) * scale);
    sum = block_sum(sum, scratch);
    float inverse = 1.f / sum;
    for (int j = threadIdx.x; j < total; j += blockDim.x) {
        p[j] = from_float<T>(j < visible ? expf((s[j] - largest) * scale) * inverse : 0.f);
    }
}

extern "C" __global__ void causal_softmax_f32(float* scores, float* probs, int seq, int total, int offset,
                                              float scale) {
    causal_softmax(scores, probs, seq, total, offset, scale);
}

extern "C" __global__ void causal_softmax_bf16(const float* scores, bf16* probs, int seq, int total, int offset,
                                               float scale) {
    causal_softmax(scores, probs, seq, total, offset, scale);
}
