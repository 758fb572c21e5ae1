// Flash attention (FlashAttention-2 style): key/value tiles in shared
// memory, an online softmax, f32 accumulation, a causal mask and
// grouped-query heads. Three paths:
//
// - flash_prefill_mma{64,128}_{bf16,f16}: prompts, on the tensor cores
//   (mma.sync m16n8k16, sm_80 and later) for head sizes 64 and 128;
// - flash_prefill_{f32,bf16}: prompts, on the ordinary cores, for f32 and
//   any even head size up to 128;
// - flash_decode_{f32,bf16} + flash_decode_combine_{f32,bf16}: one query
//   row per head (a decoding step), keys split over blocks whose partial
//   results are then merged.
//
// Layouts: q and out (seq, heads·D); k and v (capacity, kv_heads·D). Query
// i is at position offset + i and sees keys 0 ..= offset + i. Query head h
// reads key/value head h / (heads / kv_heads).

// ---------------------------------------------------------------- tensor cores

// Every kernel's dynamic shared memory (its size is set at launch).
extern __shared__ __align__(16) unsigned char dynamic_shared[];

__device__ __forceinline__ unsigned int shared_address(const void* p) {
    unsigned int a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void ldmatrix_x4(unsigned int* r, unsigned int address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned int* r, unsigned int address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

// 16 bytes from global to shared memory without passing through registers;
// `bytes` 0 fills the destination with zeros.
__device__ __forceinline__ void copy_async16(void* shared, const void* global, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(shared)), "l"(global), "r"(bytes));
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;"); }
__device__ __forceinline__ void copy_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;"); }
__device__ __forceinline__ void copy_async_wait_all() { asm volatile("cp.async.wait_group 0;"); }

// 2^x with the hardware approximation (relative error about 2^-22; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

struct Bf16Mma {
    // Two floats as a pair of bf16, `lo` in the low half.
    static __device__ __forceinline__ unsigned int pack(float lo, float hi) {
        unsigned int r;
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
    static __device__ __forceinline__ void mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

struct F16Mma {
    static __device__ __forceinline__ unsigned int pack(float lo, float hi) {
        unsigned int r;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
    static __device__ __forceinline__ void mma(float* c, const unsigned int* a, unsigned int b0, unsigned int b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

#define MMA_ROWS 64   // query rows per block: 4 warps of 16
#define MMA_KEYS 64   // keys per shared-memory tile

// Two adjacent 16-bit elements of row `row`, or zeros past the last row.
__device__ __forceinline__ unsigned int pair_at(const unsigned short* base, int row, int rows, long long stride,
                                                int column) {
    if (row >= rows) return 0u;
    return *(const unsigned int*)(base + row * stride + column);
}

// Grid: (ceil(seq / 64), heads); 128 threads; dynamic shared memory
// mma_shared_bytes(D): two stages of K and V tiles, so that the next tile
// loads (cp.async) while this one is computed. scale_log2 = log2(e) / sqrt(D).
template <typename M, int D>
__device__ void flash_prefill_mma(const unsigned short* q, const unsigned short* k, const unsigned short* v,
                                  unsigned short* out, int seq, int offset, int heads, int kv_heads,
                                  float scale_log2) {
    constexpr int STRIDE = D + 8;  // padded rows: conflict-free ldmatrix
    constexpr int TILE = MMA_KEYS * STRIDE;
    unsigned short* tiles = (unsigned short*)dynamic_shared;  // [stage][K, V][MMA_KEYS][STRIDE]
    const int h = blockIdx.y, g = h / (heads / kv_heads);
    // The last rows see the most keys: start them first.
    const int block_row = (gridDim.x - 1 - blockIdx.x) * MMA_ROWS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int quad_row = lane >> 2, quad_col = (lane & 3) * 2;
    const long long q_stride = (long long)heads * D, kv_stride = (long long)kv_heads * D;
    const int r0 = block_row + warp * 16 + quad_row, r1 = r0 + 8;

    const int keys = offset + min(seq, block_row + MMA_ROWS);  // keys the block needs
    const int warp_last = offset + block_row + warp * 16 + 15;   // last position of this warp
    const int pos0 = offset + r0, pos1 = offset + r1;
    const unsigned short* kg = k + g * D;
    const unsigned short* vg = v + g * D;
    const int tile_count = (keys + MMA_KEYS - 1) / MMA_KEYS;

    // Issues the copies of key tile `t` into stage t mod 2 (zeros past `keys`).
    auto load = [&](int t) {
        unsigned short* ks = tiles + (t & 1) * 2 * TILE;
        unsigned short* vs = ks + TILE;
        constexpr int VECTORS = D / 8;
        for (int e = threadIdx.x; e < MMA_KEYS * VECTORS; e += blockDim.x) {
            int row = e / VECTORS, column = (e % VECTORS) * 8;
            long long key = (long long)t * MMA_KEYS + row;
            int bytes = key < keys ? 16 : 0;
            long long at = (key < keys ? key : 0) * kv_stride + column;
            copy_async16(ks + row * STRIDE + column, kg + at, bytes);
            copy_async16(vs + row * STRIDE + column, vg + at, bytes);
        }
        copy_async_commit();
    };
    load(0);

    unsigned int qa[D / 16][4];
    const unsigned short* qh = q + h * D;
#pragma unroll
    for (int t = 0; t < D / 16; t++) {
        qa[t][0] = pair_at(qh, r0, seq, q_stride, t * 16 + quad_col);
        qa[t][1] = pair_at(qh, r1, seq, q_stride, t * 16 + quad_col);
        qa[t][2] = pair_at(qh, r0, seq, q_stride, t * 16 + quad_col + 8);
        qa[t][3] = pair_at(qh, r1, seq, q_stride, t * 16 + quad_col + 8);
    }
    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

    for (int tile = 0; tile < tile_count; tile++) {
        if (tile + 1 < tile_count) {
            load(tile + 1);
            copy_async_wait_all_but_one();
        } else {
            copy_async_wait_all();
        }
        __syncthreads();
        const int j0 = tile * MMA_KEYS;
        const unsigned short* ks = tiles + (tile & 1) * 2 * TILE;
        const unsigned short* vs = ks + TILE;
        if (j0 <= warp_last) {  // else every key of the tile is after every row of this warp
            // S = Q·Kᵀ for 16 rows × 64 keys.
            float s[MMA_KEYS / 8][4];
#pragma unroll
            for (int n = 0; n < MMA_KEYS / 8; n++) {
                s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
                for (int t = 0; t < D / 32; t++) {
                    unsigned int b[4];
                    int matrix = lane >> 3;
                    ldmatrix_x4(b, shared_address(ks + (n * 8 + (lane & 7)) * STRIDE + t * 32 + matrix * 8));
                    M::mma(s[n], qa[2 * t], b[0], b[1]);
                    M::mma(s[n], qa[2 * t + 1], b[2], b[3]);
                }
            }
            // Mask, scale into the log2 domain, and the running maxima.
            float x0 = -INFINITY, x1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < MMA_KEYS / 8; n++) {
                int key = j0 + n * 8 + quad_col;
                s[n][0] = key <= pos0 ? s[n][0] * scale_log2 : -INFINITY;
                s[n][1] = key + 1 <= pos0 ? s[n][1] * scale_log2 : -INFINITY;
                s[n][2] = key <= pos1 ? s[n][2] * scale_log2 : -INFINITY;
                s[n][3] = key + 1 <= pos1 ? s[n][3] * scale_log2 : -INFINITY;
                x0 = fmaxf(x0, fmaxf(s[n][0], s[n][1]));
                x1 = fmaxf(x1, fmaxf(s[n][2], s[n][3]));
            }
            x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
            x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
            x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
            x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
            float n0 = fmaxf(m0, x0), n1 = fmaxf(m1, x1);
            // A row with nothing visible yet keeps a finite base (no inf - inf).
            float base0 = n0 == -INFINITY ? 0.f : n0, base1 = n1 == -INFINITY ? 0.f : n1;
            float c0 = fast_exp2(m0 - base0), c1 = fast_exp2(m1 - base1);
            m0 = n0;
            m1 = n1;
            float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
            for (int n = 0; n < MMA_KEYS / 8; n++) {
                s[n][0] = fast_exp2(s[n][0] - base0);
                s[n][1] = fast_exp2(s[n][1] - base0);
                s[n][2] = fast_exp2(s[n][2] - base1);
                s[n][3] = fast_exp2(s[n][3] - base1);
                sum0 += s[n][0] + s[n][1];
                sum1 += s[n][2] + s[n][3];
            }
            l0 = l0 * c0 + sum0;
            l1 = l1 * c1 + sum1;
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                o[n][0] *= c0;
                o[n][1] *= c0;
                o[n][2] *= c1;
                o[n][3] *= c1;
            }
            // O += P·V, P taken straight from the score registers.
#pragma unroll
            for (int t = 0; t < MMA_KEYS / 16; t++) {
                unsigned int a[4];
                a[0] = M::pack(s[2 * t][0], s[2 * t][1]);
                a[1] = M::pack(s[2 * t][2], s[2 * t][3]);
                a[2] = M::pack(s[2 * t + 1][0], s[2 * t + 1][1]);
                a[3] = M::pack(s[2 * t + 1][2], s[2 * t + 1][3]);
#pragma unroll
                for (int p = 0; p < D / 16; p++) {
                    unsigned int b[4];
                    int matrix = lane >> 3;
                    int key = t * 16 + (matrix & 1) * 8 + (lane & 7);
                    ldmatrix_x4_trans(b, shared_address(vs + key * STRIDE + p * 16 + (matrix >> 1) * 8));
                    M::mma(o[2 * p], a, b[0], b[1]);
                    M::mma(o[2 * p + 1], a, b[2], b[3]);
                }
            }
        }
        __syncthreads();  // the next iteration's copies overwrite this stage
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float i0 = 1.f / l0, i1 = 1.f / l1;
    unsigned short* oh = out + h * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        int column = n * 8 + quad_col;
        if (r0 < seq) *(unsigned int*)(oh + r0 * q_stride + column) = M::pack(o[n][0] * i0, o[n][1] * i0);
        if (r1 < seq) *(unsigned int*)(oh + r1 * q_stride + column) = M::pack(o[n][2] * i1, o[n][3] * i1);
    }
}

// `blocks`: blocks per SM to fit in registers (4 at D = 64 caps them at 128
// per thread, 3 at D = 128 at 168), for more warps to hide latency.
#define MMA_KERNEL(name, M, D, blocks)                                                                          \
    extern "C" __global__ void __launch_bounds__(128, blocks) name(const unsigned short* q, const unsigned short* k,   \
                                                           const unsigned short* v, unsigned short* out,      \
                                                           int seq, int offset, int heads, int kv_heads,      \
                                                           float scale_log2) {                                \
        flash_prefill_mma<M, D>(q, k, v, out, seq, offset, heads, kv_heads, scale_log2);                      \
    }

MMA_KERNEL(flash_prefill_mma64_bf16, Bf16Mma, 64, 4)
MMA_KERNEL(flash_prefill_mma128_bf16, Bf16Mma, 128, 3)
MMA_KERNEL(flash_prefill_mma64_f16, F16Mma, 64, 4)
MMA_KERNEL(flash_prefill_mma128_f16, F16Mma, 128, 3)

// ---------------------------------------------------------------- ordinary cores

#define SIMT_ROWS 8   // query rows per block, one warp each
#define SIMT_KEYS 32  // keys per shared-memory tile, one per lane

// Grid: (ceil(seq / 8), heads); 256 threads; dynamic shared memory
// (32·(D+1) + 32·D + 8·D) floats. D even, at most 128.
template <typename T>
__device__ void flash_prefill_simt(const T* q, const T* k, const T* v, T* out, int seq, int offset, int heads,
                                   int kv_heads, int D, float scale) {
    float* tiles = (float*)dynamic_shared;
    float* ks = tiles;                          // [SIMT_KEYS][D + 1]
    float* vs = ks + SIMT_KEYS * (D + 1);       // [SIMT_KEYS][D]
    float* qs = vs + SIMT_KEYS * D;             // [SIMT_ROWS][D]
    const int h = blockIdx.y, g = h / (heads / kv_heads);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = blockIdx.x * SIMT_ROWS, i = row0 + warp;
    const long long q_stride = (long long)heads * D, kv_stride = (long long)kv_heads * D;
    for (int d = lane; d < D; d += 32) qs[warp * D + d] = i < seq ? to_float(q[i * q_stride + h * D + d]) * scale : 0.f;
    float o[4] = {0.f, 0.f, 0.f, 0.f};  // d = lane + 32·c
    float m = -INFINITY, l = 0.f;
    const int keys = offset + min(seq, row0 + SIMT_ROWS);
    for (int j0 = 0; j0 < keys; j0 += SIMT_KEYS) {
        __syncthreads();
        for (int e = threadIdx.x; e < SIMT_KEYS * D; e += blockDim.x) {
            int kj = e / D, d = e % D;
            long long key = j0 + kj;
            bool inside = key < keys;
            ks[kj * (D + 1) + d] = inside ? to_float(k[key * kv_stride + g * D + d]) : 0.f;
            vs[kj * D + d] = inside ? to_float(v[key * kv_stride + g * D + d]) : 0.f;
        }
        __syncthreads();
        if (i >= seq || j0 > offset + i) continue;
        int key = j0 + lane;
        float s = -INFINITY;
        if (key <= offset + i) {
            s = 0.f;
            for (int d = 0; d < D; d++) s += qs[warp * D + d] * ks[lane * (D + 1) + d];
        }
        float m_new = fmaxf(m, warp_max(s));  // finite: key j0 <= offset + i is visible
        float correction = expf(m - m_new);
        float p = s == -INFINITY ? 0.f : expf(s - m_new);
        l = l * correction + warp_sum(p);
        m = m_new;
#pragma unroll
        for (int c = 0; c < 4; c++) o[c] *= correction;
        for (int j = 0; j < SIMT_KEYS; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
            if (pj == 0.f) continue;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int d = lane + 32 * c;
                if (d < D) o[c] += pj * vs[j * D + d];
            }
        }
    }
    if (i >= seq) return;
#pragma unroll
    for (int c = 0; c < 4; c++) {
        int d = lane + 32 * c;
        if (d < D) out[i * q_stride + h * D + d] = from_float<T>(o[c] / l);
    }
}

extern "C" __global__ void flash_prefill_f32(const float* q, const float* k, const float* v, float* out, int seq,
                                             int offset, int heads, int kv_heads, int head_dim, float scale) {
    flash_prefill_simt(q, k, v, out, seq, offset, heads, kv_heads, head_dim, scale);
}

extern "C" __global__ void flash_prefill_bf16(const bf16* q, const bf16* k, const bf16* v, bf16* out, int seq,
                                              int offset, int heads, int kv_heads, int head_dim, float scale) {
    flash_prefill_simt(q, k, v, out, seq, offset, heads, kv_heads, head_dim, scale);
}

// ---------------------------------------------------------------- decoding

#define DECODE_KEYS 32    // keys per block: one per lane
#define DECODE_GROUP 8    // query heads per block at most (of one key/value head)
#define DECODE_SLOTS 4    // warps per block

// q · row over D elements (q in f32 shared memory).
template <typename T>
__device__ __forceinline__ float dot_row(const T* row, const float* q, int D) {
    float acc = 0.f;
    for (int d = 0; d < D; d++) acc += q[d] * to_float(row[d]);
    return acc;
}

// bf16 rows in 16-byte loads (rows are 16-byte aligned when D is a multiple of 8).
template <>
__device__ __forceinline__ float dot_row<bf16>(const bf16* row, const float* q, int D) {
    if ((D & 7) != 0) {
        float acc = 0.f;
        for (int d = 0; d < D; d++) acc += q[d] * to_float(row[d]);
        return acc;
    }
    float acc = 0.f;
    for (int d = 0; d < D; d += 8) {
        uint4 packed = *(const uint4*)(row + d);
        unsigned int words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
        for (int w = 0; w < 4; w++) {
            acc += q[d + 2 * w] * __uint_as_float(words[w] << 16);
            acc += q[d + 2 * w + 1] * __uint_as_float(words[w] & 0xffff0000u);
        }
    }
    return acc;
}

// One query row per head over `total` keys, split into many small blocks
// (a decoding step is too little work to fill the GPU otherwise). A block
// takes up to 8 query heads sharing one key/value head and 32 keys: lane i
// of each warp scores key i for the warp's heads, then a warp per head
// does that head's softmax. Grid: (kv_heads · ceil(rep / 8), ceil(total /
// 32)) with rep = heads / kv_heads; 128 threads; dynamic shared memory
// (8·D + 8·32) floats. Writes each block's unnormalized output, maximum
// and sum per query head, merged by flash_decode_combine.
template <typename T>
__device__ void flash_decode(const T* q, const T* k, const T* v, float* part_out, float* part_stats, int total,
                             int heads, int kv_heads, int D, float scale) {
    float* qs = (float*)dynamic_shared;        // [count][D]
    float* scores = qs + DECODE_GROUP * D;     // [count][DECODE_KEYS]
    const int rep = heads / kv_heads;
    const int groups = (rep + DECODE_GROUP - 1) / DECODE_GROUP;
    const int g = blockIdx.x / groups;
    const int first = g * rep + (blockIdx.x % groups) * DECODE_GROUP;
    const int count = min(DECODE_GROUP, g * rep + rep - first);
    const int split = blockIdx.y, begin = split * DECODE_KEYS, end = min(total, begin + DECODE_KEYS);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long kv_stride = (long long)kv_heads * D;
    for (int e = threadIdx.x; e < count * D; e += blockDim.x) qs[e] = to_float(q[(long long)first * D + e]) * scale;
    __syncthreads();
    const int j = begin + lane;
    for (int r = warp; r < count; r += DECODE_SLOTS) {
        scores[r * DECODE_KEYS + lane] = j < end ? dot_row(k + j * kv_stride + g * D, qs + r * D, D) : -INFINITY;
    }
    // Each warp's softmax reads only the scores its own lanes wrote.
    for (int r = warp; r < count; r += DECODE_SLOTS) {
        float s = scores[r * DECODE_KEYS + lane];
        float largest = warp_max(s);  // finite: lane 0's key is always inside
        float p = j < end ? expf(s - largest) : 0.f;
        scores[r * DECODE_KEYS + lane] = p;
        float sum = warp_sum(p);
        if (lane == 0) {
            part_stats[((long long)split * heads + first + r) * 2] = largest;
            part_stats[((long long)split * heads + first + r) * 2 + 1] = sum;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < count * D; e += blockDim.x) {
        int r = e / D, d = e % D;
        float out = 0.f;
        const float* p = scores + r * DECODE_KEYS - begin;
        for (int key = begin; key < end; key++) out += p[key] * to_float(v[key * kv_stride + g * D + d]);
        part_out[((long long)split * heads + first + r) * D + d] = out;
    }
}

// Merges the blocks of flash_decode. Grid: heads; threads: any.
template <typename T>
__device__ void flash_decode_combine(const float* part_out, const float* part_stats, T* out, int splits, int heads,
                                     int D) {
    const int h = blockIdx.x;
    float largest = -INFINITY;
    for (int s = 0; s < splits; s++) largest = fmaxf(largest, part_stats[((long long)s * heads + h) * 2]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float total = 0.f, acc = 0.f;
        for (int s = 0; s < splits; s++) {
            long long at = (long long)s * heads + h;
            float w = expf(part_stats[at * 2] - largest);
            total += w * part_stats[at * 2 + 1];
            acc += w * part_out[at * D + d];
        }
        out[h * D + d] = from_float<T>(acc / total);
    }
}

extern "C" __global__ void flash_decode_f32(const float* q, const float* k, const float* v, float* part_out,
                                            float* part_stats, int total, int heads, int kv_heads, int head_dim,
                                            float scale) {
    flash_decode(q, k, v, part_out, part_stats, total, heads, kv_heads, head_dim, scale);
}

extern "C" __global__ void flash_decode_bf16(const bf16* q, const bf16* k, const bf16* v, float* part_out,
                                             float* part_stats, int total, int heads, int kv_heads, int head_dim,
                                             float scale) {
    flash_decode(q, k, v, part_out, part_stats, total, heads, kv_heads, head_dim, scale);
}

extern "C" __global__ void flash_decode_combine_f32(const float* part_out, const float* part_stats, float* out,
                                                    int splits, int heads, int head_dim) {
    flash_decode_combine(part_out, part_stats, out, splits, heads, head_dim);
}

extern "C" __global__ void flash_decode_combine_bf16(const float* part_out, const float* part_stats, bf16* out,
                                                     int splits, int heads, int head_dim) {
    flash_decode_combine(part_out, part_stats, out, splits, heads, head_dim);
}
