/*
 * Suite "sce": XCAT_LOSS_SCE on every target.
 *
 * - reference: the whole algorithm in float64 — the directions recomputed from cl/rng.cl, the
 *   selections checked against float64 scores (every selected row/item scores at least as high
 *   as every one left out, in descending order, ties to the lower index, within float rounding),
 *   and, with that selection held fixed, the loss, lse, dH, dE and db of steps 3–5 (xcat.h) in
 *   float64 — plain and mixed directions, bias, weights, softcap, ignored rows, banned items,
 *   every reduction, upstream gradients, awkward shapes.
 * - selections equal on every backend for the same seed (up to float64 near-ties), and planted
 *   exact ties (duplicated rows and items) resolved to the lower index;
 * - the limit case k_y = C, one bucket, k_x = N equals full CE (XCAT_LOSS_CE);
 * - finite differences of the library's own forward with the selection held fixed;
 * - bitwise determinism over thread counts (CPU) and run to run (OpenCL); errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XCAT_RNG_HOST 1
#include "../cl/rng.cl"

#include "test_util.h"

typedef struct sce_case {
    const char *name;
    int64_t n, c, d;
    int64_t nb, kx, ky;
    int mix;
    xcat_reduction red;
    int bias, weights, banned, pad, upstream;
    double ignore_frac;
    float scale, softcap;
    int collide; /* positives 5 + 65,536·(i mod 3): equal low 16 bits, different items */
} sce_case;

static const sce_case CASES[] = {
    {"plain", 37, 211, 13, 5, 9, 17},
    {"mix_bias_w", 45, 150, 8, 7, 11, 23, 1, XCAT_REDUCTION_MEAN, 1, 1, 1, 3, 0, 0.2},
    {"sum_softcap", 29, 97, 6, 4, 29, 40, 0, XCAT_REDUCTION_SUM, 1, 0, 1, 0, 1, 0.1, 1.5f, 4.0f},
    {"none_upstream", 33, 64, 5, 9, 6, 64, 0, XCAT_REDUCTION_NONE, 0, 1, 0, 2, 1, 0.3},
    {"defaults", 50, 300, 16, 0, 0, 0, 0, XCAT_REDUCTION_MEAN, 0, 0, 1},
    {"n1", 1, 3, 2, 2, 1, 2},
    /* a catalog past 2^16 with positives equal in their low 16 bits: both digits of the
     * positives' radix grouping run (memory errors there show under ASan) */
    {"wide_catalog", 41, 140001, 3, 3, 20, 8, .collide = 1},
};
#define NUM_CASES ((int)(sizeof CASES / sizeof *CASES))

typedef struct sce_data {
    int64_t ld, nb, kx, ky;
    float *H, *E, *b, *w, *up;
    int64_t *y, *ban, nban;
} sce_data;

static xcat_loss_desc desc_of(const sce_case *s)
{
    xcat_loss_desc d;
    xcat_loss_desc_init(&d, XCAT_LOSS_SCE);
    d.reduction = s->red;
    d.scale = s->scale > 0 ? s->scale : 1.0f;
    d.softcap = s->softcap;
    d.seed = 0x5CEull + (uint64_t)s->n;
    d.sce_buckets = s->nb;
    d.sce_rows_per_bucket = s->kx;
    d.sce_items_per_bucket = s->ky;
    d.sce_mix_rows = s->mix;
    return d;
}

static int64_t isqrt2(int64_t n)
{
    int64_t v = (int64_t)floor(2.0 * sqrt((double)n));
    return v < 1 ? 1 : v;
}

static void make(const sce_case *s, sce_data *t)
{
    memset(t, 0, sizeof *t);
    t->ld = s->d + s->pad;
    t->nb = s->nb ? s->nb : isqrt2(s->n);
    t->kx = s->kx ? s->kx : isqrt2(s->n);
    if (t->kx > s->n) t->kx = s->n;
    t->ky = s->ky ? s->ky : (s->c < 256 ? s->c : 256);
    t->H = test_alloc_floats(s->n * t->ld);
    t->E = test_alloc_floats(s->c * t->ld);
    test_fill_matrix(t->H, s->n, s->d, t->ld, -1.0f, 1.0f);
    test_fill_matrix(t->E, s->c, s->d, t->ld, -1.0f, 1.0f);
    if (s->bias) {
        t->b = test_alloc_floats(s->c);
        test_fill_matrix(t->b, 1, s->c, s->c, -0.5f, 0.5f);
    }
    if (s->weights) {
        t->w = test_alloc_floats(s->n);
        test_fill_matrix(t->w, 1, s->n, s->n, 0.2f, 2.0f);
    }
    if (s->upstream) {
        const int64_t m = s->red == XCAT_REDUCTION_NONE ? s->n : 1;
        t->up = test_alloc_floats(m);
        test_fill_matrix(t->up, 1, m, m, -1.5f, 1.5f);
    }
    t->y = test_alloc((size_t)s->n * sizeof *t->y);
    test_fill_targets(t->y, s->n, s->c, s->ignore_frac, -100);
    for (int64_t i = 0; s->collide && i < s->n; ++i) t->y[i] = 5 + 65536 * (i % 3);
    if (s->banned) { /* item 0 (padding) and a few others, unsorted, with a repeat */
        t->nban = 4;
        t->ban = test_alloc(4 * sizeof *t->ban);
        t->ban[0] = s->c - 1;
        t->ban[1] = 0;
        t->ban[2] = test_rand_int(0, s->c);
        t->ban[3] = 0;
    }
}

