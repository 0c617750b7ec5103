/* mma.cl — a GEMM tile on NVIDIA tensor cores: TF32 inputs, fp32 accumulation, through
 * inline PTX `mma.sync.aligned.m16n8k8` (sm_80 and later). Needs gemm.cl's tile defines (BM,
 * BN, BK, GEMM_WG) before it.
 *
 * Only compiled when the prelude sets GEMM_MMA (the host tries it on devices whose compiler
 * takes inline PTX and falls back to the plain tile if the build fails). By default the tile
 * is APPROXIMATE: each input is rounded to TF32 (10-bit mantissa, round to nearest) when it is
 * stored to local memory, so |s̃ − s| ≤ (2^-10 + O(d·2^-22))·‖u‖·‖e‖ for one score; callers that
 * need fp32 results keep a margin of that size and recompute the survivors exactly (topk.cl).
 * With MMA_SPLIT3 (below) the products are fp32-grade instead (the CE's GEMMs).
 *
 * Shape: both operands row-major with k contiguous (queries and items: C = A·Bᵀ), BM = BN =
 * 128, BK = 16, 256 work-items = 8 warps in a 2 × 4 grid, each warp 64 × 32 outputs = 4 × 4
 * mma tiles of 16 × 8.
 * A work-item's accumulators acc[i][j] (i, j < 8) hold the outputs at
 *   row MMA_ROW(i) = wm·64 + (i/2)·16 + (i%2)·8 + g,  col MMA_COL(j) = wn·32 + (j/2)·8 + 2t + j%2
 * (wm = warp / 4, wn = warp % 4): the PTX ISA's m16n8k8 fragment layout (c0, c1 at row g,
 * columns 2t, 2t+1; c2, c3 eight rows below). Warps are consecutive runs of 32 local ids in a
 * 1-D work-group on NVIDIA's OpenCL. */

/* x rounded to TF32 (nearest, ties away), kept in an fp32 container; inf and NaN stay so. */
inline float mma_tf32_round(const float x)
{
    return as_float((as_uint(x) + 0x1000u) & 0xFFFFE000u);
}

#if defined(GEMM_MMA) && GEMM_MMA

#if BM != 128 || BN != 128 || GEMM_WG != 256 || BK != 16
#error "mma.cl: the tensor-core tile needs BM = BN = 128, BK = 16 and 256 work-items"
#endif

#ifndef MMA_SPLIT3
#define MMA_SPLIT3 0
#endif
/* MMA_SPLIT3 (3×TF32): local memory keeps the fp32 inputs; each fragment value x is split into
 * hi = x's top 19 bits (a TF32 value) and lo = x − hi (exact in fp32; the mma reads its top 19
 * bits), and a·b ≈ lo·hi + hi·lo + hi·hi: three TF32 mmas give products within a few fp32 ulps
 * (the dropped lo·lo and lo's own truncation are ~2^-21 of |a·b|). H200, M = 8,192,
 * N = 256,000, K = 2,304: 62.5 TFLOP/s against cuBLAS fp32's 51.7 (and 103 for one TF32 mma). */
#define MMA_HI(x) ((x) & 0xFFFFE000u)
#define MMA_LO(x) as_uint(as_float(x) - as_float(MMA_HI(x)))
#define MMA_LDK (BK + 4)             /* local row of a k-contiguous operand: BK values of k */
#define MMA_LDO (BM + 8)             /* local row of a k-major operand: BM values of m or n */
#define MMA_S (BM * MMA_LDK / 4)     /* one operand buffer, in float4 (>= BK·MMA_LDO / 4) */

#define MMA_LANE (get_local_id(0) & 31)
#define MMA_WARP (get_local_id(0) >> 5)
#define MMA_ROW(i) ((MMA_WARP >> 2) * 64 + ((i) >> 1) * 16 + ((i) & 1) * 8 + (MMA_LANE >> 2))
#define MMA_COL(j) ((MMA_WARP & 3) * 32 + ((j) >> 1) * 8 + 2 * (MMA_LANE & 3) + ((j) & 1))

