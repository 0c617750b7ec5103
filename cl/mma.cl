/* mma.cl — a gemm.cl tile on NVIDIA tensor cores: TF32 inputs, fp32 accumulation, through
 * inline PTX `mma.sync.aligned.m16n8k8` (sm_80 and later). Needs gemm.cl before it.
 *
 * Only compiled when the prelude sets GEMM_MMA (the host tries it on devices whose compiler
 * takes inline PTX and falls back to the plain tile if the build fails). The tile is
 * APPROXIMATE: each input is rounded to TF32 (10-bit mantissa, round to nearest) when it is
 * stored to local memory, so |s̃ − s| ≤ (2^-10 + O(d·2^-22))·‖u‖·‖e‖ for one score; callers that
 * need fp32 results keep a margin of that size and recompute the survivors exactly (topk.cl).
 *
 * Layout: gemm.cl's loads and k-major local tiles (As[k][m], Bs[k][n]) with GEMM_PAD 8, so
 * that a fragment load — lane (g = lane/4, t = lane%4) reads As[k0 + t][m0 + g] — falls on
 * bank 8t + g: the 32 lanes hit 32 banks. Fixed shape: BM = BN = 128, 256 work-items = 8
 * warps in a 2 × 4 grid, each warp 64 × 32 outputs = 4 × 4 mma tiles of 16 × 8.
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

#if BM != 128 || BN != 128 || GEMM_WG != 256 || (BK % 8) || (GEMM_PAD % 32) != 8
#error "mma.cl: the tensor-core tile needs BM = BN = 128, 256 work-items, BK % 8 == 0, pad 8"
#endif

#define MMA_LANE (get_local_id(0) & 31)
#define MMA_WARP (get_local_id(0) >> 5)
#define MMA_ROW(i) ((MMA_WARP >> 2) * 64 + ((i) >> 1) * 16 + ((i) & 1) * 8 + (MMA_LANE >> 2))
#define MMA_COL(j) ((MMA_WARP & 3) * 32 + ((j) >> 1) * 8 + 2 * (MMA_LANE & 3) + ((j) & 1))

/* d = a·b + d for one 16 × 8 × 8 tile; c0..c3 are four floats of the accumulator array. */
#define MMA_TF32(c0, c1, c2, c3, a0, a1, a2, a3, b0, b1)                                      \
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, "             \
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"                                     \
        : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3)                                            \
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))

/* gemm_tile's contract (op(A) · op(B) over [kbeg, kend), tile (m0, n0)), TF32-approximate,
 * outputs in the MMA_ROW / MMA_COL layout above. Ends after a barrier. */
inline void gemm_tile_mma(const int M, const int N, __global const float *restrict A,
                          const long lda, __global const float *restrict B, const long ldb,
                          const int kbeg, const int kend, const int m0, const int n0,
                          __local float4 *As4, __local float4 *Bs4, const int ta, const int tb,
                          const int va, const int vb, float acc[8][8])
{
    const int lid = get_local_id(0);
    const int lane = lid & 31, warp = lid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int a_kcont = !ta, b_kcont = tb;

    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

    float ra[GEMM_LA], rb[GEMM_LB];
    const int nt = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
    if (nt > 0) {
        GEMM_LOAD(ra, GEMM_LA, A, lda, a_kcont, m0, M, kbeg, kend, BM, va)
        GEMM_LOAD(rb, GEMM_LB, B, ldb, b_kcont, n0, N, kbeg, kend, BN, vb)
        for (int r = 0; r < GEMM_LA; r++) ra[r] = mma_tf32_round(ra[r]);
        for (int r = 0; r < GEMM_LB; r++) rb[r] = mma_tf32_round(rb[r]);
        __local float *as = (__local float *)As4, *bs = (__local float *)Bs4;
        GEMM_STORE(ra, GEMM_LA, as, GEMM_LDA, a_kcont, BM, va)
        GEMM_STORE(rb, GEMM_LB, bs, GEMM_LDB, b_kcont, BN, vb)
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int s = 0; s < nt; s++) {
        const int cur = s & 1;
        const int more = s + 1 < nt;
        if (more) {
            const int k0 = kbeg + (s + 1) * BK;
            GEMM_LOAD(ra, GEMM_LA, A, lda, a_kcont, m0, M, k0, kend, BM, va)
            GEMM_LOAD(rb, GEMM_LB, B, ldb, b_kcont, n0, N, k0, kend, BN, vb)
        }
        __local const uint *as = (__local const uint *)(As4 + cur * GEMM_SA) + wm + g;
        __local const uint *bs = (__local const uint *)(Bs4 + cur * GEMM_SB) + wn + g;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            uint a[4][4], b[4][2];
            const int r0 = (kk + t) * GEMM_LDA, r1 = (kk + t + 4) * GEMM_LDA;
            const int q0 = (kk + t) * GEMM_LDB, q1 = (kk + t + 4) * GEMM_LDB;
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                a[mt][0] = as[r0 + mt * 16];
                a[mt][1] = as[r0 + mt * 16 + 8];
                a[mt][2] = as[r1 + mt * 16];
                a[mt][3] = as[r1 + mt * 16 + 8];
            }
#pragma unroll
            for (int n8 = 0; n8 < 4; n8++) {
                b[n8][0] = bs[q0 + n8 * 8];
                b[n8][1] = bs[q1 + n8 * 8];
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int n8 = 0; n8 < 4; n8++)
                    MMA_TF32(acc[2 * mt][2 * n8], acc[2 * mt][2 * n8 + 1],
                             acc[2 * mt + 1][2 * n8], acc[2 * mt + 1][2 * n8 + 1], a[mt][0],
                             a[mt][1], a[mt][2], a[mt][3], b[n8][0], b[n8][1]);
        }
        if (more) {
            for (int r = 0; r < GEMM_LA; r++) ra[r] = mma_tf32_round(ra[r]);
            for (int r = 0; r < GEMM_LB; r++) rb[r] = mma_tf32_round(rb[r]);
            __local float *as = (__local float *)(As4 + (1 - cur) * GEMM_SA);
            __local float *bs = (__local float *)(Bs4 + (1 - cur) * GEMM_SB);
            GEMM_STORE(ra, GEMM_LA, as, GEMM_LDA, a_kcont, BM, va)
            GEMM_STORE(rb, GEMM_LB, bs, GEMM_LDB, b_kcont, BN, vb)
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#endif /* GEMM_MMA */