static void unmake(sce_data *t)
{
    free(t->H), free(t->E), free(t->b), free(t->w), free(t->up), free(t->y), free(t->ban);
}

typedef struct sce_tensors {
    xcat_tensor *H, *E, *b, *w, *y, *ban;
} sce_tensors;

static void tensors(xcat_context *ctx, const sce_case *s, sce_data *t, sce_tensors *x)
{
    memset(x, 0, sizeof *x);
    x->H = test_input_matrix(ctx, s->n, s->d, t->ld, t->H);
    x->E = test_input_matrix(ctx, s->c, s->d, t->ld, t->E);
    if (t->b) x->b = test_tensor(ctx, XCAT_DTYPE_F32, s->c, 1, t->b);
    if (t->w) x->w = test_tensor(ctx, XCAT_DTYPE_F32, s->n, 1, t->w);
    x->y = test_tensor(ctx, XCAT_DTYPE_I64, s->n, 1, t->y);
    if (t->ban) x->ban = test_tensor(ctx, XCAT_DTYPE_I64, t->nban, 1, t->ban);
}

static void untensors(sce_tensors *x)
{
    TEST_FREE_TENSORS(x->H, x->E, x->b, x->w, x->y, x->ban);
}

static xcat_loss_args args_of(const sce_tensors *x, uint64_t step)
{
    xcat_loss_args a;
    xcat_loss_args_init(&a);
    a.hidden = x->H;
    a.items = x->E;
    a.bias = x->b;
    a.row_weights = x->w;
    a.targets = x->y;
    a.banned_items = x->ban;
    a.step = step;
    return a;
}

static xcat_loss_plan *plan_of(xcat_context *ctx, const sce_case *s)
{
    xcat_loss_desc d = desc_of(s);
    xcat_loss_plan *p = NULL;
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, s->n, s->c, s->d, &p), "plan");
    return p;
}

/* The selection a call uses, read as int64. */
static void selection(xcat_context *ctx, xcat_loss_plan *p, const xcat_loss_args *a,
                      const sce_data *t, int64_t **X, int64_t **Y)
{
    xcat_tensor *tx = test_tensor(ctx, XCAT_DTYPE_I64, t->nb, t->kx, NULL);
    xcat_tensor *ty = test_tensor(ctx, XCAT_DTYPE_I32, t->nb, t->ky, NULL);
    test_expect_ok(ctx, xcat_loss_sce_buckets(p, a, tx, ty), "sce_buckets");
    *X = test_alloc((size_t)(t->nb * t->kx) * sizeof **X);
    *Y = test_alloc((size_t)(t->nb * t->ky) * sizeof **Y);
    int32_t *y32 = test_alloc((size_t)(t->nb * t->ky) * sizeof *y32);
    ck_assert_int_eq(xcat_tensor_read(tx, *X, 0), XCAT_OK);
    ck_assert_int_eq(xcat_tensor_read(ty, y32, 0), XCAT_OK);
    for (int64_t i = 0; i < t->nb * t->ky; ++i) (*Y)[i] = y32[i];
    free(y32);
    TEST_FREE_TENSORS(tx, ty);
}

/* ---- float64 reference ------------------------------------------------------------------- */

/* The directions in float64 (as float values: plain ones are exact; mixed ones are the float64
 * product of the float R and H). */
static double *ref_directions(const sce_case *s, const sce_data *t, uint64_t step)
{
    const xcat_loss_desc d = desc_of(s);
    double *O = calloc((size_t)(t->nb * s->d), sizeof *O);
    const float f = (float)pow((double)s->d, -0.25);
    for (int64_t q = 0; q < t->nb; ++q)
        for (int64_t u = 0; u < s->d; ++u) {
            if (!s->mix) {
                O[q * s->d + u] = (double)(f * xr_gauss12(d.seed, step, (uint64_t)(q * s->d + u)));
                continue;
            }
            double acc = 0.0;
            for (int64_t i = 0; i < s->n; ++i)
                if (t->y[i] != -100)
                    acc += (double)xr_gauss12(d.seed, step, (uint64_t)(i * t->nb + q)) *
                           (double)t->H[i * t->ld + u];
            O[q * s->d + u] = (double)f * acc;
        }
    return O;
}

static double dotd(const double *a, const float *b, int64_t d)
{
    double s = 0.0;
    for (int64_t u = 0; u < d; ++u) s += a[u] * (double)b[u];
    return s;
}

