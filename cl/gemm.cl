/* gemm.cl — C = alpha·op(A)·op(B) + beta·C in fp32 on row-major matrices.
 *
 * One body, three kernels: gemm_nt (C = A·Bᵀ), gemm_nn (C = A·B), gemm_tn (C = Aᵀ·B). Every
 * matrix has its own leading dimension (row stride, elements) and element offset into its
 * buffer (tensors may be views), and M, N, K are arbitrary (every access is bounds-checked).
 *
 * Tiling (from the host's #define prelude):
 *   BM × BN   output tile of one work-group, BK its depth in K per step,
 *   TM × TN   outputs per work-item (register block; multiples of 4),
 *   a 1-D work-group of WG = (BM/TM)·(BN/TN) work-items.
 * The A and B tiles go through local memory, double-buffered: while the work-group multiplies
 * tile t, each work-item has already issued its global loads of tile t+1 into registers and
 * stores them to the other buffer afterwards (one barrier per step). Tiles are stored k-major
 * (As[k][m], Bs[k][n]) with a padding of 4 floats per row, so the k-loop reads float4s.
 * A work-item owns the rows  g·4·(BM/TM) + ty·4 + {0..3}  (g < TM/4) and the columns
 * g·4·(BN/TN) + tx·4 + {0..3}: neighbouring work-items read neighbouring float4s of a B row
 * (no local-memory bank conflicts) and most of a sub-group reads the same A float4
 * (broadcast); stores to C are coalesced per row.
 *
 * Global loads are coalesced whatever the transposes: the work-group walks the tile along the
 * matrix's contiguous dimension (k for A of gemm_nt/gemm_nn and B of gemm_nt, m/n otherwise).
 *
 * Launch: a 1-D range of ceil(M/BM)·ceil(N/BN) work-groups of WG (group g computes the tile
 * (g / ceil(N/BN), g % ceil(N/BN)): neighbouring groups share their A rows), times the number
 * of K slices in dimension 1. Nothing large goes into dimension 1 or 2 (some drivers cap them
 * at 65535 groups).
 *
 * Split K (deterministic): get_group_id(1) = z computes the K range [z·kslice, (z+1)·kslice)
 * into C + z·cslice; the host sums the slices in a fixed order afterwards. kslice = K and
 * one slice in dimension 1 is a plain GEMM.
 *
 * beta == 0 never reads C (it may hold garbage). Each output element is computed by exactly
 * one work-item in a fixed order: results are bitwise reproducible on a given device.
 */

#ifndef BM
#define BM 32
#endif
#ifndef BN
#define BN 32
#endif
#ifndef BK
#define BK 8
#endif
#ifndef TM
#define TM 4
#endif
#ifndef TN
#define TN 4
#endif

#define GEMM_RM (BM / TM)          /* work-items along M */
#define GEMM_RN (BN / TN)          /* work-items along N */
#define GEMM_WG (GEMM_RM * GEMM_RN)
#define GEMM_LDA (BM + 4)          /* padded local row (floats), a multiple of 4 */
#define GEMM_LDB (BN + 4)
#define GEMM_SA (BK * GEMM_LDA / 4) /* one A buffer, in float4 */
#define GEMM_SB (BK * GEMM_LDB / 4)
#define GEMM_LA (BM * BK / GEMM_WG) /* A elements each work-item loads per step */
#define GEMM_LB (BN * BK / GEMM_WG)

#if (TM % 4) || (TN % 4) || (BM % TM) || (BN % TN) || ((BM * BK) % GEMM_WG) || \
    ((BN * BK) % GEMM_WG)
#error "gemm.cl: bad tile configuration"
#endif

/* Load one BM×BK tile of op(A) (or BK×BN of op(B)) into registers, zero outside the matrix.
 * kcont: the matrix is stored with k contiguous (A of NN/NT; B of NT). T: the tile's extent
 * along m (or n). vec (uniform): the operand's offset and row stride are multiples of 4, so
 * groups of 4 elements along the contiguous dimension are loaded as one aligned float4
 * (element-wise at the matrix edges). Only when the prelude sets GEMM_VEC_LOADS (GPUs): PoCL
 * 5/6 miscompiles this path in some shapes (NT with both operands aligned, K % 4 != 0). */
#if defined(GEMM_VEC_LOADS) && GEMM_VEC_LOADS && (BK % 4 == 0) && \
    ((BM * BK / 4) % GEMM_WG == 0) && ((BN * BK / 4) % GEMM_WG == 0)
#define GEMM_VEC 1
#else
#define GEMM_VEC 0
#endif