#ifndef MMA_EMULATE
#define MMA_EMULATE 0
#endif
#if MMA_EMULATE
/* MMA_EMULATE (testing, any device): mma.sync itself emulated — each warp's fragments go
 * through a local scratch (6 values per lane; two barriers per mma, every work-item calls it
 * in the same order), and each lane forms its four outputs from the PTX ISA's m16n8k8 TF32
 * fragment layout: A[r][k] is held by lane (r % 8)·4 + k % 4 as a_{r/8 + 2·(k/4)}, B[k][n] by
 * lane n·4 + k % 4 as b_{k/4}; inputs read as TF32 (the low 13 bits ignored). So the tile's
 * fragment loads are tested too; only the instruction is not. */
#define MMA_XS4 (8 * 32 * 6 / 4) /* the scratch, in float4, after the A buffers */
#define MMA_UNROLL /* loops kept: PoCL's work-group compiler and the barriers inside */
inline void mma_emulated(float *c0, float *c1, float *c2, float *c3, const uint a0,
                         const uint a1, const uint a2, const uint a3, const uint b0,
                         const uint b1, __local uint *xs)
{
    const int lid = get_local_id(0), lane = lid & 31, g = lane >> 2, t = lane & 3;
    __local uint *w = xs + (lid >> 5) * 32 * 6;
    barrier(CLK_LOCAL_MEM_FENCE); /* the previous call's reads done */
    w[lane * 6 + 0] = a0, w[lane * 6 + 1] = a1, w[lane * 6 + 2] = a2, w[lane * 6 + 3] = a3;
    w[lane * 6 + 4] = b0, w[lane * 6 + 5] = b1;
    barrier(CLK_LOCAL_MEM_FENCE);
    float s0 = *c0, s1 = *c1, s2 = *c2, s3 = *c3;
    for (int k = 0; k < 8; k++) {
        const int kl = k & 3, kh = k >> 2;
        const float ag = as_float(MMA_HI(w[(g * 4 + kl) * 6 + 2 * kh]));
        const float ag8 = as_float(MMA_HI(w[(g * 4 + kl) * 6 + 1 + 2 * kh]));
        const float bc0 = as_float(MMA_HI(w[(2 * t * 4 + kl) * 6 + 4 + kh]));
        const float bc1 = as_float(MMA_HI(w[((2 * t + 1) * 4 + kl) * 6 + 4 + kh]));
        s0 = mad(ag, bc0, s0);
        s1 = mad(ag, bc1, s1);
        s2 = mad(ag8, bc0, s2);
        s3 = mad(ag8, bc1, s3);
    }
    *c0 = s0, *c1 = s1, *c2 = s2, *c3 = s3;
}
#define MMA_TF32(c0, c1, c2, c3, a0, a1, a2, a3, b0, b1)                                      \
    mma_emulated(&(c0), &(c1), &(c2), &(c3), a0, a1, a2, a3, b0, b1, mma_xs)
#else
#define MMA_XS4 0
#define MMA_UNROLL _Pragma("unroll")
/* d = a·b + d for one 16 × 8 × 8 tile; c0..c3 are four floats of the accumulator array. */
#define MMA_TF32(c0, c1, c2, c3, a0, a1, a2, a3, b0, b1)                                      \
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, "             \
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                                     \
        : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3)                                            \
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
#endif

/* One operand's 128 rows × BK values of k from k0 (rows o0 + lid/4 and + 64, k from
 * k0 + 4·(lid % 4)): two float4 per work-item, zero outside [0, olim) × [k0, kend). vec: the
 * operand's offset and row stride allow aligned float4 loads. */
