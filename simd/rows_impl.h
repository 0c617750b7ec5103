/* rows_impl.h — the SIMD row kernels, written once and instantiated per ISA.
 *
 * An ISA unit (avx2/avx2_rows.c, avx512/avx512_rows.c) defines the vector macros below and
 * includes this file, so AVX2 and AVX-512 share one implementation and cannot drift apart.
 *
 * Required macros: VF (float vector type), VW (lanes), VMASK (tail mask type),
 *   v_set1, v_zero, v_add, v_sub, v_mul, v_div, v_fma(a,b,c)=a·b+c, v_max, v_min, v_abs,
 *   v_copysign(mag, sign), v_round (to nearest), v_pow2i (2^n for integral-valued float n in
 *   [-126, 127]), v_lt_select(x, t, y, z) = x < t ? y : z (lane-wise),
 *   v_tail_mask(n) (first n lanes), v_loadu, v_storeu, v_load_tail(p, mask) (others 0),
 *   v_store_tail(p, v, mask), v_select_mask(mask, a, b) = mask ? a : b,
 *   v_hsum, v_hmax, v_gt_bits(a, b) (bit l set where lane l of a > b, as an unsigned),
 *   v_eq_bits(a, b) (the same for a == b),
 *   ROWS_PREFIX (name prefix), ROWS_ISA (xcat_isa value), ROWS_FUSED_ABOVE_DEFAULT (fused
 *   top-K scoring on by default); optionally FUSED_MR (rows of the fused micro-tile, 6 or 12).
 *
 * exp accuracy: range reduction x = n·ln2 + r (ln2 in two parts, Cody–Waite), |r| <= ln2/2,
 * degree-6 polynomial (Cephes expf coefficients): relative error <= 2 ulp on [-87.3, 88.7];
 * results below e^-87.3 flush to 0 (they are below FLT_MIN and irrelevant to a softmax).
 * tanh (softcap) as 1 − 2/(e^{2|u|}+1): absolute error <= 3e-7, so z = c·tanh is within
 * 3e-7·c of the true value. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

#define ROWS_CAT2(a, b) a##b
#define ROWS_CAT(a, b) ROWS_CAT2(a, b)
#define ROWS_FN(name) ROWS_CAT(ROWS_PREFIX, name)

static inline VF ROWS_FN(exp)(VF x)
{
    const VF lo = v_set1(-87.3f), hi = v_set1(88.7f);
    VF xc = v_min(v_max(x, lo), hi);
    VF n = v_round(v_mul(xc, v_set1(1.44269504088896341f)));
    VF r = v_fma(n, v_set1(-0.693359375f), xc); /* ln2 high part: exact product */
    r = v_fma(n, v_set1(2.12194440e-4f), r);    /* ln2 low part */
    VF p = v_set1(1.9875691500e-4f);
    p = v_fma(p, r, v_set1(1.3981999507e-3f));
    p = v_fma(p, r, v_set1(8.3334519073e-3f));
    p = v_fma(p, r, v_set1(4.1665795894e-2f));
    p = v_fma(p, r, v_set1(1.6666665459e-1f));
    p = v_fma(p, r, v_set1(5.0000001201e-1f));
    VF r2 = v_mul(r, r);
    VF y = v_add(v_fma(p, r2, r), v_set1(1.0f));
    y = v_mul(y, v_pow2i(n));
    y = v_lt_select(x, lo, v_zero(), y);
    /* NaN inputs: the min/max above may have replaced them; put them back. */
    return v_select_nan(x, y);
}

static inline VF ROWS_FN(logit)(VF x, VF s, float cap)
{
    VF r = v_mul(x, s);
    if (cap > 0.0f) {
        VF u = v_abs(v_div(r, v_set1(cap)));
        u = v_min(u, v_set1(9.0f)); /* tanh(9) rounds to 1 in float */
        VF e = ROWS_FN(exp)(v_add(u, u));
        VF t = v_sub(v_set1(1.0f), v_div(v_set1(2.0f), v_add(e, v_set1(1.0f))));
        r = v_mul(v_set1(cap), v_copysign(t, r));
    }
    return r;
}

static inline VF ROWS_FN(phi)(VF z, VF s, float cap)
{
    if (cap > 0.0f) {
        VF t = v_div(z, v_set1(cap));
        return v_mul(s, v_sub(v_set1(1.0f), v_mul(t, t)));
    }
    return s;
}

