// Choosing the next token on the device, so that only its id goes back to
// the host. One block of 1024 threads; the id is written to `out[0]`.

// Is candidate (v, i) better than (best, at)? Larger wins, the lower index
// on ties, NaN never (as `sampling::argmax` on the host).
__device__ __forceinline__ bool better(float v, int i, float best, int at) {
    if (isnan(v)) return false;
    if (at < 0 || isnan(best)) return true;
    return v > best || (v == best && i < at);
}

__device__ int block_argmax(const float* logits, int n) {
    __shared__ float values[32];
    __shared__ int indices[32];
    float best = 0.f;
    int at = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        if (better(logits[i], i, best, at)) { best = logits[i]; at = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, best, o);
        int i = __shfl_xor_sync(0xffffffffu, at, o);
        if (i >= 0 && better(v, i, best, at)) { best = v; at = i; }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) { values[warp] = best; indices[warp] = at; }
    __syncthreads();
    if (warp == 0) {
        best = lane < (int)(blockDim.x >> 5) ? values[lane] : 0.f;
        at = lane < (int)(blockDim.x >> 5) ? indices[lane] : -1;
        for (int o = 16; o > 0; o >>= 1) {
            float v = __shfl_xor_sync(0xffffffffu, best, o);
            int i = __shfl_xor_sync(0xffffffffu, at, o);
            if (i >= 0 && better(v, i, best, at)) { best = v; at = i; }
        }
        if (lane == 0) indices[0] = at < 0 ? 0 : at;
    }
    __syncthreads();
    return indices[0];
}

extern "C" __global__ void argmax_f32(const float* logits, int n, unsigned int* out) {
    int at = block_argmax(logits, n);
    if (threadIdx.x == 0) out[0] = (unsigned int)at;
}

// Greedy choice over many blocks: each block finds the best of its
// contiguous chunk of `chunk` logits (index -1 when all are NaN), then
// argmax_merge_f32 (one block) picks the best chunk winner, the lower index
// on ties. One block over 128k logits reads at one SM's bandwidth; this
// spreads the read over the GPU.
extern "C" __global__ void argmax_chunks_f32(const float* logits, int n, int chunk, float* best_values,
                                             int* best_indices) {
    int begin = blockIdx.x * chunk;
    int at = block_argmax(logits + begin, min(chunk, n - begin));
    if (threadIdx.x == 0) {
        float v = logits[begin + at];
        best_values[blockIdx.x] = v;
        best_indices[blockIdx.x] = isnan(v) ? -1 : begin + at;
    }
}

extern "C" __global__ void argmax_merge_f32(const float* best_values, const int* best_indices, int chunks,
                                            unsigned int* out) {
    if (threadIdx.x != 0) return;
    float best = 0.f;
    int at = -1;
    for (int c = 0; c < chunks; c++) {
        if (best_indices[c] >= 0 && better(best_values[c], best_indices[c], best, at)) {
            best = best_values[c];
            at = best_indices[c];
        }
    }
    out[0] = at < 0 ? 0u : (unsigned int)at;
}

// An unsigned key that orders floats as their values do (NaN lowest).
__device__ __forceinline__ unsigned int order_key(float v) {
    if (isnan(v)) return 0u;
    unsigned int u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ unsigned int block_count(unsigned int c, unsigned int* scratch) {
    for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = c;
    __syncthreads();
    c = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0u;
    for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
    return c;
}

__device__ double block_sum_double(double v, double* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Temperature sampling among the `top_k` likeliest tokens (0: all), with the
// uniform draw `u` in [0, 1) made by the host's seeded generator. Weights are
// exp((logit - max) / temperature); the token is the first, in index order,
// whose running sum of weights reaches u · total. With top_k, every token
// tied with the k-th largest logit is kept.
extern "C" __global__ void sample_f32(const float* logits, int n, float temperature, int top_k, float u,
                                      unsigned int* out) {
    __shared__ unsigned int counts[32];
    __shared__ double sums[32];
    __shared__ double prefix[1024];
    __shared__ int chosen, last;
    int greedy = block_argmax(logits, n);
    float largest = logits[greedy];
    if (!(temperature > 0.f) || isnan(largest) || isinf(largest)) {
        if (threadIdx.x == 0) out[0] = (unsigned int)greedy;
        return;
    }
    // The k-th largest key: the largest t with at least k keys >= t, bit by bit.
    unsigned int threshold = 0u;
    if (top_k > 0 && top_k < n) {
        for (int bit = 31; bit >= 0; bit--) {
            unsigned int candidate = threshold | (1u << bit);
            unsigned int c = 0;
            for (int i = threadIdx.x; i < n; i += blockDim.x) c += order_key(logits[i]) >= candidate;
            if (block_count(c, counts) >= (unsigned int)top_k) threshold = candidate;
        }
    }
    // Each thread owns a contiguous run of indices.
    int per = (n + blockDim.x - 1) / blockDim.x;
    int begin = min(n, (int)threadIdx.x * per), end = min(n, begin + per);
    double own = 0.0;
    for (int i = begin; i < end; i++) {
        float v = logits[i];
        if (!isnan(v) && order_key(v) >= threshold) own += exp((double)(v - largest) / temperature);
    }
    double total = block_sum_double(own, sums);
    prefix[threadIdx.x] = own;
    if (threadIdx.x == 0) { chosen = n; last = greedy; }
    __syncthreads();
    // Exclusive prefix of the per-thread sums (1024 entries, done by one warp).
    if (threadIdx.x < 32) {
        double carry = 0.0;
        int stride = blockDim.x / 32;
        double local[32];
        for (int j = 0; j < stride; j++) local[j] = prefix[threadIdx.x * stride + j];
        double mine = 0.0;
        for (int j = 0; j < stride; j++) mine += local[j];
        double before = mine;
        for (int o = 1; o < 32; o <<= 1) {
            double other = __shfl_up_sync(0xffffffffu, before, o);
            if ((int)threadIdx.x >= o) before += other;
        }
        carry = before - mine;
        for (int j = 0; j < stride; j++) {
            prefix[threadIdx.x * stride + j] = carry;
            carry += local[j];
        }
    }
    __syncthreads();
    double target = (double)u * total;
    double running = prefix[threadIdx.x];
    int found = n, last_kept = -1;
    for (int i = begin; i < end; i++) {
        float v = logits[i];
        if (isnan(v) || order_key(v) < threshold) continue;
        running += exp((double)(v - largest) / temperature);
        last_kept = i;
        if (running >= target) { found = i; break; }
    }
    if (found < n) atomicMin(&chosen, found);
    __syncthreads();
    if (last_kept >= 0 && chosen == n) atomicMax(&last, last_kept);
    __syncthreads();
    if (threadIdx.x == 0) out[0] = (unsigned int)(chosen < n ? chosen : last);
}