#define GEMM_LOAD(reg, L, P, ld, kcont, o0, olim, k0, klim, T, vec)                         \
    if (GEMM_VEC && (vec)) {                                                                \
        for (int r_ = 0; r_ < (L) / 4; r_++) {                                              \
            const int q_ = lid + r_ * GEMM_WG;                                              \
            const int kk_ = (kcont) ? 4 * (q_ % (BK / 4)) : q_ / ((T) / 4);                 \
            const int oo_ = (kcont) ? q_ / (BK / 4) : 4 * (q_ % ((T) / 4));                 \
            const int go_ = (o0) + oo_, gk_ = (k0) + kk_;                                   \
            __global const float *p_ =                                                      \
                (kcont) ? (P) + (long)go_ * (ld) + gk_ : (P) + (long)gk_ * (ld) + go_;      \
            /* in_: the group's row (column) exists; n_: how many of its 4 elements do */   \
            const int in_ = (kcont) ? go_ < (olim) : gk_ < (klim);                          \
            const int n_ = in_ ? ((kcont) ? (klim) - gk_ : (olim) - go_) : 0;               \
            float4 v_;                                                                      \
            if (n_ >= 4) {                                                                  \
                v_ = *(__global const float4 *)p_;                                          \
            } else {                                                                        \
                v_.x = n_ > 0 ? p_[0] : 0.0f;                                               \
                v_.y = n_ > 1 ? p_[1] : 0.0f;                                               \
                v_.z = n_ > 2 ? p_[2] : 0.0f;                                               \
                v_.w = 0.0f;                                                                \
            }                                                                               \
            reg[4 * r_] = v_.x;                                                             \
            reg[4 * r_ + 1] = v_.y;                                                         \
            reg[4 * r_ + 2] = v_.z;                                                         \
            reg[4 * r_ + 3] = v_.w;                                                         \
        }                                                                                   \
    } else {                                                                                \
        for (int r_ = 0; r_ < (L); r_++) {                                                  \
            const int e_ = lid + r_ * GEMM_WG;                                              \
            const int kk_ = (kcont) ? e_ % BK : e_ / (T);                                   \
            const int oo_ = (kcont) ? e_ / BK : e_ % (T);                                   \
            const int go_ = (o0) + oo_, gk_ = (k0) + kk_;                                   \
            float v_ = 0.0f;                                                                \
            if (go_ < (olim) && gk_ < (klim))                                               \
                v_ = (kcont) ? (P)[(long)go_ * (ld) + gk_] : (P)[(long)gk_ * (ld) + go_];   \
            reg[r_] = v_;                                                                   \
        }                                                                                   \
    }

#define GEMM_STORE(reg, L, S, LDS, kcont, T, vec)                                           \
    if (GEMM_VEC && (vec)) {                                                                \
        for (int r_ = 0; r_ < (L) / 4; r_++) {                                              \
            const int q_ = lid + r_ * GEMM_WG;                                              \
            const int kk_ = (kcont) ? 4 * (q_ % (BK / 4)) : q_ / ((T) / 4);                 \
            const int oo_ = (kcont) ? q_ / (BK / 4) : 4 * (q_ % ((T) / 4));                 \
            if (kcont) {                                                                    \
                for (int c_ = 0; c_ < 4; c_++) (S)[(kk_ + c_) * (LDS) + oo_] = reg[4 * r_ + c_]; \
            } else {                                                                        \
                *(__local float4 *)((S) + kk_ * (LDS) + oo_) =                              \
                    (float4)(reg[4 * r_], reg[4 * r_ + 1], reg[4 * r_ + 2], reg[4 * r_ + 3]); \
            }                                                                               \
        }                                                                                   \
    } else {                                                                                \
        for (int r_ = 0; r_ < (L); r_++) {                                                  \
            const int e_ = lid + r_ * GEMM_WG;                                              \
            const int kk_ = (kcont) ? e_ % BK : e_ / (T);                                   \
            const int oo_ = (kcont) ? e_ / BK : e_ % (T);                                   \
            (S)[kk_ * (LDS) + oo_] = reg[r_];                                               \
        }                                                                                   \
    }

/* Position of a work-item's i-th row / j-th column inside the BM×BN tile. */
#define GEMM_ROW(ty, i) (((i) / 4) * (4 * GEMM_RM) + (ty) * 4 + ((i) % 4))
#define GEMM_COL(tx, j) (((j) / 4) * (4 * GEMM_RN) + (tx) * 4 + ((j) % 4))

/* acc = op(A)[m0 : m0+BM, kbeg : kend] · op(B)[kbeg : kend, n0 : n0+BN], this work-item's
 * TM×TN part (rows GEMM_ROW(ty, i), columns GEMM_COL(tx, j); tx = lid % (BN/TN),
 * ty = lid / (BN/TN)). Ends after a barrier: the caller may reuse local memory. */