static float ROWS_FN(logits)(float *x, const float *b, int64_t n, float s, float cap,
                             double *zsum)
{
    const VF vs = v_set1(s), ninf = v_set1(-INFINITY);
    VF vmax = ninf, vsum = v_zero();
    int64_t j = 0;
    for (; j + VW <= n; j += VW) {
        VF v = v_loadu(x + j);
        if (b) v = v_add(v, v_loadu(b + j));
        VF z = ROWS_FN(logit)(v, vs, cap);
        v_storeu(x + j, z);
        vmax = v_max(vmax, z);
        vsum = v_add(vsum, z);
    }
    if (j < n) {
        VMASK m = v_tail_mask(n - j);
        VF v = v_load_tail(x + j, m);
        if (b) v = v_add(v, v_load_tail(b + j, m));
        VF z = ROWS_FN(logit)(v, vs, cap);
        v_store_tail(x + j, z, m);
        vmax = v_max(vmax, v_select_mask(m, z, ninf));
        vsum = v_add(vsum, v_select_mask(m, z, v_zero()));
    }
    *zsum += (double)v_hsum(vsum);
    return v_hmax(vmax);
}

static float ROWS_FN(softmax_weights)(float *z, int64_t n, float m, float s, float cap,
                                      float *phi)
{
    const VF vs = v_set1(s), vm = v_set1(m);
    VF vl = v_zero();
    int64_t j = 0;
    for (; j + VW <= n; j += VW) {
        VF v = v_loadu(z + j);
        VF e = ROWS_FN(exp)(v_sub(v, vm));
        VF f = ROWS_FN(phi)(v, vs, cap);
        if (phi) v_storeu(phi + j, f);
        vl = v_add(vl, e);
        v_storeu(z + j, v_mul(e, f));
    }
    if (j < n) {
        VMASK mk = v_tail_mask(n - j);
        VF v = v_load_tail(z + j, mk);
        VF e = v_select_mask(mk, ROWS_FN(exp)(v_sub(v, vm)), v_zero());
        VF f = ROWS_FN(phi)(v, vs, cap);
        if (phi) v_store_tail(phi + j, f, mk);
        vl = v_add(vl, e);
        v_store_tail(z + j, v_mul(e, f), mk);
    }
    return v_hsum(vl);
}

static inline VF ROWS_FN(grad_one)(VF x, VF bj, VF vs, float cap, VF vlse, VF va, VF vc)
{
    VF z = ROWS_FN(logit)(v_add(x, bj), vs, cap);
    VF p = ROWS_FN(exp)(v_sub(z, vlse));
    return v_mul(v_fma(va, p, v_sub(v_zero(), vc)), ROWS_FN(phi)(z, vs, cap));
}

static void ROWS_FN(grad)(float *x, const float *b, int64_t n, float s, float cap, float lse,
                          float a, float c, float *db)
{
    const VF vs = v_set1(s), vlse = v_set1(lse), va = v_set1(a), vc = v_set1(c);
    int64_t j = 0;
    for (; j + VW <= n; j += VW) {
        VF bj = b ? v_loadu(b + j) : v_zero();
        VF g = ROWS_FN(grad_one)(v_loadu(x + j), bj, vs, cap, vlse, va, vc);
        v_storeu(x + j, g);
        if (db) v_storeu(db + j, v_add(v_loadu(db + j), g));
    }
    if (j < n) {
        VMASK m = v_tail_mask(n - j);
        VF bj = b ? v_load_tail(b + j, m) : v_zero();
        VF g = ROWS_FN(grad_one)(v_load_tail(x + j, m), bj, vs, cap, vlse, va, vc);
        v_store_tail(x + j, g, m);
        if (db) v_store_tail(db + j, v_add(v_load_tail(db + j, m), g), m);
    }
}

/* Most lanes fail the threshold once a top-K has filled up: one compare + bit test per vector,
 * and only passing lanes are visited one by one. */
static int64_t ROWS_FN(select_above)(const float *x, int64_t n, float t, int32_t *idx)
{
    const VF vt = v_set1(t);
    int64_t count = 0, j = 0;
    for (; j + VW <= n; j += VW) {
        unsigned bits = v_gt_bits(v_loadu(x + j), vt);
        while (bits) {
            idx[count++] = (int32_t)(j + __builtin_ctz(bits));
            bits &= bits - 1;
        }
    }
    for (; j < n; ++j)
        if (x[j] > t) idx[count++] = (int32_t)j;
    return count;
}