inline void mma_load(float4 r[2], __global const float *P, const long ld, const int o0,
                     const int olim, const int k0, const int kend, const int vec)
{
    const int lid = get_local_id(0), gk = k0 + 4 * (lid & 3), n = kend - gk;
    for (int h = 0; h < 2; h++) {
        const int o = o0 + (lid >> 2) + 64 * h;
        float4 v = (float4)(0.0f);
        if (o < olim && n > 0) {
            __global const float *p = P + (long)o * ld + gk;
            if (vec && n >= 4) {
                v = *(__global const float4 *)p;
            } else {
                v.x = p[0];
                v.y = n > 1 ? p[1] : 0.0f;
                v.z = n > 2 ? p[2] : 0.0f;
                v.w = n > 3 ? p[3] : 0.0f;
            }
        }
        r[h] = v;
    }
}

/* An operand stored k-major instead (P[k·ld + o], o contiguous: G in dE = Gᵀ·H, E and H in
 * dH = G·E and dE), read into the same registers' worth: warp w takes the k rows k0 + w and
 * k0 + w + 8, its lanes a float4 each along o — one warp reads 512 contiguous bytes of a row.
 * Zero outside [0, olim) × [k0, kend). */
inline void mma_load_t(float4 r[2], __global const float *P, const long ld, const int o0,
                       const int olim, const int k0, const int kend, const int vec)
{
    const int lid = get_local_id(0), o = o0 + 4 * (lid & 31);
    for (int h = 0; h < 2; h++) {
        const int k = k0 + (lid >> 5) + 8 * h;
        float4 v = (float4)(0.0f);
        if (k < kend && o < olim) {
            __global const float *p = P + (long)k * ld + o;
            if (vec && o + 4 <= olim) {
                v = *(__global const float4 *)p;
            } else {
                v.x = p[0];
                v.y = o + 1 < olim ? p[1] : 0.0f;
                v.z = o + 2 < olim ? p[2] : 0.0f;
                v.w = o + 3 < olim ? p[3] : 0.0f;
            }
        }
        r[h] = v;
    }
}

/* A local input value: rounded to TF32, or kept whole for the 3×TF32 split. */
#if MMA_SPLIT3
#define MMA_IN(x) (x)
#else
#define MMA_IN(x) mma_tf32_round(x)
#endif

/* mma_load_t's registers to the local tile kept k-major, St[k][o] (row MMA_LDO): one 16-byte
 * store each, a quarter-warp's eight on 128 contiguous bytes. */
inline void mma_store_t(const float4 r[2], __local float4 *S4)
{
    const int lid = get_local_id(0);
    for (int h = 0; h < 2; h++) {
        const float4 v = r[h];
        S4[((lid >> 5) + 8 * h) * (MMA_LDO / 4) + (lid & 31)] =
            (float4)(MMA_IN(v.x), MMA_IN(v.y), MMA_IN(v.z), MMA_IN(v.w));
    }
}

/* The two float4 to local memory, rounded to TF32: rows are k-contiguous (S[o][k], row
 * MMA_LDK), so one 16-byte store each. */
inline void mma_store(const float4 r[2], __local float4 *S)
{
    const int lid = get_local_id(0);
    for (int h = 0; h < 2; h++) {
        const float4 v = r[h];
        S[((lid >> 2) + 64 * h) * (MMA_LDK / 4) + (lid & 3)] =
            (float4)(MMA_IN(v.x), MMA_IN(v.y), MMA_IN(v.z), MMA_IN(v.w));
    }
}

/* One operand's step, k-contiguous (t = 0) or k-major (t = 1; t is a constant at every call) */
#define MMA_LOAD(t, r, P, ld, o0, olim, k0, kend, vec)                                       \
    do {                                                                                     \
        if (t) mma_load_t(r, P, ld, o0, olim, k0, kend, vec);                                \
        else mma_load(r, P, ld, o0, olim, k0, kend, vec);                                    \
    } while (0)
#define MMA_STORE(t, r, S)                                                                   \
    do {                                                                                     \
        if (t) mma_store_t(r, S);                                                            \
        else mma_store(r, S);                                                                \
    } while (0)

