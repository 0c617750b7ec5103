/* ce.cl — the kernels of full-softmax cross-entropy: the two GEMMs with fused epilogues
 * (built on gemm_tile() of gemm.cl, which must precede this file in the program) and the row,
 * column and reduction kernels. Notation as in include/xcat.h: x_ij = h_i·e_j (a GEMM tile S), r = s·(x + b_j),
 * z = c·tanh(r/c) with a softcap c > 0 else r, φ = dz/dx = s·(1 − (z/c)²) with a softcap else s.
 *
 * Everything is fp32 with the OpenCL builtins exp / log / tanh (no relaxed math). Every
 * reduction has a fixed shape and order (a work-item's strided partial, then a tree in local
 * memory), so results are bitwise reproducible on a device. No atomics.
 *
 * Targets are I32 or I64 (runtime flag y64); bias / weights are optional (flags). Vector
 * arguments come as (buffer, element offset) because tensors may be views.
 *
 * Work-group sizes come from the prelude: GEMM_WG (the fused GEMMs, from gemm.cl's tiles),
 * RED_WG (ce_reduce; a power of two), CS_X × CS_Y (ce_colsum; CS_Y a power of two), EW
 * (the element-wise kernels). Row counts never go into NDRange dimensions 1 or 2 (some drivers
 * cap those at 65535 groups): 2-D work is flattened into dimension 0.
 */

#ifndef RED_WG
#define RED_WG 64
#endif
#ifndef CS_X
#define CS_X 16
#endif
#ifndef CS_Y
#define CS_Y 4
#endif
#ifndef EW
#define EW 64
#endif

inline long ce_target(__global const int *y, const ulong offy, const int y64, const long i)
{
    return y64 ? ((__global const long *)y)[offy + i] : (long)y[offy + i];
}

inline float ce_logit(const float x, const float s, const float cap)
{
    const float r = s * x;
    return cap > 0.0f ? cap * tanh(r / cap) : r;
}

inline float ce_phi(const float z, const float s, const float cap)
{
    if (cap > 0.0f) {
        const float t = z / cap;
        return s * (1.0f - t * t);
    }
    return s;
}

/* A running sum of exponentials is kept as (m, r): Σ exp(z) = exp(m)·(1 + r), m the largest z
 * seen and r the sum of exp(z − m) over all the other elements; empty: m = −inf, r = 0. Then
 * LSE − m = log1p(r) keeps its relative accuracy when one logit dominates (a confident row:
 * loss = LSE − z_y ≈ r ≪ 1), which log(l) of a rounded l = 1 + r would not.
 * Merge (m2, r2) into (m1, r1); a NaN reaches r and makes the row NaN. */
inline void ce_merge(float *m1, float *r1, const float m2, const float r2)
{
    if (m2 == -INFINITY) return;
    if (*m1 == -INFINITY) {
        *m1 = m2;
        *r1 = r2;
    } else if (*m1 >= m2) {
        *r1 += (1.0f + r2) * exp(m2 - *m1);
    } else {
        *r1 = r2 + (1.0f + *r1) * exp(*m1 - m2);
        *m1 = m2;
    }
}

/* The forward's GEMM with its row statistics fused in (S is never written): the work-group
 * computes its BM×BN tile of x = H·E_chunkᵀ in registers, turns it into logits
 * z = softcap(s·(x + b)), and reduces each of its rows to (max m, r, Σz) over the tile's
 * columns: first each work-item over its TN columns in column order, then the BN/TN
 * work-items of a row in tx order through local memory. The tile's partials go to
 * pm/pr/pz[tn·ldp + row] (tn = the tile's column index in the chunk); the work-item that holds
 * a row's target column writes z_target. Launch as a gemm_nt of M = rows, N = nc, K = d. */
__kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void
ce_gemm_stats(const int M, const int N, const int K, __global const float *restrict H,
              const ulong offH, const long ldh, __global const float *restrict E,
              const ulong offE, const long lde, const long c0,
              __global const float *restrict bias, const ulong offb, const int has_bias,
              __global const int *restrict y, const ulong offy, const int y64, const float s,
              const float cap, __global float *restrict pm, __global float *restrict pr,
              __global float *restrict pz, const long ldp, __global float *restrict zt)
{
    __local float4 As4[2 * GEMM_SA];
    __local float4 Bs4[2 * GEMM_SB];
    __local float red[3 * GEMM_WG];
    const int ntn = (N + BN - 1) / BN, gid = get_group_id(0);
    const int tn = gid % ntn, m0 = (gid / ntn) * BM, n0 = tn * BN;
    float acc[TM][TN];
    gemm_tile(M, N, H + offH, ldh, E + offE, lde, 0, K, m0, n0, As4, Bs4, 0, 1, acc);

    const int lid = get_local_id(0), tx = lid % GEMM_RN, ty = lid / GEMM_RN;
    float bj[TN];
    for (int j = 0; j < TN; j++) {
        const int col = n0 + GEMM_COL(tx, j);
        bj[j] = has_bias && col < N ? bias[offb + c0 + col] : 0.0f;
    }
    for (int i = 0; i < TM; i++) {
        const int row = m0 + GEMM_ROW(ty, i);
        float tm = -INFINITY, tr = 0.0f, tz = 0.0f;
        if (row < M) {
            const long yi = ce_target(y, offy, y64, row);
            for (int j = 0; j < TN; j++) {
                const int col = n0 + GEMM_COL(tx, j);
                if (col >= N) continue;
                const float z = ce_logit(has_bias ? acc[i][j] + bj[j] : acc[i][j], s, cap);
                tz += z;
                if (z > tm) {
                    tr = (tr + 1.0f) * exp(tm - z); /* the old maximum joins r; exp(−inf) = 0 */
                    tm = z;
                } else {
                    tr += exp(z - tm); /* a NaN z lands here and makes the row NaN */
                }
                if (c0 + col == yi) zt[row] = z;
            }
        }
        red[lid] = tm;
        red[GEMM_WG + lid] = tr;
        red[2 * GEMM_WG + lid] = tz;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (tx == 0 && row < M) {
            float mm = red[lid], rr = red[GEMM_WG + lid], zz = red[2 * GEMM_WG + lid];
            for (int t = 1; t < GEMM_RN; t++) {
                ce_merge(&mm, &rr, red[lid + t], red[GEMM_WG + lid + t]);
                zz += red[2 * GEMM_WG + lid + t];
            }
            const long at = (long)tn * ldp + row;
            pm[at] = mm;
            pr[at] = rr;
            pz[at] = zz;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Merge a chunk's ntiles tile partials of each row, in tile order, into the row's running
 * state (m, r, zs) (first chunk: start empty). One work-item per row. */
__kernel void ce_merge_parts(const int rows, const int ntiles, __global const float *restrict pm,
                             __global const float *restrict pr,
                             __global const float *restrict pz, const long ldp,
                             const int first, __global float *restrict m,
                             __global float *restrict r, __global float *restrict zs)
{
    const int i = get_global_id(0);
    if (i >= rows) return;
    float mm = -INFINITY, rr = 0.0f, zz = 0.0f;
    if (!first) {
        mm = m[i];
        rr = r[i];
        zz = zs[i];
    }
    for (int t = 0; t < ntiles; t++) {
        const long at = (long)t * ldp + i;
        ce_merge(&mm, &rr, pm[at], pr[at]);
        zz += pz[at];
    }
    m[i] = mm;
    r[i] = rr;
    zs[i] = zz;
}

/* After the last chunk: LSE_i = m_i + log1p(r_i) and the weighted row loss
 * w_i·(LSE − (1−ε)·z_y − (ε/C)·Σz + λ·LSE²); both 0 for ignored rows. `loss` receives the row
 * losses (the caller's vector for NONE, the workspace otherwise); `lse_out` is optional. */
__kernel void ce_finish(const int rows, __global const float *restrict m,
                        __global const float *restrict r, __global const float *restrict zs,
                        __global const float *restrict zt, __global const int *restrict y,
                        const ulong offy, const int y64, const long ignore,
                        __global const float *restrict w, const ulong offw, const int has_w,
                        const float eps, const float num_classes, const float lambda,
                        __global float *restrict lse, const int want_loss,
                        __global float *restrict loss, const ulong offloss,
                        const int want_lse_out, __global float *restrict lse_out,
                        const ulong offlse)
{
    const int i = get_global_id(0);
    if (i >= rows) return;
    float v = 0.0f, li = 0.0f;
    if (ce_target(y, offy, y64, i) != ignore) {
        /* ℓ = (LSE − z_y) + ε·(z_y − Σz/C) + λ·LSE², i.e. LSE − (1−ε)·z_y − (ε/C)·Σz + λ·LSE²
         * with the nearly cancelling terms paired first: LSE − z_y = (m − z_y) + log1p(r) is
         * accurate even when it is tiny (m − z_y is exact when they are close). */
        const float lr = log1p(r[i]);
        li = m[i] + lr;
        v = ((m[i] - zt[i]) + lr) + eps * (zt[i] - zs[i] / num_classes) + lambda * li * li;
        if (has_w) v *= w[offw + i];
    }
    lse[i] = li;
    if (want_loss) loss[offloss + i] = v;
    if (want_lse_out) lse_out[offlse + i] = li;
}

/* out[off] = scale·Σ_i x_i in one work-group: compensated strided partials, then a tree. */
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1))) void
ce_reduce(const int n, __global const float *restrict x, const float scale,
          __global float *restrict out, const ulong off)
{
    __local float part[RED_WG];
    const int lid = get_local_id(0);
    float sum = 0.0f, comp = 0.0f;
    for (int i = lid; i < n; i += RED_WG) {
        const float yv = x[i] - comp;
        const float t = sum + yv;
        comp = (t - sum) - yv;
        sum = t;
    }
    part[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = RED_WG / 2; h > 0; h >>= 1) {
        if (lid < h) part[lid] += part[lid + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) out[off] = part[0] * scale;
}

/* g_i = reduction_scale·w_i·grad_loss (grad_mode 0: none → 1, 1: scalar, 2: per row); 0 for
 * ignored rows. */
__kernel void ce_rowfactor(const int rows, __global const int *restrict y, const ulong offy,
                           const int y64, const long ignore, __global const float *restrict w,
                           const ulong offw, const int has_w, __global const float *restrict gl,
                           const ulong offgl, const int grad_mode, const float scale,
                           __global float *restrict g)
{
    const int i = get_global_id(0);
    if (i >= rows) return;
    float v = 0.0f;
    if (ce_target(y, offy, y64, i) != ignore) {
        v = scale;
        if (has_w) v *= w[offw + i];
        if (grad_mode == 1) v *= gl[offgl];
        if (grad_mode == 2) v *= gl[offgl + i];
    }
    g[i] = v;
}

/* The backward's GEMM with the gradient fused in: S[i][j] = G_ij for the chunk,
 *   G_ij = g_i·[(1+2λ·LSE_i)·exp(z_ij − LSE_i) − ε/C − (1−ε)·δ(j=y_i)]·φ_ij,
 * formed as (a·exp(z − LSE) − c)·φ with a = g(1+2λLSE), c = g·ε/C, then the target's
 * −g(1−ε)·φ (the CPU backend's order of operations); rows with g_i = 0 (ignored) are 0.
 * Launch as a gemm_nt of M = rows, N = nc, K = d. */
__kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void
ce_gemm_grad(const int M, const int N, const int K, __global const float *restrict H,
             const ulong offH, const long ldh, __global const float *restrict E,
             const ulong offE, const long lde, const long c0,
             __global const float *restrict bias, const ulong offb, const int has_bias,
             __global const int *restrict y, const ulong offy, const int y64, const float s,
             const float cap, const float eps, const float num_classes, const float lambda,
             __global const float *restrict lse, __global const float *restrict g,
             __global float *restrict S, const long ldS)
{
    __local float4 As4[2 * GEMM_SA];
    __local float4 Bs4[2 * GEMM_SB];
    const int ntn = (N + BN - 1) / BN, gid = get_group_id(0);
    const int m0 = (gid / ntn) * BM, n0 = (gid % ntn) * BN;
    float acc[TM][TN];
    gemm_tile(M, N, H + offH, ldh, E + offE, lde, 0, K, m0, n0, As4, Bs4, 0, 1, acc);

    const int lid = get_local_id(0), tx = lid % GEMM_RN, ty = lid / GEMM_RN;
    float bj[TN];
    for (int j = 0; j < TN; j++) {
        const int col = n0 + GEMM_COL(tx, j);
        bj[j] = has_bias && col < N ? bias[offb + c0 + col] : 0.0f;
    }
    for (int i = 0; i < TM; i++) {
        const int row = m0 + GEMM_ROW(ty, i);
        if (row >= M) continue;
        const float gi = g[row], li = lse[row];
        const long yi = ce_target(y, offy, y64, row);
        const float a = gi * (1.0f + 2.0f * lambda * li), c = gi * eps / num_classes;
        __global float *srow = S + (long)row * ldS;
        for (int j = 0; j < TN; j++) {
            const int col = n0 + GEMM_COL(tx, j);
            if (col >= N) continue;
            float v = 0.0f;
            if (gi != 0.0f) {
                const float z = ce_logit(has_bias ? acc[i][j] + bj[j] : acc[i][j], s, cap);
                const float phi = ce_phi(z, s, cap);
                v = (a * exp(z - li) - c) * phi;
                if (c0 + col == yi) v -= gi * (1.0f - eps) * phi;
            }
            srow[col] = v;
        }
    }
}

/* db[off + j] = Σ_i S[i][j], i in row order per lane: work-item (x, t) sums the rows
 * t, t + CS_Y, …; the CS_Y lanes are then added in a fixed tree. */
__kernel __attribute__((reqd_work_group_size(CS_X, CS_Y, 1))) void
ce_colsum(__global const float *restrict S, const long ldS, const int nc, const int rows,
          __global float *restrict db, const ulong off)
{
    __local float part[CS_Y][CS_X];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const int j = get_group_id(0) * CS_X + lx;
    float sum = 0.0f;
    if (j < nc)
        for (int i = ly; i < rows; i += CS_Y) sum += S[(long)i * ldS + j];
    part[ly][lx] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = CS_Y / 2; h > 0; h >>= 1) {
        if (ly < h) part[ly][lx] += part[ly + h][lx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && j < nc) db[off + j] = part[0][lx];
}

/* out[off + i·ld + j] = Σ_{p < parts} P[p·pstride + i·cols + j] in order p = 0, 1, …: the
 * fixed-order sum of split-K slices. Global size EW·nblk·rows, nblk = ceil(cols / EW). */
__kernel __attribute__((reqd_work_group_size(EW, 1, 1))) void
ce_sum_parts(const int cols, const int nblk, const int parts, __global const float *restrict P,
             const ulong pstride, __global float *restrict out, const ulong off, const long ld)
{
    const int grp = get_group_id(0);
    const long i = grp / nblk;
    const int j = (grp % nblk) * EW + get_local_id(0);
    if (j >= cols) return;
    __global const float *src = P + i * cols + j;
    float v = src[0];
    for (int p = 1; p < parts; p++) v += src[p * pstride];
    out[off + i * ld + j] = v;
}
