/* sce.cl — the bucket kernels of XCAT_LOSS_SCE (driven by src/opencl/ocl_sce.c; directions and
 * selections come from src/sce.c through topk.cl). Built after rng.cl (xr_gauss12), gemm.cl
 * (gemm_tile, gemm_store) and ce.cl (ce_target, ce_logit, ce_phi, ce_merge), whose helpers it
 * uses. Notation as in include/xcat.h: bucket q has the rows X_q (k_x, −1 = empty slot) and the
 * items Y_q (k_y, −1 = none); a row's positive logit is zpos.
 *
 * Buckets go in waves of W: the wave's rows and items are gathered into dense blocks, one
 * batched GEMM gives every bucket's logit block, a row kernel its losses. A row's best bucket is
 * found without float atomics and independently of the order in which buckets run: the row's
 * largest loss as an ordered integer key (atomic_max), then the lowest (bucket, slot) holding
 * that key (atomic_min), so the winner is the lowest bucket on ties, as on the CPU.
 *
 * Prelude: SCE_WG (a power of two: lanes per row in the row kernels). No early return precedes
 * a barrier (PoCL miscompiles that form). */

#ifndef SCE_WG
#define SCE_WG 64
#endif

/* A loss as an unsigned key ordered like the losses: every NaN above +inf (a NaN loss wins, as
 * on the CPU), −0 as +0. */
inline uint sce_key(const float l)
{
    uint b = as_uint(l);
    if (isnan(l)) return 0xFFFFFFFFu;
    if ((b & 0x7FFFFFFFu) == 0) b = 0;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* Per row i (one work-group, lanes over d, a fixed tree): the positive's logit zpos[i] (0 for
 * an ignored row) and an empty best: key 0 (below every loss), flat INT_MAX. */
__kernel __attribute__((reqd_work_group_size(SCE_WG, 1, 1))) void
sce_init_rows(const int d, __global const float *restrict H, const ulong offH, const long ldh,
              __global const float *restrict E, const ulong offE, const long lde,
              __global const float *restrict bias, const ulong offb, const int has_bias,
              __global const int *restrict y, const ulong offy, const int y64, const long ignore,
              const float s, const float cap, __global float *restrict zpos,
              __global uint *restrict key, __global int *restrict flat)
{
    __local float part[SCE_WG];
    const int lid = get_local_id(0);
    const long i = get_group_id(0);
    const long yi = ce_target(y, offy, y64, i);
    const int n = yi == ignore ? 0 : d;
    __global const float *h = H + offH + i * ldh;
    __global const float *e = E + offE + (n ? yi : 0) * lde;
    float acc = 0.0f;
    for (int c = lid; c < n; c += SCE_WG) acc = mad(h[c], e[c], acc);
    part[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = SCE_WG / 2; w > 0; w >>= 1) {
        if (lid < w) part[lid] += part[lid + w];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        float zp = 0.0f;
        if (n) zp = ce_logit(has_bias ? part[0] + bias[offb + yi] : part[0], s, cap);
        zpos[i] = zp;
        key[i] = 0;
        flat[i] = INT_MAX;
    }
}

/* dst[r][c] = src[idx[offi + r]][c] for r < n (a zero row for index −1); dst is n × d dense. */
__kernel void sce_gather(const int n, const int d, __global const int *restrict idx,
                         const ulong offi, __global const float *restrict src, const ulong offs,
                         const long lds, __global float *restrict dst)
{
    const int c = (int)get_global_id(0);
    if (c >= d) return;
    for (int r = (int)get_global_id(1); r < n; r += (int)get_global_size(1)) {
        const int it = idx[offi + r];
        dst[(long)r * d + c] = it >= 0 ? src[offs + (long)it * lds + c] : 0.0f;
    }
}