/* acc = A[m0 : m0+128, kbeg : kend] · B[n0 : n0+128, kbeg : kend]ᵀ (ta = tb = 0: both operands
 * row-major with k contiguous, queries and items; ta / tb = 1: that operand stored k-major, A as
 * K × M, B as K × N), TF32-approximate (fp32-grade under MMA_SPLIT3), outputs in the
 * MMA_ROW / MMA_COL layout above. Local tiles: a k-contiguous operand as S[o][k] (row MMA_LDK
 * = 20 floats), a k-major one as St[k][o] (row MMA_LDO = 136): a fragment load — lane (g, t)
 * reads row g, k t — falls on bank (20g + t) or (136t + g) mod 32, 32 distinct banks either
 * way. Global loads are staged in registers one step ahead; one barrier per BK = 16. Ends
 * after a barrier. */
inline void gemm_tile_mma(const int M, const int N, __global const float *restrict A,
                          const long lda, __global const float *restrict B, const long ldb,
                          const int kbeg, const int kend, const int m0, const int n0,
                          __local float4 *As4, __local float4 *Bs4, const int va, const int vb,
                          const int ta, const int tb, float acc[8][8])
{
    const int lid = get_local_id(0);
    const int lane = lid & 31, warp = lid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
#if MMA_EMULATE
    __local uint *mma_xs = (__local uint *)(As4 + 2 * MMA_S); /* the kernels leave MMA_XS4 */
#endif

    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

    float4 ra[2], rb[2];
    const int nt = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
    if (nt > 0) {
        MMA_LOAD(ta, ra, A, lda, m0, M, kbeg, kend, va);
        MMA_LOAD(tb, rb, B, ldb, n0, N, kbeg, kend, vb);
        MMA_STORE(ta, ra, As4);
        MMA_STORE(tb, rb, Bs4);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int s = 0; s < nt; s++) {
        const int cur = s & 1;
        const int more = s + 1 < nt;
        if (more) {
            const int k0 = kbeg + (s + 1) * BK;
            MMA_LOAD(ta, ra, A, lda, m0, M, k0, kend, va);
            MMA_LOAD(tb, rb, B, ldb, n0, N, k0, kend, vb);
        }
        /* lane (g, t) reads element (row g, k t) of each fragment: in a k-contiguous tile at
         * g·MMA_LDK + t, in a k-major one at t·MMA_LDO + g; the steps along the row (x_o) and
         * along k (x_k) follow from the layout */
        const int a_o = ta ? 1 : MMA_LDK, a_k = ta ? MMA_LDO : 1;
        const int b_o = tb ? 1 : MMA_LDK, b_k = tb ? MMA_LDO : 1;
        __local const uint *as =
            (__local const uint *)(As4 + cur * MMA_S) + (wm + g) * a_o + t * a_k;
        __local const uint *bs =
            (__local const uint *)(Bs4 + cur * MMA_S) + (wn + g) * b_o + t * b_k;
        MMA_UNROLL
        for (int kk = 0; kk < BK; kk += 8) {
            uint a[4][4], b[4][2];
            MMA_UNROLL
            for (int mt = 0; mt < 4; mt++) {
                __local const uint *p = as + mt * 16 * a_o + kk * a_k;
                a[mt][0] = p[0];
                a[mt][1] = p[8 * a_o];
                a[mt][2] = p[4 * a_k];
                a[mt][3] = p[8 * a_o + 4 * a_k];
            }
            MMA_UNROLL
            for (int n8 = 0; n8 < 4; n8++) {
                __local const uint *p = bs + n8 * 8 * b_o + kk * b_k;
                b[n8][0] = p[0];
                b[n8][1] = p[4 * b_k];
            }
#if MMA_SPLIT3
            uint bl[4][2];
            MMA_UNROLL
            for (int n8 = 0; n8 < 4; n8++) {
                bl[n8][0] = MMA_LO(b[n8][0]), bl[n8][1] = MMA_LO(b[n8][1]);
                b[n8][0] = MMA_HI(b[n8][0]), b[n8][1] = MMA_HI(b[n8][1]);
            }
            MMA_UNROLL
            for (int mt = 0; mt < 4; mt++) {
                uint al[4];
                MMA_UNROLL
                for (int q = 0; q < 4; q++) al[q] = MMA_LO(a[mt][q]), a[mt][q] = MMA_HI(a[mt][q]);
                MMA_UNROLL
                for (int n8 = 0; n8 < 4; n8++) {
                    MMA_TF32(acc[2 * mt][2 * n8], acc[2 * mt][2 * n8 + 1],
                             acc[2 * mt + 1][2 * n8], acc[2 * mt + 1][2 * n8 + 1], al[0], al[1],
                             al[2], al[3], b[n8][0], b[n8][1]);
                    MMA_TF32(acc[2 * mt][2 * n8], acc[2 * mt][2 * n8 + 1],
                             acc[2 * mt + 1][2 * n8], acc[2 * mt + 1][2 * n8 + 1], a[mt][0],
                             a[mt][1], a[mt][2], a[mt][3], bl[n8][0], bl[n8][1]);
                    MMA_TF32(acc[2 * mt][2 * n8], acc[2 * mt][2 * n8 + 1],
                             acc[2 * mt + 1][2 * n8], acc[2 * mt + 1][2 * n8 + 1], a[mt][0],
                             a[mt][1], a[mt][2], a[mt][3], b[n8][0], b[n8][1]);
                }
            }
#else
            MMA_UNROLL
            for (int mt = 0; mt < 4; mt++)
                MMA_UNROLL
                for (int n8 = 0; n8 < 4; n8++)
                    MMA_TF32(acc[2 * mt][2 * n8], acc[2 * mt][2 * n8 + 1],
                             acc[2 * mt + 1][2 * n8], acc[2 * mt + 1][2 * n8 + 1], a[mt][0],
                             a[mt][1], a[mt][2], a[mt][3], b[n8][0], b[n8][1]);
#endif
        }
        if (more) {
            MMA_STORE(ta, ra, As4 + (1 - cur) * MMA_S);
            MMA_STORE(tb, rb, Bs4 + (1 - cur) * MMA_S);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#if defined(GEMM_CE_MMA) && GEMM_CE_MMA
/* gemm.cl's gemm_nt / gemm_nn / gemm_tn (C = alpha·op(A)·op(B) + beta·C, K slices along
 * get_group_id(1)) on this tile — with MMA_SPLIT3 for fp32-grade products (the CE's GEMMs).
 * ta / tb here: the operand is stored k-major (gemm.cl's ta, and !tb). */
#define GEMM_MMA_KERNEL(name, ta, tb)                                                        \
    __kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void name(GEMM_ARGS)       \
    {                                                                                        \
        __local float4 As4[2 * MMA_S + MMA_XS4];                                             \
        __local float4 Bs4[2 * MMA_S];                                                       \
        GEMM_TILE_PLACE                                                                      \
        float acc[8][8];                                                                     \
        gemm_tile_mma(M, N, A + offA, lda, B + offB, ldb, kbeg, kend, m0, n0, As4, Bs4,      \
                      GEMM_ALIGNED(offA, lda), GEMM_ALIGNED(offB, ldb), ta, tb, acc);        \
        __global float *Cz = C + offC + z * cslice;                                          \
        for (int i = 0; i < 8; i++) {                                                        \
            const int row = m0 + MMA_ROW(i);                                                 \
            if (row >= M) continue;                                                          \
            __global float *crow = Cz + (long)row * ldc;                                     \
            for (int j = 0; j < 8; j++) {                                                    \
                const int col = n0 + MMA_COL(j);                                             \
                if (col < N) {                                                               \
                    float v = alpha * acc[i][j];                                             \
                    if (beta != 0.0f) v = mad(beta, crow[col], v);                           \
                    crow[col] = v;                                                           \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }
GEMM_MMA_KERNEL(gemm_nt_mma, 0, 0)
GEMM_MMA_KERNEL(gemm_nn_mma, 0, 1)
GEMM_MMA_KERNEL(gemm_tn_mma, 1, 1)
#endif

#endif /* GEMM_MMA */