static bool banned_item(const sce_data *t, int64_t j)
{
    for (int64_t k = 0; k < t->nban; ++k)
        if (t->ban[k] == j) return true;
    return false;
}

/* Check one bucket's selection `sel` (k entries) of candidates [0, m) with float64 scores
 * `sc` and eligibility `ok`: descending (ties to the lower index, within tol), nothing
 * eligible left out scoring above the last selected, −1 only when fewer are eligible. */
static void check_selection(const char *what, int64_t q, const int64_t *sel, int64_t k,
                            const double *sc, const bool *ok, int64_t m, double tol)
{
    int64_t eligible = 0;
    for (int64_t i = 0; i < m; ++i) eligible += ok[i];
    const int64_t want = eligible < k ? eligible : k;
    bool *in = calloc((size_t)m, 1);
    for (int64_t r = 0; r < k; ++r) {
        if (r >= want) {
            ck_assert_msg(sel[r] == -1, "%s bucket %lld: slot %lld is %lld, expected −1", what,
                          (long long)q, (long long)r, (long long)sel[r]);
            continue;
        }
        const int64_t i = sel[r];
        ck_assert_msg(i >= 0 && i < m && ok[i] && !in[i], "%s bucket %lld: slot %lld = %lld is "
                      "not an eligible new candidate", what, (long long)q, (long long)r,
                      (long long)i);
        in[i] = true;
        if (r > 0) {
            const int64_t p = sel[r - 1];
            ck_assert_msg(sc[p] >= sc[i] - tol, "%s bucket %lld: slot %lld (%lld, %.9g) after "
                          "(%lld, %.9g)", what, (long long)q, (long long)r, (long long)i, sc[i],
                          (long long)p, sc[p]);
            if (sc[p] == sc[i]) /* exact ties (planted duplicates): the lower index first */
                ck_assert_msg(p < i, "%s bucket %lld: tie %lld before %lld", what,
                              (long long)q, (long long)p, (long long)i);
        }
    }
    if (want > 0) {
        const double last = sc[sel[want - 1]];
        for (int64_t i = 0; i < m; ++i)
            if (ok[i] && !in[i])
                ck_assert_msg(sc[i] <= last + tol && !(sc[i] == last && i < sel[want - 1]),
                              "%s bucket %lld: %lld (%.9g) left out, last selected %.9g", what,
                              (long long)q, (long long)i, sc[i], last);
    }
    free(in);
}

static void ref_check_selection(const sce_case *s, const sce_data *t, uint64_t step,
                                const int64_t *X, const int64_t *Y)
{
    double *O = ref_directions(s, t, step);
    const int64_t m = s->n > s->c ? s->n : s->c;
    double *sc = malloc((size_t)m * sizeof *sc);
    bool *ok = malloc((size_t)m);
    for (int64_t q = 0; q < t->nb; ++q) {
        const double *o = O + q * s->d;
        double mx = 0.0;
        for (int64_t i = 0; i < s->n; ++i) {
            sc[i] = dotd(o, t->H + i * t->ld, s->d);
            ok[i] = t->y[i] != -100;
            if (fabs(sc[i]) > mx) mx = fabs(sc[i]);
        }
        check_selection("rows", q, X + q * t->kx, t->kx, sc, ok, s->n, 1e-5 * (1.0 + mx));
        mx = 0.0;
        for (int64_t j = 0; j < s->c; ++j) {
            sc[j] = dotd(o, t->E + j * t->ld, s->d);
            ok[j] = !banned_item(t, j);
            if (fabs(sc[j]) > mx) mx = fabs(sc[j]);
        }
        check_selection("items", q, Y + q * t->ky, t->ky, sc, ok, s->c, 1e-5 * (1.0 + mx));
    }
    free(O), free(sc), free(ok);
}

typedef struct sce_ref {
    double *loss; /* reduced (1) or per row (N) */
    double *lse, *dH, *dE, *db;
    int64_t *winner;
} sce_ref;

static double ref_logit(const sce_case *s, const sce_data *t, int64_t i, int64_t j, double *phi)
{
    double r = 0.0;
    for (int64_t u = 0; u < s->d; ++u) r += (double)t->H[i * t->ld + u] * t->E[j * t->ld + u];
    if (t->b) r += t->b[j];
    const double sc = s->scale > 0 ? s->scale : 1.0;
    r *= sc;
    if (s->softcap > 0) {
        const double z = s->softcap * tanh(r / s->softcap);
        *phi = sc * (1.0 - (z / s->softcap) * (z / s->softcap));
        return z;
    }
    *phi = sc;
    return r;
}