/* Batched C_z = alpha·op(A_z)·op(B_z) + beta·C_z over the buckets z of a wave. Operand X of batch
 * z starts at X + offX + z·sXz + o_z·sXr, where o_z = roff[z0 + z] − roff[z0] when var != 0 (the
 * wave's rows, contiguous by bucket) and 0 otherwise. var = 1: M_z = roff[z0+z+1] − roff[z0+z];
 * var = 2: K_z likewise; var = 0: every batch is M × N × K.
 * Work-groups: with use_tiles, group g computes the tile tiles[t0 + g / ntn] = (bucket z0 + z,
 * m0) and n-tile g % ntn — an exact list for var = 1, so a bucket that won few rows costs few
 * groups; otherwise dimension 1 is z and group g of dimension 0 is the tile (g / ntn, g % ntn). */
#define SCE_BGEMM(name, ta, tb)                                                               \
    __kernel __attribute__((reqd_work_group_size(GEMM_WG, 1, 1))) void name(                  \
        const int M, const int N, const int K, const int var, __global const int *roff,      \
        const int z0, __global const int2 *tiles, const int t0, const int use_tiles,           \
        const float alpha, __global const float *restrict A, const ulong offA, const long lda, \
        const ulong saz, const ulong sar, __global const float *restrict B, const ulong offB,   \
        const long ldb, const ulong sbz, const ulong sbr, const float beta,                   \
        __global float *restrict C, const ulong offC, const long ldc, const ulong scz,         \
        const ulong scr)                                                                      \
    {                                                                                         \
        __local float4 As4[2 * GEMM_SA];                                                      \
        __local float4 Bs4[2 * GEMM_SB];                                                      \
        const int ntn = (N + BN - 1) / BN;                                                    \
        const int g = get_group_id(0);                                                        \
        int z, m0;                                                                            \
        if (use_tiles) {                                                                      \
            const int2 t = tiles[t0 + g / ntn];                                               \
            z = t.x - z0;                                                                     \
            m0 = t.y;                                                                         \
        } else {                                                                              \
            z = get_group_id(1);                                                              \
            m0 = (g / ntn) * BM;                                                              \
        }                                                                                     \
        const int n0 = (g % ntn) * BN;                                                        \
        const ulong o = var ? (ulong)(roff[z0 + z] - roff[z0]) : 0;                           \
        const int nz = var ? roff[z0 + z + 1] - roff[z0 + z] : 0;                             \
        const int Mz = var == 1 ? nz : M, Kz = var == 2 ? nz : K;                             \
        const ulong oa = offA + (ulong)z * saz + o * sar;                                     \
        const ulong ob = offB + (ulong)z * sbz + o * sbr;                                     \
        const ulong oc = offC + (ulong)z * scz + o * scr;                                     \
        float acc[TM][TN];                                                                    \
        gemm_tile(Mz, N, A + oa, lda, B + ob, ldb, 0, Kz, m0, n0, As4, Bs4, ta, tb,           \
                  GEMM_ALIGNED(oa, lda), GEMM_ALIGNED(ob, ldb), acc);                         \
        gemm_store(Mz, N, alpha, beta, C + oc, ldc, m0, n0, acc);                             \
    }

SCE_BGEMM(sce_bgemm_nt, 0, 1)
SCE_BGEMM(sce_bgemm_nn, 0, 0)
SCE_BGEMM(sce_bgemm_tn, 1, 0)

/* The logit of slot t of a bucket for a row with positive yi: −inf when masked (no item, or the
 * positive itself). */
inline float sce_logit(const float x, const int it, const long yi,
                       __global const float *restrict bias, const ulong offb, const int has_bias,
                       const float s, const float cap)
{
    if (it < 0 || it == yi) return -INFINITY;
    return ce_logit(has_bias ? x + bias[offb + it] : x, s, cap);
}