inline void gemm_tile(const int M, const int N, __global const float *restrict A, const long lda,
                      __global const float *restrict B, const long ldb, const int kbeg,
                      const int kend, const int m0, const int n0, __local float4 *As4,
                      __local float4 *Bs4, const int ta, const int tb, const int va,
                      const int vb, float acc[TM][TN])
{
    const int lid = get_local_id(0);
    const int tx = lid % GEMM_RN, ty = lid / GEMM_RN;
    const int a_kcont = !ta, b_kcont = tb;

    for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    float ra[GEMM_LA], rb[GEMM_LB];
    const int nt = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
    if (nt > 0) {
        GEMM_LOAD(ra, GEMM_LA, A, lda, a_kcont, m0, M, kbeg, kend, BM, va)
        GEMM_LOAD(rb, GEMM_LB, B, ldb, b_kcont, n0, N, kbeg, kend, BN, vb)
        __local float *as = (__local float *)As4, *bs = (__local float *)Bs4;
        GEMM_STORE(ra, GEMM_LA, as, GEMM_LDA, a_kcont, BM, va)
        GEMM_STORE(rb, GEMM_LB, bs, GEMM_LDB, b_kcont, BN, vb)
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int t = 0; t < nt; t++) {
        const int cur = t & 1;
        const int more = t + 1 < nt;
        if (more) {
            const int k0 = kbeg + (t + 1) * BK;
            GEMM_LOAD(ra, GEMM_LA, A, lda, a_kcont, m0, M, k0, kend, BM, va)
            GEMM_LOAD(rb, GEMM_LB, B, ldb, b_kcont, n0, N, k0, kend, BN, vb)
        }
        __local const float4 *a4 = As4 + cur * GEMM_SA + ty;
        __local const float4 *b4 = Bs4 + cur * GEMM_SB + tx;
#pragma unroll
        for (int k = 0; k < BK; k++) {
            float a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < TM / 4; g++) {
                const float4 v = a4[k * (GEMM_LDA / 4) + g * GEMM_RM];
                a[4 * g] = v.x;
                a[4 * g + 1] = v.y;
                a[4 * g + 2] = v.z;
                a[4 * g + 3] = v.w;
            }
#pragma unroll
            for (int g = 0; g < TN / 4; g++) {
                const float4 v = b4[k * (GEMM_LDB / 4) + g * GEMM_RN];
                b[4 * g] = v.x;
                b[4 * g + 1] = v.y;
                b[4 * g + 2] = v.z;
                b[4 * g + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = mad(a[i], b[j], acc[i][j]);
        }
        if (more) {
            __local float *as = (__local float *)(As4 + (1 - cur) * GEMM_SA);
            __local float *bs = (__local float *)(Bs4 + (1 - cur) * GEMM_SB);
            GEMM_STORE(ra, GEMM_LA, as, GEMM_LDA, a_kcont, BM, va)
            GEMM_STORE(rb, GEMM_LB, bs, GEMM_LDB, b_kcont, BN, vb)
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* C = alpha·acc + beta·C (beta == 0: C is not read). */
inline void gemm_store(const int M, const int N, const float alpha, const float beta,
                       __global float *restrict C, const long ldc, const int m0, const int n0,
                       float acc[TM][TN])
{
    const int lid = get_local_id(0);
    const int tx = lid % GEMM_RN, ty = lid / GEMM_RN;
    for (int i = 0; i < TM; i++) {
        const int row = m0 + GEMM_ROW(ty, i);
        if (row >= M) continue;
        __global float *crow = C + (long)row * ldc;
        for (int j = 0; j < TN; j++) {
            const int col = n0 + GEMM_COL(tx, j);
            if (col < N) {
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v = mad(beta, crow[col], v);
                crow[col] = v;
            }
        }
    }
}

/* Whether an operand at element offset `off` with row stride `ld` allows float4 loads. */
#define GEMM_ALIGNED(off, ld) ((((off) | (ulong)(ld)) & 3) == 0)

#define GEMM_ARGS                                                                           \
    const int M, const int N, const int K, const float alpha, __global const float *restrict A, \
        const ulong offA, const long lda, __global const float *restrict B, const ulong offB,  \
        const long ldb, const float beta, __global float *restrict C, const ulong offC,        \
        const long ldc, const int kslice, const ulong cslice

/* A GEMM kernel's place: its output tile (m0, n0) and K slice z = [kbeg, kend) (mma.cl's
 * kernels share it). */
#define GEMM_TILE_PLACE                                                                     \
    const int ntn = (N + BN - 1) / BN;                                                      \
    const int gid = get_group_id(0), z = get_group_id(1);                                   \
    const int m0 = (gid / ntn) * BM, n0 = (gid % ntn) * BN;                                 \
    const long kb = (long)z * kslice;                                                       \
    const int kbeg = kb < K ? (int)kb : K;                                                  \
    const int kend = K - kbeg < kslice ? K : kbeg + kslice;

#define GEMM_KERNEL(name, ta, tb)                                                           \
    __kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void name(GEMM_ARGS)      \
    {                                                                                       \
        __local float4 As4[2 * GEMM_SA];                                                    \
        __local float4 Bs4[2 * GEMM_SB];                                                    \
        GEMM_TILE_PLACE                                                                     \
        float acc[TM][TN];                                                                  \
        gemm_tile(M, N, A + offA, lda, B + offB, ldb, kbeg, kend, m0, n0, As4, Bs4, ta, tb, \
                  GEMM_ALIGNED(offA, lda), GEMM_ALIGNED(offB, ldb), acc);                   \
        gemm_store(M, N, alpha, beta, C + offC + z * cslice, ldc, m0, n0, acc);             \
    }

GEMM_KERNEL(gemm_nt, 0, 1)
GEMM_KERNEL(gemm_nn, 0, 0)
GEMM_KERNEL(gemm_tn, 1, 0)