/* Steps 3–5 in float64 with the selection (X, Y) held fixed. */
static void reference(const sce_case *s, const sce_data *t, const int64_t *X, const int64_t *Y,
                      sce_ref *R)
{
    const int64_t n = s->n, c = s->c, d = s->d;
    double *best = malloc((size_t)n * sizeof *best);
    R->winner = malloc((size_t)n * sizeof *R->winner);
    R->lse = calloc((size_t)n, sizeof *R->lse);
    R->loss = calloc((size_t)n, sizeof *R->loss);
    R->dH = calloc((size_t)(n * d), sizeof *R->dH);
    R->dE = calloc((size_t)(c * d), sizeof *R->dE);
    R->db = calloc((size_t)c, sizeof *R->db);
    for (int64_t i = 0; i < n; ++i) R->winner[i] = -1;
    double *z = malloc((size_t)(t->ky + 1) * sizeof *z), *ph = malloc((size_t)(t->ky + 1) * 8);
    for (int64_t q = 0; q < t->nb; ++q)
        for (int64_t r = 0; r < t->kx; ++r) {
            const int64_t i = X[q * t->kx + r];
            if (i < 0) continue;
            double mx = ref_logit(s, t, i, t->y[i], &ph[t->ky]);
            const double zp = mx;
            for (int64_t u = 0; u < t->ky; ++u) {
                const int64_t j = Y[q * t->ky + u];
                z[u] = (j < 0 || j == t->y[i]) ? -INFINITY : ref_logit(s, t, i, j, &ph[u]);
                if (z[u] > mx) mx = z[u];
            }
            double sum = exp(zp - mx);
            for (int64_t u = 0; u < t->ky; ++u) sum += exp(z[u] - mx);
            const double lse = mx + log(sum), l = lse - zp;
            if (R->winner[i] < 0 || l > best[i]) {
                best[i] = l;
                R->winner[i] = q;
                R->lse[i] = lse;
            }
        }
    double total = 0.0, wsum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        if (R->winner[i] < 0) continue;
        const double w = t->w ? t->w[i] : 1.0;
        R->loss[i] = w * best[i];
        total += w * best[i];
        wsum += w;
    }
    double scale = 1.0;
    if (s->red != XCAT_REDUCTION_NONE) {
        if (s->red == XCAT_REDUCTION_MEAN) scale = wsum != 0.0 ? 1.0 / wsum : 0.0;
        R->loss[0] = total * scale;
    }
    for (int64_t i = 0; i < n; ++i) {
        const int64_t q = R->winner[i];
        if (q < 0) continue;
        const double up = t->up ? t->up[s->red == XCAT_REDUCTION_NONE ? i : 0] : 1.0;
        const double g = up * scale * (t->w ? t->w[i] : 1.0);
        double phi;
        const double zp = ref_logit(s, t, i, t->y[i], &phi);
        const double cp = g * (exp(zp - R->lse[i]) - 1.0) * phi;
        for (int64_t u = 0; u <= t->ky; ++u) {
            const int64_t j = u < t->ky ? Y[q * t->ky + u] : t->y[i];
            double cf = cp;
            if (u < t->ky) {
                if (j < 0 || j == t->y[i]) continue;
                const double zj = ref_logit(s, t, i, j, &phi);
                cf = g * exp(zj - R->lse[i]) * phi;
            }
            for (int64_t v = 0; v < d; ++v) {
                R->dH[i * d + v] += cf * t->E[j * t->ld + v];
                R->dE[j * d + v] += cf * t->H[i * t->ld + v];
            }
            R->db[j] += cf;
        }
    }
    free(best), free(z), free(ph);
}

static void ref_free(sce_ref *R)
{
    free(R->loss), free(R->lse), free(R->dH), free(R->dE), free(R->db), free(R->winner);
}

static float *read_matrix(const xcat_tensor *t, int64_t rows, int64_t cols)
{
    float *v = test_alloc_floats(rows * cols);
    ck_assert_int_eq(xcat_tensor_read(t, v, cols), XCAT_OK);
    return v;
}