/* Forward rows of a wave: work-group g = w·kx + r is slot r of the wave's bucket w; its row
 * X[offx + g] (−1: empty slot) has the logits S[g·ky ..] against Y[offsel + w·ky ..]. With its
 * positive the row's lse and loss lse − zpos go to lseb / lb[offl + g] (0 for an empty slot),
 * and the loss's key is merged into key[row] (integer atomic max: order-independent). */
__kernel __attribute__((reqd_work_group_size(SCE_WG, 1, 1))) void
sce_fwd_rows(const int kx, const int ky, __global const float *restrict S,
             __global const int *restrict X, const ulong offx, __global const int *restrict Y,
             const ulong offsel, __global const float *restrict bias, const ulong offb,
             const int has_bias, __global const int *restrict y, const ulong offy, const int y64,
             const float s, const float cap, __global const float *restrict zpos,
             __global float *restrict lb, __global float *restrict lseb, const ulong offl,
             __global uint *restrict key)
{
    __local float lm[SCE_WG], lr[SCE_WG];
    const int lid = get_local_id(0);
    const int g = get_group_id(0);
    const int w = g / kx;
    const int row = X[offx + g];
    const long yi = row >= 0 ? ce_target(y, offy, y64, row) : -1;
    const int n = row >= 0 ? ky : 0;
    __global const float *srow = S + (long)g * ky;
    __global const int *yw = Y + offsel + (long)w * ky;
    float tm = -INFINITY, tr = 0.0f;
    for (int t = lid; t < n; t += SCE_WG) {
        const float z = sce_logit(srow[t], yw[t], yi, bias, offb, has_bias, s, cap);
        if (z == -INFINITY) continue;
        if (z > tm) {
            tr = (tr + 1.0f) * exp(tm - z);
            tm = z;
        } else {
            tr += exp(z - tm); /* a NaN lands here and makes the row NaN */
        }
    }
    lm[lid] = tm;
    lr[lid] = tr;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = SCE_WG / 2; h > 0; h >>= 1) {
        if (lid < h) {
            float a = lm[lid], b = lr[lid];
            ce_merge(&a, &b, lm[lid + h], lr[lid + h]);
            lm[lid] = a;
            lr[lid] = b;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        float l = 0.0f, lse = 0.0f;
        if (n > 0) {
            const float zp = zpos[row];
            float rm = lm[0], rr = lr[0];
            ce_merge(&rm, &rr, zp, 0.0f);
            lse = rm + log1p(rr);
            l = lse - zp;
            atomic_max(&key[row], sce_key(l));
        }
        lb[offl + g] = l;
        lseb[offl + g] = lse;
    }
}

/* After every bucket: slot e (of n_b·k_x) whose loss has its row's key offers e (atomic_min:
 * the lowest bucket, then slot, wins). */
__kernel void sce_pick(const int total, __global const int *restrict X,
                       __global const float *restrict lb, __global const uint *restrict key,
                       __global int *restrict flat)
{
    const int e = get_global_id(0);
    if (e >= total) return;
    const int row = X[e];
    if (row >= 0 && sce_key(lb[e]) == key[row]) atomic_min(&flat[row], e);
}

/* The per-row state from the winning slot (bucket −1: the row is in no bucket). */
__kernel void sce_best(const int n, const int kx, __global const int *restrict flat,
                       __global const float *restrict lb, __global const float *restrict lseb,
                       __global float *restrict best_loss, __global float *restrict best_lse,
                       __global int *restrict best_bucket)
{
    const int i = get_global_id(0);
    if (i >= n) return;
    const int f = flat[i];
    const int in = f != INT_MAX;
    best_loss[i] = in ? lb[f] : -INFINITY;
    best_lse[i] = in ? lseb[f] : 0.0f;
    best_bucket[i] = in ? f / kx : -1;
}

/* Backward of a wave, per contributing row u (rows[offr + u], won by bucket q = winner[row]):
 * its row of G (u·ky, holding the logits' dot products from the batched GEMM) becomes
 * g·softmax·φ (0 where masked), and cp[row] = g·(p_pos − 1)·φ(z_pos) (the positive's term). */