/* Rows requested this many items ahead of their use (the gathers are bound by memory latency;
 * 8 rows ahead measured best for the scalar loop this replaces). */
#define GATHER_AHEAD 8

static inline void ROWS_FN(prefetch_row)(const float *e, int64_t d)
{
    for (int64_t off = 0; off < d; off += 16) __builtin_prefetch(e + off, 0, 0);
}

static inline VF ROWS_FN(dot_tail)(const float *h, const float *e, int64_t j, int64_t d, VF acc)
{
    if (j < d) {
        VMASK m = v_tail_mask(d - j);
        acc = v_fma(v_load_tail(h + j, m), v_load_tail(e + j, m), acc);
    }
    return acc;
}

static void ROWS_FN(gather_dots)(const float *h, const float *E, int64_t lde,
                                 const int64_t *items, int64_t n, int64_t d, float *out)
{
    for (int64_t k = 0; k < n && k < GATHER_AHEAD; ++k)
        if (items[k] >= 0) ROWS_FN(prefetch_row)(E + items[k] * lde, d);
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) { /* four rows in flight; a negative id reads h itself */
        for (int64_t u = k + GATHER_AHEAD; u < k + 4 + GATHER_AHEAD && u < n; ++u)
            if (items[u] >= 0) ROWS_FN(prefetch_row)(E + items[u] * lde, d);
        const float *e0 = items[k] >= 0 ? E + items[k] * lde : h;
        const float *e1 = items[k + 1] >= 0 ? E + items[k + 1] * lde : h;
        const float *e2 = items[k + 2] >= 0 ? E + items[k + 2] * lde : h;
        const float *e3 = items[k + 3] >= 0 ? E + items[k + 3] * lde : h;
        VF a0 = v_zero(), a1 = v_zero(), a2 = v_zero(), a3 = v_zero();
        int64_t j = 0;
        for (; j + VW <= d; j += VW) {
            const VF hv = v_loadu(h + j);
            a0 = v_fma(hv, v_loadu(e0 + j), a0);
            a1 = v_fma(hv, v_loadu(e1 + j), a1);
            a2 = v_fma(hv, v_loadu(e2 + j), a2);
            a3 = v_fma(hv, v_loadu(e3 + j), a3);
        }
        a0 = ROWS_FN(dot_tail)(h, e0, j, d, a0);
        a1 = ROWS_FN(dot_tail)(h, e1, j, d, a1);
        a2 = ROWS_FN(dot_tail)(h, e2, j, d, a2);
        a3 = ROWS_FN(dot_tail)(h, e3, j, d, a3);
        out[k] = items[k] >= 0 ? v_hsum(a0) : 0.0f;
        out[k + 1] = items[k + 1] >= 0 ? v_hsum(a1) : 0.0f;
        out[k + 2] = items[k + 2] >= 0 ? v_hsum(a2) : 0.0f;
        out[k + 3] = items[k + 3] >= 0 ? v_hsum(a3) : 0.0f;
    }
    for (; k < n; ++k) {
        if (items[k] < 0) {
            out[k] = 0.0f;
            continue;
        }
        const float *e = E + items[k] * lde;
        VF a = v_zero();
        int64_t j = 0;
        for (; j + VW <= d; j += VW) a = v_fma(v_loadu(h + j), v_loadu(e + j), a);
        out[k] = v_hsum(ROWS_FN(dot_tail)(h, e, j, d, a));
    }
}

static void ROWS_FN(gather_axpy)(float *dh, const float *coef, const float *E, int64_t lde,
                                 const int32_t *items, int64_t n, int64_t d)
{
    for (int64_t k = 0; k < n && k < GATHER_AHEAD; ++k)
        if (items[k] >= 0) ROWS_FN(prefetch_row)(E + (int64_t)items[k] * lde, d);
    for (int64_t k = 0; k < n; ++k) {
        if (k + GATHER_AHEAD < n && items[k + GATHER_AHEAD] >= 0)
            ROWS_FN(prefetch_row)(E + (int64_t)items[k + GATHER_AHEAD] * lde, d);
        if (items[k] < 0) continue;
        const float *e = E + (int64_t)items[k] * lde;
        const VF c = v_set1(coef[k]);
        int64_t j = 0;
        for (; j + VW <= d; j += VW) v_storeu(dh + j, v_fma(c, v_loadu(e + j), v_loadu(dh + j)));
        if (j < d) {
            VMASK m = v_tail_mask(d - j);
            v_store_tail(dh + j, v_fma(c, v_load_tail(e + j, m), v_load_tail(dh + j, m)), m);
        }
    }
}