static void run_reference_case(xcat_context *ctx, const sce_case *s)
{
    sce_data t;
    make(s, &t);
    sce_tensors x;
    tensors(ctx, s, &t, &x);
    xcat_loss_plan *p = plan_of(ctx, s);
    const uint64_t step = 7;
    xcat_loss_args a = args_of(&x, step);
    int64_t *X, *Y;
    selection(ctx, p, &a, &t, &X, &Y);
    ref_check_selection(s, &t, step, X, Y);
    sce_ref R;
    reference(s, &t, X, Y, &R);

    const bool none = s->red == XCAT_REDUCTION_NONE;
    const int64_t nl = none ? s->n : 1;
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, nl, 1, NULL);
    xcat_tensor *lse = test_tensor(ctx, XCAT_DTYPE_F32, s->n, 1, NULL);
    xcat_tensor *up = t.up ? test_tensor(ctx, XCAT_DTYPE_F32, nl, 1, t.up) : NULL;
    xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s->n, s->d, NULL);
    xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s->c, s->d, NULL);
    xcat_tensor *db = t.b ? test_tensor(ctx, XCAT_DTYPE_F32, s->c, 1, NULL) : NULL;
    test_expect_ok(ctx, xcat_loss_forward(p, &a, L, lse), "forward");
    for (int pass = 0; pass < 2; ++pass) { /* after forward (reuse), then again (recompute) */
        if (pass == 1) {
            xcat_loss_args b = args_of(&x, step);
            /* a forward on another step invalidates the saved state: backward recomputes */
            b.step = step + 1;
            test_expect_ok(ctx, xcat_loss_forward(p, &b, L, NULL), "forward other step");
        }
        test_expect_ok(ctx, xcat_loss_backward(p, &a, up, dH, dE, db), "backward");
        float *gh = read_matrix(dH, s->n, s->d), *ge = read_matrix(dE, s->c, s->d);
        char what[96];
        snprintf(what, sizeof what, "%s dH (pass %d)", s->name, pass);
        test_check_close(what, gh, R.dH, s->n * s->d, 1e-4 * (1e-3 + test_max_abs(R.dH, s->n * s->d)), 0);
        snprintf(what, sizeof what, "%s dE (pass %d)", s->name, pass);
        test_check_close(what, ge, R.dE, s->c * s->d, 1e-4 * (1e-3 + test_max_abs(R.dE, s->c * s->d)), 0);
        if (db) {
            float *gb = read_matrix(db, s->c, 1);
            snprintf(what, sizeof what, "%s db (pass %d)", s->name, pass);
            test_check_close(what, gb, R.db, s->c, 1e-4 * (1e-3 + test_max_abs(R.db, s->c)), 0);
            free(gb);
        }
        free(gh), free(ge);
    }
    test_expect_ok(ctx, xcat_loss_forward(p, &a, L, lse), "forward again");
    float *gl = read_matrix(L, nl, 1), *gs = read_matrix(lse, s->n, 1);
    char what[96];
    snprintf(what, sizeof what, "%s loss", s->name);
    test_check_close(what, gl, R.loss, nl, 2e-5, 2e-5);
    snprintf(what, sizeof what, "%s lse", s->name);
    test_check_close(what, gs, R.lse, s->n, 2e-5, 2e-5);
    free(gl), free(gs), free(X), free(Y);
    ref_free(&R);
    TEST_FREE_TENSORS(L, lse, up, dH, dE, db);
    untensors(&x);
    xcat_loss_plan_free(p);
    unmake(&t);
}

START_TEST(test_reference)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx) return;
    for (int ci = 0; ci < NUM_CASES; ++ci) {
        test_rng_stream(CASES[ci].name, _i);
        run_reference_case(ctx, &CASES[ci]);
    }
    xcat_context_free(ctx);
}
END_TEST

/* OpenCL in small pieces: waves of 2 buckets (forward and backward) and mixing batches of 8
 * rows (XCAT_CL_SCE_WAVE / XCAT_CL_SCE_MIX_CHUNK, read by contexts without IGNORE_ENV) give the
 * float64 reference's results as one piece does. */
START_TEST(test_opencl_waves)
{
    const int ti = test_first_opencl_target() + _i;
    if (ti >= test_num_targets()) return;
    setenv("XCAT_CL_SCE_WAVE", "2", 1);
    setenv("XCAT_CL_SCE_MIX_CHUNK", "8", 1);
    xcat_context *ctx = test_target_context_flags(ti, 2, 0);
    if (!ctx) return;
    for (int ci = 0; ci < 3; ++ci) {
        test_rng_stream(CASES[ci].name, ti + 100);
        run_reference_case(ctx, &CASES[ci]);
    }
    xcat_context_free(ctx);
    unsetenv("XCAT_CL_SCE_WAVE");
    unsetenv("XCAT_CL_SCE_MIX_CHUNK");
}
END_TEST

/* Every target selects the same buckets as the CPU backend for the same seed and step, up to
 * float64 near-ties; with duplicated rows and items (exact ties) the lower index wins. */
START_TEST(test_selection_across_backends)
{
    const sce_case s = {"xsel", 60, 180, 7, 6, 10, 30, 0, XCAT_REDUCTION_MEAN, 0, 0, 1, 1, 0, 0.1};
    test_rng_stream("xsel", 0);
    sce_data t;
    make(&s, &t);
    for (int64_t i = 0; i + 1 < s.n; i += 5) /* plant exact ties */
        memcpy(t.H + (i + 1) * t.ld, t.H + i * t.ld, (size_t)s.d * sizeof(float));
    for (int64_t j = 0; j + 1 < s.c; j += 4)
        memcpy(t.E + (j + 1) * t.ld, t.E + j * t.ld, (size_t)s.d * sizeof(float));
    int64_t *X0 = NULL, *Y0 = NULL;
    for (int ti = 0; ti < test_num_targets(); ++ti) {
        xcat_context *ctx = test_target_context(ti, 2);
        if (!ctx) continue;
        sce_tensors x;
        tensors(ctx, &s, &t, &x);
        xcat_loss_plan *p = plan_of(ctx, &s);
        xcat_loss_args a = args_of(&x, 11);
        int64_t *X, *Y;
        selection(ctx, p, &a, &t, &X, &Y);
        ref_check_selection(&s, &t, 11, X, Y);
        if (!X0) {
            X0 = X;
            Y0 = Y;
        } else {
            /* equal, or differing only where float64 says the scores are within rounding
             * (checked by ref_check_selection above) */
            int64_t diff = 0;
            for (int64_t k = 0; k < t.nb * t.kx; ++k) diff += X[k] != X0[k];
            for (int64_t k = 0; k < t.nb * t.ky; ++k) diff += Y[k] != Y0[k];
            ck_assert_msg(diff <= 2, "target %s: %lld selection entries differ from the first",
                          test_target_get(ti)->name, (long long)diff);
            free(X), free(Y);
        }
        untensors(&x);
        xcat_loss_plan_free(p);
        xcat_context_free(ctx);
    }
    free(X0), free(Y0);
    unmake(&t);
}
END_TEST