__kernel __attribute__((reqd_work_group_size(SCE_WG, 1, 1))) void
sce_bwd_coef(const int ky, __global float *restrict G, __global const int *restrict rows,
             const ulong offr, __global const int *restrict winner,
             __global const int *restrict Y, __global const float *restrict bias,
             const ulong offb, const int has_bias, __global const int *restrict y,
             const ulong offy, const int y64, const float s, const float cap,
             __global const float *restrict best_lse, __global const float *restrict zpos,
             __global const float *restrict gfac, __global float *restrict cp)
{
    const int lid = get_local_id(0);
    const int u = get_group_id(0);
    const int row = rows[offr + u];
    const long yi = ce_target(y, offy, y64, row);
    const float gi = gfac[row], l = best_lse[row];
    __global float *grow = G + (long)u * ky;
    __global const int *yw = Y + (long)winner[row] * ky;
    for (int t = lid; t < ky; t += SCE_WG) {
        const float z = sce_logit(grow[t], yw[t], yi, bias, offb, has_bias, s, cap);
        grow[t] = z == -INFINITY ? 0.0f : gi * exp(z - l) * ce_phi(z, s, cap);
    }
    if (lid == 0) {
        const float zp = zpos[row];
        cp[row] = gi * (exp(zp - l) - 1.0f) * ce_phi(zp, s, cap);
    }
}

/* dst[rows[offr + u]][c] = src[u·d + c] (the rows are distinct: each has one winner). */
__kernel void sce_scatter_rows(const int n, const int d, __global const int *restrict rows,
                               const ulong offr, __global const float *restrict src,
                               __global float *restrict dst, const ulong offd, const long ldd)
{
    const int c = (int)get_global_id(0);
    if (c >= d) return;
    for (int u = (int)get_global_id(1); u < n; u += (int)get_global_size(1))
        dst[offd + (long)rows[offr + u] * ldd + c] = src[(long)u * d + c];
}

/* One bucket's item gradients into dE: dE[Y[t]][c] += src[offs + t·d + c] (items are distinct within a
 * bucket; buckets are added one launch after the other, in order). */
__kernel void sce_add_items(const int ky, const int d, __global const int *restrict Y,
                            const ulong offsel, __global const float *restrict src,
                            const ulong offs, __global float *restrict dE, const ulong offdE, const long ldde)
{
    const int c = (int)get_global_id(0);
    if (c >= d) return;
    for (int t = (int)get_global_id(1); t < ky; t += (int)get_global_size(1)) {
        const int it = Y[offsel + t];
        if (it >= 0) dE[offdE + (long)it * ldde + c] += src[offs + (long)t * d + c];
    }
}

/* One bucket's bias gradients: db[Y[t]] += Σ_u G[u·ky + t] over its nr rows, in row order. */
__kernel void sce_add_bias(const int ky, const int nr, __global const float *restrict G,
                           const ulong offg, __global const int *restrict Y, const ulong offsel,
                           __global float *restrict db, const ulong offdb)
{
    const int t = get_global_id(0);
    if (t >= ky) return;
    const int it = Y[offsel + t];
    if (it < 0) return;
    float acc = 0.0f;
    for (int u = 0; u < nr; ++u) acc += G[offg + (long)u * ky + t];
    db[offdb + it] += acc;
}

/* The positives' item terms: work-group p (distinct positive pos_items[p]) adds Σ cp[row]·h_row
 * over its rows pos_rows[pos_off[p] ..] (row order; every row with that target — those that
 * won no bucket, winner −1, are skipped) to dE, and Σ cp[row] to db. */