/* ---- fused CE forward (loss only): the logit tile never leaves the registers ----------------
 *
 * Items are packed in panels of FUSED_NR = 2·VW: panel p holds items p·FUSED_NR + (0..FUSED_NR)
 * as d rows of FUSED_NR floats (item fastest), zero past the last item. A micro-tile is
 * FUSED_MR rows × one panel: with 6 rows 12 vector accumulators, two panel loads and six
 * broadcasts per k (AVX2: 15 of the 16 registers), the BLIS-style shape that keeps both FMA
 * ports busy; AVX-512's 32 registers take 12 rows (24 accumulators). Its
 * epilogue forms the logits, checks whether any exceeds the row's running max (one compare per
 * vector; the max rarely moves once a few hundred items are seen) and adds exp(z − m) lane-wise
 * into a per-row vector, so no horizontal sum or store happens per tile. */
#ifndef FUSED_MR
#define FUSED_MR 6 /* rows per micro-tile: 6 or 12 (the ISA unit may set it) */
#endif
#define FUSED_NR (2 * VW)

static void ROWS_FN(pack_items)(const float *E, int64_t lde, int64_t nc, int64_t d, float *P)
{
    for (int64_t p0 = 0; p0 < nc; p0 += FUSED_NR) {
        float *panel = P + p0 * d;
        const int64_t w = nc - p0 < FUSED_NR ? nc - p0 : FUSED_NR;
        for (int64_t lane = 0; lane < FUSED_NR; ++lane) {
            if (lane < w) {
                const float *e = E + (p0 + lane) * lde;
                for (int64_t k = 0; k < d; ++k) panel[k * FUSED_NR + lane] = e[k];
            } else {
                for (int64_t k = 0; k < d; ++k) panel[k * FUSED_NR + lane] = 0.0f;
            }
        }
    }
}

/* One row's logits of a micro-tile into the running state: z = logit(acc + b) (lanes past the
 * chunk's items −inf), then m / l updated. */
static inline void ROWS_FN(fused_row)(VF x0, VF x1, VF b0, VF b1, VMASK t0, VMASK t1,
                                      int tail, VF vs, float cap, float *m, VF *vm, VF *lv,
                                      double *scale)
{
    const VF ninf = v_set1(-INFINITY);
    VF z0 = ROWS_FN(logit)(v_add(x0, b0), vs, cap);
    VF z1 = ROWS_FN(logit)(v_add(x1, b1), vs, cap);
    if (tail) {
        z0 = v_select_mask(t0, z0, ninf);
        z1 = v_select_mask(t1, z1, ninf);
    }
    const VF t = v_max(z0, z1);
    if (v_gt_bits(t, *vm)) { /* the row's max moves: rescale what was summed so far */
        const float mt = v_hmax(t);
        const float mn = mt > *m ? mt : *m;
        const double alpha = *m == -INFINITY ? 0.0 : exp((double)*m - (double)mn);
        *lv = v_mul(*lv, v_set1((float)alpha));
        *scale *= alpha;
        *m = mn;
        *vm = v_set1(mn);
    }
    *lv = v_add(*lv, v_add(ROWS_FN(exp)(v_sub(z0, *vm)), ROWS_FN(exp)(v_sub(z1, *vm))));
}