/* One bucket holding every row and every item is full-softmax CE. */
START_TEST(test_full_bucket_equals_ce)
{
    xcat_context *ctx = test_target_context(_i, 2);
    if (!ctx) return;
    const sce_case s = {"full", 23, 41, 9, 1, 23, 41, 0, XCAT_REDUCTION_MEAN, 1, 1, 0, 0, 0, 0.2,
                        1.3f, 0.0f};
    test_rng_stream("full", _i);
    sce_data t;
    make(&s, &t);
    sce_tensors x;
    tensors(ctx, &s, &t, &x);
    float *out[2][4];
    for (int kind = 0; kind < 2; ++kind) {
        xcat_loss_desc d = desc_of(&s);
        if (kind == 1) {
            xcat_loss_desc_init(&d, XCAT_LOSS_CE);
            d.scale = s.scale;
        }
        xcat_loss_plan *p = NULL;
        test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, s.n, s.c, s.d, &p), "plan");
        xcat_loss_args a = args_of(&x, 0);
        if (kind == 1) a.banned_items = NULL;
        xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
        xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s.n, s.d, NULL);
        xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s.c, s.d, NULL);
        xcat_tensor *db = test_tensor(ctx, XCAT_DTYPE_F32, s.c, 1, NULL);
        test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "forward");
        test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, db), "backward");
        out[kind][0] = read_matrix(L, 1, 1);
        out[kind][1] = read_matrix(dH, s.n, s.d);
        out[kind][2] = read_matrix(dE, s.c, s.d);
        out[kind][3] = read_matrix(db, s.c, 1);
        TEST_FREE_TENSORS(L, dH, dE, db);
        xcat_loss_plan_free(p);
    }
    const int64_t cnt[4] = {1, s.n * s.d, s.c * s.d, s.c};
    const char *names[4] = {"loss", "dH", "dE", "db"};
    for (int k = 0; k < 4; ++k) {
        double *ref = test_alloc_doubles(cnt[k]);
        for (int64_t e = 0; e < cnt[k]; ++e) ref[e] = out[1][k][e];
        test_check_close(names[k], out[0][k], ref, cnt[k], 1e-5 * (1.0 + test_max_abs(ref, cnt[k])), 1e-5);
        free(ref), free(out[0][k]), free(out[1][k]);
    }
    untensors(&x);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

/* dH, dE and db against central differences of the library's own forward, the selection held
 * fixed (a probe whose step changed the selection is skipped). */