__kernel __attribute__((reqd_work_group_size(SCE_WG, 1, 1))) void
sce_pos_items(const int d, __global const int *restrict pos_items,
              __global const int *restrict pos_off, __global const int *restrict pos_rows,
              __global const int *restrict winner, __global const float *restrict cp,
              __global const float *restrict H,
              const ulong offH, const long ldh, __global float *restrict dE, const ulong offdE,
              const long ldde, const int has_de, __global float *restrict db, const ulong offdb,
              const int has_db)
{
    const int lid = get_local_id(0), p = get_group_id(0);
    const int it = pos_items[p], a = pos_off[p], z = pos_off[p + 1];
    if (has_de) {
        __global float *de = dE + offdE + (long)it * ldde;
        for (int c = lid; c < d; c += SCE_WG) {
            float acc = 0.0f;
            for (int u = a; u < z; ++u) {
                const int row = pos_rows[u];
                if (winner[row] >= 0) acc = mad(cp[row], H[offH + (long)row * ldh + c], acc);
            }
            de[c] += acc;
        }
    }
    if (has_db && lid == 0) {
        float acc = 0.0f;
        for (int u = a; u < z; ++u)
            if (winner[pos_rows[u]] >= 0) acc += cp[pos_rows[u]];
        db[offdb + it] += acc;
    }
}

/* The positives' row terms: dH[i][c] += cp[i]·E[y_i][c] for the contributing rows. */
__kernel void sce_pos_rows(const int n, const int d, __global const int *restrict winner,
                           __global const int *restrict y, const ulong offy, const int y64,
                           __global const float *restrict cp, __global const float *restrict E,
                           const ulong offE, const long lde, __global float *restrict dH,
                           const ulong offdH, const long lddh)
{
    const int c = (int)get_global_id(0);
    if (c >= d) return;
    for (int i = (int)get_global_id(1); i < n; i += (int)get_global_size(1)) {
        if (winner[i] < 0) continue;
        const long yi = ce_target(y, offy, y64, i);
        dH[offdH + (long)i * lddh + c] += cp[i] * E[offE + yi * lde + c];
    }
}

/* p[off + r·ld + c] = 0 for r < rows, c < cols. */
__kernel void sce_zero(__global float *p, const ulong off, const long ld, const long rows,
                       const int cols)
{
    const int c = (int)get_global_id(0);
    if (c >= cols) return;
    for (long r = get_global_id(1); r < rows; r += get_global_size(1)) p[off + r * ld + c] = 0.0f;
}

/* Plain directions: out[i] = f·G_i, G_i = xr_gauss12(seed, step, i) (as the host computes). */
__kernel void sce_plain_dirs(const long count, const ulong seed, const ulong step, const float f,
                             __global float *restrict out, const ulong off)
{
    const long i = get_global_id(0);
    if (i < count) out[off + i] = f * xr_gauss12(seed, step, (ulong)i);
}

/* A chunk of the mixing matrix: R[r·nb + b] = xr_gauss12(seed, step, (r0 + r)·nb + b) for the
 * rows r0 .. r0 + m (0 for ignored rows). */
__kernel void sce_mix_r(const long r0, const int m, const int nb, const ulong seed,
                        const ulong step, __global const int *restrict y, const ulong offy,
                        const int y64, const long ignore, __global float *restrict R)
{
    const long g = get_global_id(0);
    if (g >= (long)m * nb) return;
    const long row = r0 + g / nb;
    const int b = (int)(g % nb);
    R[g] = ce_target(y, offy, y64, row) == ignore
               ? 0.0f
               : xr_gauss12(seed, step, (ulong)row * (ulong)nb + (ulong)b);
}

/* out[i] (+)= Σ_z parts[z·cnt + i] in z order (add: out already holds a sum). */
__kernel void sce_sum_parts(const int cnt, const int parts, __global const float *restrict P,
                            const int add, __global float *restrict out, const float alpha)
{
    const int i = get_global_id(0);
    if (i >= cnt) return;
    float acc = 0.0f;
    for (int z = 0; z < parts; ++z) acc += P[(long)z * cnt + i];
    out[i] = add ? out[i] + alpha * acc : alpha * acc;
}