#define FUSED_ROW_FMA(r)                                                                       \
    do {                                                                                       \
        const VF hb_ = v_set1(h##r[k]);                                                        \
        a##r##0 = v_fma(hb_, e0, a##r##0);                                                     \
        a##r##1 = v_fma(hb_, e1, a##r##1);                                                     \
    } while (0)

/* The FUSED_MR × 2-vector dot-product tile over k < d, kept out of line so that the compiler has
 * all vector registers for it (inlined into fused_lse, GCC 12 kept epilogue values live across
 * the k loop and spilled an accumulator: a store-to-load chain per iteration, half the speed).
 * Rows are passed as h[0..FUSED_MR) (all valid pointers). */
static __attribute__((noinline)) void ROWS_FN(fused_tile)(const float *const *h,
                                                          const float *panel, int64_t d,
                                                          VF *out)
{
    const float *h0 = h[0], *h1 = h[1], *h2 = h[2], *h3 = h[3], *h4 = h[4], *h5 = h[5];
    VF a00 = v_zero(), a01 = v_zero(), a10 = v_zero(), a11 = v_zero();
    VF a20 = v_zero(), a21 = v_zero(), a30 = v_zero(), a31 = v_zero();
    VF a40 = v_zero(), a41 = v_zero(), a50 = v_zero(), a51 = v_zero();
#if FUSED_MR == 12
    const float *h6 = h[6], *h7 = h[7], *h8 = h[8], *h9 = h[9], *h10 = h[10], *h11 = h[11];
    VF a60 = v_zero(), a61 = v_zero(), a70 = v_zero(), a71 = v_zero();
    VF a80 = v_zero(), a81 = v_zero(), a90 = v_zero(), a91 = v_zero();
    VF a100 = v_zero(), a101 = v_zero(), a110 = v_zero(), a111 = v_zero();
#endif
    for (int64_t k = 0; k < d; ++k) {
        const VF e0 = v_loadu(panel + k * FUSED_NR), e1 = v_loadu(panel + k * FUSED_NR + VW);
        FUSED_ROW_FMA(0);
        FUSED_ROW_FMA(1);
        FUSED_ROW_FMA(2);
        FUSED_ROW_FMA(3);
        FUSED_ROW_FMA(4);
        FUSED_ROW_FMA(5);
#if FUSED_MR == 12
        FUSED_ROW_FMA(6);
        FUSED_ROW_FMA(7);
        FUSED_ROW_FMA(8);
        FUSED_ROW_FMA(9);
        FUSED_ROW_FMA(10);
        FUSED_ROW_FMA(11);
#endif
    }
    out[0] = a00, out[1] = a01, out[2] = a10, out[3] = a11, out[4] = a20, out[5] = a21;
    out[6] = a30, out[7] = a31, out[8] = a40, out[9] = a41, out[10] = a50, out[11] = a51;
#if FUSED_MR == 12
    out[12] = a60, out[13] = a61, out[14] = a70, out[15] = a71, out[16] = a80, out[17] = a81;
    out[18] = a90, out[19] = a91, out[20] = a100, out[21] = a101, out[22] = a110, out[23] = a111;
#endif
}

/* A panel's tail and bias: lanes past the chunk's nc items are masked (tail), and the bias of
 * its 2·VW items is loaded (0 without a bias). */
typedef struct fused_panel {
    int tail;
    VMASK t0, t1;
    VF b0, b1;
} fused_panel;

static inline fused_panel ROWS_FN(fused_panel_at)(const float *b, int64_t nc, int64_t p0)
{
    const int64_t w = nc - p0;
    fused_panel q;
    q.tail = w < FUSED_NR;
    q.t0 = v_tail_mask(w < VW ? w : VW);
    q.t1 = v_tail_mask(w <= VW ? 0 : (w < FUSED_NR ? w - VW : VW));
    q.b0 = q.b1 = v_zero();
    if (b) {
        q.b0 = q.tail ? v_load_tail(b + p0, q.t0) : v_loadu(b + p0);
        q.b1 = q.tail ? v_load_tail(b + p0 + VW, q.t1) : v_loadu(b + p0 + VW);
    }
    return q;
}

/* The micro-tile's row pointers: rows past nr repeat the first (their results are dropped). */
static inline void ROWS_FN(fused_rows)(const float *const *h, int nr, const float **hr)
{
    for (int r = 0; r < FUSED_MR; ++r) hr[r] = h[r < nr ? r : 0];
}

static void ROWS_FN(fused_lse)(const float *const *h, int nr, const float *P, int64_t nc,
                               int64_t d, const float *b, float s, float cap, float *m,
                               double *l)
{
    const float *hr[FUSED_MR];
    ROWS_FN(fused_rows)(h, nr, hr);
    const VF vs = v_set1(s);
    float mr[FUSED_MR];
    VF vm[FUSED_MR], lv[FUSED_MR], acc[2 * FUSED_MR];
    double scale[FUSED_MR];
    for (int r = 0; r < FUSED_MR; ++r) {
        mr[r] = r < nr ? m[r] : m[0];
        vm[r] = v_set1(mr[r]);
        lv[r] = v_zero();
        scale[r] = 1.0;
    }
    for (int64_t p0 = 0; p0 < nc; p0 += FUSED_NR) {
        ROWS_FN(fused_tile)(hr, P + p0 * d, d, acc);
        const fused_panel q = ROWS_FN(fused_panel_at)(b, nc, p0);
        for (int r = 0; r < nr; ++r)
            ROWS_FN(fused_row)(acc[2 * r], acc[2 * r + 1], q.b0, q.b1, q.t0, q.t1, q.tail, vs,
                               cap, &mr[r], &vm[r], &lv[r], &scale[r]);
    }
    for (int r = 0; r < nr; ++r) {
        l[r] = l[r] * scale[r] + (double)v_hsum(lv[r]);
        m[r] = mr[r];
    }
}

/* Fused top-K scoring: the same register tile, and for each row the items whose score passes
 * its filter, appended in ascending item order (a lane's bit per score; a row's passing lanes
 * are rare once its top-K is known, so most tiles end in one compare per vector). */
static void ROWS_FN(fused_above)(const float *const *h, int nr, const float *P, int64_t nc,
                                 int64_t d, const float *b, const float *thr, const int *full,
                                 int32_t *idx, float *sc, int64_t ld, int64_t *cnt)
{
    const float *hr[FUSED_MR];
    ROWS_FN(fused_rows)(h, nr, hr);
    VF acc[2 * FUSED_MR];
    for (int r = 0; r < nr; ++r) cnt[r] = 0;
    for (int64_t p0 = 0; p0 < nc; p0 += FUSED_NR) {
        ROWS_FN(fused_tile)(hr, P + p0 * d, d, acc);
        const fused_panel q = ROWS_FN(fused_panel_at)(b, nc, p0);
        const int64_t w = nc - p0;
        /* lanes that hold items: all, or the first w */
        const uint64_t valid = q.tail ? ((uint64_t)1 << w) - 1 : ~(uint64_t)0;
        for (int r = 0; r < nr; ++r) {
            const VF x0 = v_add(acc[2 * r], q.b0), x1 = v_add(acc[2 * r + 1], q.b1);
            uint64_t bits;
            if (full[r]) {
                const VF t = v_set1(thr[r]);
                bits = (uint64_t)v_gt_bits(x0, t) | ((uint64_t)v_gt_bits(x1, t) << VW);
            } else { /* not full yet: every non-NaN score, −inf included */
                const VF ninf = v_set1(-INFINITY);
                bits = (uint64_t)(v_gt_bits(x0, ninf) | v_eq_bits(x0, ninf)) |
                       ((uint64_t)(v_gt_bits(x1, ninf) | v_eq_bits(x1, ninf)) << VW);
            }
            bits &= valid;
            if (!bits) continue;
            float tmp[FUSED_NR];
            v_storeu(tmp, x0);
            v_storeu(tmp + VW, x1);
            int32_t *ri = idx + r * ld;
            float *rs = sc + r * ld;
            int64_t n = cnt[r];
            while (bits) {
                const int lane = __builtin_ctzll(bits);
                ri[n] = (int32_t)(p0 + lane);
                rs[n] = tmp[lane];
                ++n;
                bits &= bits - 1;
            }
            cnt[r] = n;
        }
    }
}

const xcat_row_kernels ROWS_CAT(xcat_row_kernels_, ROWS_NAME) = {
    .isa = ROWS_ISA,
    .logits = ROWS_FN(logits),
    .softmax_weights = ROWS_FN(softmax_weights),
    .grad = ROWS_FN(grad),
    .select_above = ROWS_FN(select_above),
    .gather_dots = ROWS_FN(gather_dots),
    .gather_axpy = ROWS_FN(gather_axpy),
    .fused_nr = FUSED_NR,
    .fused_mr = FUSED_MR,
    .pack_items = ROWS_FN(pack_items),
    .fused_lse = ROWS_FN(fused_lse),
    .fused_above = ROWS_FN(fused_above),
    .fused_above_default = ROWS_FUSED_ABOVE_DEFAULT,
};
