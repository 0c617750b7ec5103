/* ce.cl — the row, column and reduction kernels of full-softmax cross-entropy (the GEMMs are
 * in gemm.cl). Notation as in include/xcat.h: x_ij = h_i·e_j (a GEMM tile S), r = s·(x + b_j),
 * z = c·tanh(r/c) with a softcap c > 0 else r, φ = dz/dx = s·(1 − (z/c)²) with a softcap else s.
 *
 * Everything is fp32 with the OpenCL builtins exp / log / tanh (no relaxed math). Every
 * reduction has a fixed shape and order (a work-item's strided partial, then a tree in local
 * memory), so results are bitwise reproducible on a device. No atomics.
 *
 * Targets are I32 or I64 (runtime flag y64); bias / weights are optional (flags). Vector
 * arguments come as (buffer, element offset) because tensors may be views.
 *
 * Work-group sizes come from the prelude: ROW_WG (ce_fwd_rows; a power of two), RED_WG (ce_reduce; a power of two), CS_X × CS_Y (ce_colsum; CS_Y a power of two), EW
 * (the element-wise kernels). Row counts never go into NDRange dimensions 1 or 2 (some drivers
 * cap those at 65535 groups): 2-D work is flattened into dimension 0.
 */

#ifndef ROW_WG
#define ROW_WG 64
#endif
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

/* One item chunk [c0, c0 + nc) of the forward: row i of S (raw dot products) becomes logits,
 * and the chunk's (max, Σexp, Σz) is merged into the row's running state (m, r, zs); the
 * target's logit is recorded when it falls in the chunk. One work-group per row; work-item t
 * takes columns t, t + ROW_WG, … with an online max / sum-of-exp, then a fixed tree.
 * Global size ROW_WG·rows. (Measured on an H100: fusing this into the GEMM's epilogue, which
 * saves writing and reading S, was slower at d = 128: the per-row reductions across the
 * work-group cost more than the traffic.) */
__kernel __attribute__((reqd_work_group_size(ROW_WG, 1, 1))) void
ce_fwd_rows(__global const float *restrict S, const long ldS, const int nc, const long c0,
            __global const float *restrict bias, const ulong offb, const int has_bias,
            __global const int *restrict y, const ulong offy, const int y64, const long ignore,
            const float s, const float cap, const int first, __global float *restrict m,
            __global float *restrict r, __global float *restrict zs, __global float *restrict zt)
{
    __local float lm[ROW_WG], lr[ROW_WG], lz[ROW_WG];
    const int lid = get_local_id(0);
    const long i = get_group_id(0);
    const long yi = ce_target(y, offy, y64, i);
    /* Ignored rows skip the work but not the barriers (no early return: every work-item of
     * the group must reach every barrier; PoCL miscompiles the early-return form). */
    const int n = yi == ignore ? 0 : nc;
    __global const float *row = S + i * ldS;
    __global const float *bc = has_bias ? bias + offb + c0 : bias;
    float tm = -INFINITY, tr = 0.0f, tz = 0.0f;
    for (int j = lid; j < n; j += ROW_WG) {
        const float z = ce_logit(has_bias ? row[j] + bc[j] : row[j], s, cap);
        tz += z;
        if (z > tm) {
            tr = (tr + 1.0f) * exp(tm - z); /* the old maximum joins r; exp(−inf) = 0 */
            tm = z;
        } else {
            tr += exp(z - tm); /* a NaN z lands here and makes the row NaN */
        }
    }
    lm[lid] = tm;
    lr[lid] = tr;
    lz[lid] = tz;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = ROW_WG / 2; h > 0; h >>= 1) {
        if (lid < h) {
            float a = lm[lid], b = lr[lid];
            ce_merge(&a, &b, lm[lid + h], lr[lid + h]);
            lm[lid] = a;
            lr[lid] = b;
            lz[lid] += lz[lid + h];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0 && n > 0) {
        float rm = lm[0], rr = lr[0], rz = lz[0];
        if (!first) {
            ce_merge(&rm, &rr, m[i], r[i]);
            rz += zs[i];
        }
        m[i] = rm;
        r[i] = rr;
        zs[i] = rz;
        if (yi >= c0 && yi < c0 + nc) {
            const int j = (int)(yi - c0);
            zt[i] = ce_logit(has_bias ? row[j] + bc[j] : row[j], s, cap);
        }
    }
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

/* In place on a chunk of S: G_ij = g_i·[(1+2λ·LSE_i)·exp(z_ij − LSE_i) − ε/C − (1−ε)·δ(j=y_i)]·φ_ij,
 * formed as (a·exp(z − LSE) − c)·φ with a = g(1+2λLSE), c = g·ε/C, then the target's
 * −g(1−ε)·φ (the CPU backend's order of operations); rows with g_i = 0 (ignored) become 0.
 * Global size EW·nblk·rows, nblk = ceil(nc / EW): group g does columns
 * [(g % nblk)·EW, +EW) of row g / nblk. (Measured on an H100: fusing this into the GEMM's
 * epilogue saved < 1 %.) */
__kernel __attribute__((reqd_work_group_size(EW, 1, 1))) void
ce_grad(__global float *restrict S, const long ldS, const int nc, const int nblk, const long c0,
        __global const float *restrict bias, const ulong offb, const int has_bias,
        __global const int *restrict y, const ulong offy, const int y64, const float s,
        const float cap, const float eps, const float num_classes, const float lambda,
        __global const float *restrict lse, __global const float *restrict g)
{
    const int grp = get_group_id(0);
    const long i = grp / nblk;
    const int j = (grp % nblk) * EW + get_local_id(0);
    if (j >= nc) return;
    __global float *p = S + i * ldS + j;
    const float gi = g[i];
    if (gi == 0.0f) {
        *p = 0.0f;
        return;
    }
    const float li = lse[i];
    const float x = has_bias ? *p + bias[offb + c0 + j] : *p;
    const float z = ce_logit(x, s, cap);
    const float a = gi * (1.0f + 2.0f * lambda * li), c = gi * eps / num_classes;
    const float phi = ce_phi(z, s, cap);
    float v = (a * exp(z - li) - c) * phi;
    if (c0 + j == ce_target(y, offy, y64, i)) v -= gi * (1.0f - eps) * phi;
    *p = v;
}

/* db[off + j] = Σ_i S[i][j] (accumulate: db[off + j] += that sum), i in row order per lane:
 * work-item (x, t) sums the rows t, t + CS_Y, …; the CS_Y lanes are then added in a fixed
 * tree. */
__kernel __attribute__((reqd_work_group_size(CS_X, CS_Y, 1))) void
ce_colsum(__global const float *restrict S, const long ldS, const int nc, const int rows,
          __global float *restrict db, const ulong off, const int accumulate)
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
    if (ly == 0 && j < nc) db[off + j] = accumulate ? db[off + j] + part[0][lx] : part[0][lx];
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