START_TEST(test_finite_differences)
{
    xcat_context *ctx = test_context(-1, 1);
    const sce_case s = {"fd", 12, 30, 4, 3, 5, 8, 0, XCAT_REDUCTION_SUM, 1, 0, 0, 0, 0, 0.0,
                        1.2f, 3.0f};
    test_rng_stream("fd", 0);
    sce_data t;
    make(&s, &t);
    sce_tensors x;
    tensors(ctx, &s, &t, &x);
    xcat_loss_plan *p = plan_of(ctx, &s);
    xcat_loss_args a = args_of(&x, 0);
    int64_t *X0, *Y0;
    selection(ctx, p, &a, &t, &X0, &Y0);
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s.n, s.d, NULL);
    xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s.c, s.d, NULL);
    xcat_tensor *db = test_tensor(ctx, XCAT_DTYPE_F32, s.c, 1, NULL);
    test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, db), "backward");
    float *g[3] = {read_matrix(dH, s.n, s.d), read_matrix(dE, s.c, s.d), read_matrix(db, s.c, 1)};
    float *src[3] = {t.H, t.E, t.b};
    xcat_tensor *dst[3] = {x.H, x.E, x.b};
    const int64_t rows[3] = {s.n, s.c, s.c}, cols[3] = {s.d, s.d, 1};
    const int64_t lds[3] = {t.ld, t.ld, 1};
    int checked = 0;
    for (int m = 0; m < 3; ++m)
        for (int probe = 0; probe < 12; ++probe) {
            const int64_t r = test_rand_int(0, rows[m]), cc = test_rand_int(0, cols[m]);
            float *v = src[m] + r * lds[m] + cc;
            const float keep = *v, hs[2] = {1e-2f, 5e-3f};
            float lv[2][2];
            bool same = true;
            for (int hi = 0; hi < 2; ++hi)
                for (int sgn = 0; sgn < 2; ++sgn) {
                    *v = keep + (sgn ? -hs[hi] : hs[hi]);
                    ck_assert_int_eq(xcat_tensor_write(dst[m], src[m], m == 2 ? 0 : lds[m]),
                                     XCAT_OK);
                    int64_t *X, *Y;
                    selection(ctx, p, &a, &t, &X, &Y);
                    same = same && !memcmp(X, X0, (size_t)(t.nb * t.kx) * 8) &&
                           !memcmp(Y, Y0, (size_t)(t.nb * t.ky) * 8);
                    free(X), free(Y);
                    test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "forward");
                    ck_assert_int_eq(xcat_tensor_read(L, &lv[hi][sgn], 0), XCAT_OK);
                }
            *v = keep;
            ck_assert_int_eq(xcat_tensor_write(dst[m], src[m], m == 2 ? 0 : lds[m]), XCAT_OK);
            if (!same) continue;
            /* a row's loss is a max over its buckets: where the winner switches inside the probe
             * the loss has a kink and the two step sizes disagree — skip those probes too */
            const double fd1 = ((double)lv[0][0] - (double)lv[0][1]) / (2.0 * hs[0]);
            const double fd = ((double)lv[1][0] - (double)lv[1][1]) / (2.0 * hs[1]);
            if (fabs(fd1 - fd) > 1e-3 + 1e-2 * fabs(fd)) continue;
            const float gv = g[m][r * cols[m] + cc];
            ck_assert_msg(fabs(fd - gv) <= 3e-3 + 3e-2 * fabs(fd), "grad %d [%lld,%lld]: %g vs "
                          "fd %g", m, (long long)r, (long long)cc, (double)gv, fd);
            checked++;
        }
    ck_assert_msg(checked >= 18, "only %d probes kept their selection", checked);
    free(g[0]), free(g[1]), free(g[2]), free(X0), free(Y0);
    TEST_FREE_TENSORS(L, dH, dE, db);
    untensors(&x);
    xcat_loss_plan_free(p);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

/* Bitwise the same loss and gradients with 1, 2 and 3 CPU threads, and run to run on every
 * OpenCL target. */
START_TEST(test_deterministic)
{
    const sce_case s = {"det", 70, 260, 12, 8, 14, 40, 1, XCAT_REDUCTION_MEAN, 1, 1, 1, 0, 0,
                        0.1};
    test_rng_stream("det", 0);
    sce_data t;
    make(&s, &t);
    const int64_t total = 1 + s.n * s.d + s.c * s.d + s.c;
    for (int ti = 0; ti < test_num_targets(); ++ti) {
        const test_target *tg = test_target_get(ti);
        const bool cpu = tg->backend == XCAT_BACKEND_CPU;
        if (cpu && ti != 0) continue; /* threads vary on the first CPU target */
        float *first = NULL;
        for (int run = 0; run < 3; ++run) {
            xcat_context *ctx = test_target_context(ti, cpu ? run + 1 : 2);
            if (!ctx) break;
            sce_tensors x;
            tensors(ctx, &s, &t, &x);
            xcat_loss_plan *p = plan_of(ctx, &s);
            xcat_loss_args a = args_of(&x, 5);
            xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
            xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s.n, s.d, NULL);
            xcat_tensor *dE = test_tensor(ctx, XCAT_DTYPE_F32, s.c, s.d, NULL);
            xcat_tensor *db = test_tensor(ctx, XCAT_DTYPE_F32, s.c, 1, NULL);
            test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "forward");
            test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, dE, db), "backward");
            float *v = test_alloc_floats(total);
            ck_assert_int_eq(xcat_tensor_read(L, v, 0), XCAT_OK);
            ck_assert_int_eq(xcat_tensor_read(dH, v + 1, 0), XCAT_OK);
            ck_assert_int_eq(xcat_tensor_read(dE, v + 1 + s.n * s.d, 0), XCAT_OK);
            ck_assert_int_eq(xcat_tensor_read(db, v + 1 + s.n * s.d + s.c * s.d, 0), XCAT_OK);
            if (!first) {
                first = v;
            } else {
                ck_assert_msg(memcmp(first, v, (size_t)total * sizeof *v) == 0,
                              "%s: run %d differs from the first", tg->name, run);
                free(v);
            }
            TEST_FREE_TENSORS(L, dH, dE, db);
            untensors(&x);
            xcat_loss_plan_free(p);
            xcat_context_free(ctx);
        }
        free(first);
    }
    unmake(&t);
}
END_TEST

START_TEST(test_errors)
{
    xcat_context *ctx = test_context(-1, 1);
    xcat_loss_desc d;
    xcat_loss_plan *p = NULL;
    xcat_loss_desc_init(&d, XCAT_LOSS_SCE);
    d.sce_items_per_bucket = 51;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, &d, 10, 50, 4, &p),
                      XCAT_ERROR_INVALID_ARGUMENT, "sce_items_per_bucket", "k_y > C");
    xcat_loss_desc_init(&d, XCAT_LOSS_SCE);
    d.sce_buckets = -1;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, &d, 10, 50, 4, &p),
                      XCAT_ERROR_INVALID_ARGUMENT, "sce_buckets", "n_b < 0");
    xcat_loss_desc_init(&d, XCAT_LOSS_SCE);
    d.sce_mix_rows = 2;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, &d, 10, 50, 4, &p),
                      XCAT_ERROR_INVALID_ARGUMENT, "sce_mix_rows", "mix 2");
    xcat_loss_desc_init(&d, XCAT_LOSS_SCE);
    d.label_smoothing = 0.1f;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, &d, 10, 50, 4, &p),
                      XCAT_ERROR_INVALID_ARGUMENT, "label_smoothing", "smoothing");
    xcat_loss_desc_init(&d, XCAT_LOSS_SCE);
    d.num_negatives = 5;
    test_expect_error(ctx, xcat_loss_plan_create(ctx, &d, 10, 50, 4, &p),
                      XCAT_ERROR_INVALID_ARGUMENT, "num_negatives", "negatives");
    ck_assert_ptr_null(p);

    const sce_case s = {"err", 10, 50, 4, 3, 4, 5};
    test_rng_stream("err", 0);
    sce_data t;
    make(&s, &t);
    sce_tensors x;
    tensors(ctx, &s, &t, &x);
    p = plan_of(ctx, &s);
    xcat_loss_args a = args_of(&x, 0);
    xcat_tensor *L = test_tensor(ctx, XCAT_DTYPE_F32, 1, 1, NULL);
    const int64_t bad[2] = {3, 50};
    xcat_tensor *ban = test_tensor(ctx, XCAT_DTYPE_I64, 2, 1, bad);
    a.banned_items = ban;
    test_expect_error(ctx, xcat_loss_forward(p, &a, L, NULL), XCAT_ERROR_OUT_OF_RANGE,
                      "banned_items[1]", "banned id out of range");
    a.banned_items = NULL;
    xcat_tensor *wrong = test_tensor(ctx, XCAT_DTYPE_I32, 2, 2, NULL);
    test_expect_error(ctx, xcat_loss_sce_buckets(p, &a, wrong, NULL), XCAT_ERROR_SHAPE_MISMATCH,
                      "rows", "selection shape");
    xcat_tensor *negs = test_tensor(ctx, XCAT_DTYPE_I32, s.n, 2, NULL);
    test_expect_error(ctx, xcat_loss_draw_negatives(p, &a, negs), XCAT_ERROR_INVALID_ARGUMENT,
                      "SCE", "draw_negatives");
    /* all rows ignored: nothing contributes, MEAN is 0 with zero gradients */
    for (int64_t i = 0; i < s.n; ++i) t.y[i] = -100;
    ck_assert_int_eq(xcat_tensor_write(x.y, t.y, 0), XCAT_OK);
    xcat_tensor *dH = test_tensor(ctx, XCAT_DTYPE_F32, s.n, s.d, NULL);
    test_expect_ok(ctx, xcat_loss_forward(p, &a, L, NULL), "all ignored");
    test_expect_ok(ctx, xcat_loss_backward(p, &a, NULL, dH, NULL, NULL), "all ignored bwd");
    float lv = -1.0f;
    ck_assert_int_eq(xcat_tensor_read(L, &lv, 0), XCAT_OK);
    ck_assert(lv == 0.0f);
    float *gh = read_matrix(dH, s.n, s.d);
    test_check_all_zero("dH all ignored", gh, s.n * s.d);
    free(gh);
    xcat_loss_plan *ce = NULL;
    xcat_loss_desc_init(&d, XCAT_LOSS_CE);
    test_expect_ok(ctx, xcat_loss_plan_create(ctx, &d, s.n, s.c, s.d, &ce), "ce plan");
    test_expect_error(ctx, xcat_loss_sce_buckets(ce, &a, NULL, NULL),
                      XCAT_ERROR_INVALID_ARGUMENT, "SCE", "buckets of a CE plan");
    xcat_loss_plan_free(ce);
    TEST_FREE_TENSORS(L, ban, wrong, negs, dH);
    untensors(&x);
    xcat_loss_plan_free(p);
    unmake(&t);
    xcat_context_free(ctx);
}
END_TEST

int main(void)
{
    test_targets_init();
    const int nt = test_num_targets();
    Suite *s = suite_create("sce");
    TCase *tc = tcase_create("sce");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_reference, 0, nt);
    tcase_add_loop_test(tc, test_full_bucket_equals_ce, 0, nt);
    tcase_add_loop_test(tc, test_opencl_waves, 0, nt - test_first_opencl_target());
    tcase_add_test(tc, test_selection_across_backends);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
