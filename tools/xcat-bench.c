/*
 * xcat-bench — times full-softmax cross-entropy on the default xcat context and, from the same
 * run, its ceiling (OpenBLAS sgemm on the GEMMs a materialised CE needs) and a naive baseline
 * (materialised N×C logits, plain-C softmax, sgemm gradients), with the peak memory of each.
 *
 *     xcat-bench [--n LIST] [--c LIST] [--d LIST] [--repeats R] [--warmup W] [--quick]
 *                [--isa scalar|avx2|avx512] [--threads T] [--no-naive] [--no-ceiling] [--fwd-only]
 *                [--no-fused] [--json FILE] [--csv FILE]
 *
 * Each method runs in its own forked child, which builds its inputs (the same deterministic
 * values in every child), times warm-up + R repeats and sends its timings back over a pipe;
 * the parent reads the child's peak RSS with wait4(). The parent itself never enters an OpenMP
 * parallel region or OpenBLAS, so every child starts from a clean, fork-safe runtime.
 *
 * Effective flops: forward 2·N·C·d, forward+backward 8·N·C·d. The sgemm ceiling times
 * logits = H·Eᵀ, dH = G·E and dE = Gᵀ·H on the full shapes (in row blocks of H when the N×C
 * buffer would not fit in memory); its forward+backward time is 2·t_logits + t_dH + t_dE (a
 * method that never materialises the logits must recompute them for the backward pass).
 * "xcat fwd+bwd" is xcat_loss_forward then xcat_loss_backward; "xcat fwd+bwd fused" is
 * xcat_loss_forward_backward (one call; where the backend fuses them it does 6·N·C·d flops,
 * still counted as 8·N·C·d: the effective rate compares methods on the same work).
 */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "xcat.h"

void tool_json_string(FILE *f, const char *s);
void tool_cpu_model(char *buf, size_t size);

enum {
    MAX_LIST = 16,
    MAX_PARTS = 3,
    MAX_REPEATS = 10000,
    /* Fraction (in percent) of physical memory a materialised N×C method may plan to use. */
    MEMORY_BUDGET_PCT = 70
};

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct int_list {
    int64_t v[MAX_LIST];
    int count;
} int_list;

typedef struct bench_options {
    int_list n, c, d;
    int repeats, warmup;
    int quick, naive, ceiling, backward, fused;
    int isa;     /* -1: library default (XCAT_ISA_MAX or the best level) */
    int threads; /* 0: library / OpenMP default */
    const char *json_path, *csv_path;
} bench_options;

typedef struct shape {
    int64_t n, c, d;
} shape;

/* One child process = one of these. The naive child times forward and backward together. */
typedef enum child_kind {
    CHILD_XCAT_FWD,
    CHILD_XCAT_FWDBWD,
    CHILD_XCAT_FUSED, /* forward + backward in one call (xcat_loss_forward_backward) */
    CHILD_SGEMM,
    CHILD_NAIVE,
    NUM_CHILDREN
} child_kind;

static const char *const child_label[NUM_CHILDREN] = {"xcat fwd", "xcat fwd+bwd",
                                                      "xcat fwd+bwd fused", "sgemm ceiling",
                                                      "naive"};

/* What a child sends back. Parts: xcat fwd {fwd}; xcat fwd+bwd and naive {total, fwd, bwd};
 * sgemm {logits, dH, dE}. */
typedef struct child_report {
    int ok;
    char error[1024];
    double median_ms[MAX_PARTS], min_ms[MAX_PARTS];
    double loss;          /* NAN where the method computes none */
    double workspace_mib; /* xcat plan workspace; NAN otherwise */
    int64_t block_rows;   /* sgemm: rows of H per block (N when unblocked) */
    char device[256], backend[32], isa[64];
    int threads;
} child_report;

typedef struct child_result {
    int ran;          /* 0: skipped (see note) */
    char note[160];
    child_report rep; /* rep.ok == 0 with rep.error on failure */
    double rss_mib;
} child_result;

static double physical_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
}

static double memory_budget_bytes(void)
{
    return physical_memory_bytes() * MEMORY_BUDGET_PCT / 100.0;
}

/* ---------------------------------------------------------------------------------------- */
/* Inputs: deterministic, identical in every child                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct inputs {
    float *h, *e, *b;
    int32_t *y;
} inputs;

static float *alloc_floats(int64_t count)
{
    return alloc_bytes((size_t)count * sizeof(float));
}

static void inputs_free(inputs *in)
{
    free(in->h);
    free(in->e);
    free(in->b);
    free(in->y);
    memset(in, 0, sizeof *in);
}

/* H entries have sd 1 and E entries sd 2/sqrt(d), so logits h·e have sd ~2 (a trained model's
 * range); bias sd 0.5; targets uniform over the catalog. */
static int inputs_make(const shape *s, inputs *in)
{
    in->h = alloc_floats(s->n * s->d);
    in->e = alloc_floats(s->c * s->d);
    in->b = alloc_floats(s->c);
    in->y = alloc_bytes((size_t)s->n * sizeof(int32_t));
    if (!in->h || !in->e || !in->b || !in->y) {
        inputs_free(in);
        return -1;
    }
    fill_uniform(in->h, s->n * s->d, 1.0f, 1);
    fill_uniform(in->e, s->c * s->d, 2.0f / sqrtf((float)s->d), 2);
    fill_uniform(in->b, s->c, 0.5f, 3);
    uint64_t seed = 4;
    for (int64_t i = 0; i < s->n; ++i)
        in->y[i] = (int32_t)(splitmix64(&seed) % (uint64_t)s->c);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Repeat loop shared by every method                                                         */
/* ---------------------------------------------------------------------------------------- */

/* One timed iteration: fills parts_ms[0..nparts), returns 0 or -1 (error in the report). */
typedef int (*step_fn)(void *state, double *parts_ms);

static int run_repeats(const char *label, step_fn step, void *state, int nparts,
                       const bench_options *o, child_report *rep)
{
    double parts[MAX_PARTS];
    for (int w = 0; w < o->warmup; ++w) {
        progress(label, "warm-up", w + 1, o->warmup);
        if (step(state, parts) != 0)
            return -1;
    }
    double *samples = malloc(sizeof(double) * (size_t)(nparts * o->repeats));
    if (!samples) {
        snprintf(rep->error, sizeof rep->error, "out of memory for timing samples");
        return -1;
    }
    for (int r = 0; r < o->repeats; ++r) {
        progress(label, "repeat", r + 1, o->repeats);
        if (step(state, parts) != 0) {
            free(samples);
            return -1;
        }
        for (int p = 0; p < nparts; ++p)
            samples[p * o->repeats + r] = parts[p];
    }
    progress_done();
    for (int p = 0; p < nparts; ++p) {
        double *v = samples + p * o->repeats;
        rep->median_ms[p] = median_of(v, o->repeats);
        rep->min_ms[p] = v[0]; /* sorted by median_of */
    }
    free(samples);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* xcat                                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct xcat_state {
    xcat_context *ctx;
    xcat_loss_plan *plan;
    xcat_tensor *h, *e, *b, *y, *loss, *dh, *de, *db;
    xcat_loss_args args;
    int backward; /* 0 forward, 1 forward then backward, 2 both in one call */
    child_report *rep;
} xcat_state;

static int xcat_fail(xcat_state *s, const char *what, xcat_status st)
{
    snprintf(s->rep->error, sizeof s->rep->error, "%s: %s (%d): %s", what, xcat_status_string(st),
             (int)st, xcat_context_last_error(s->ctx));
    return -1;
}

#define XTRY(s, call)                                                                            \
    do {                                                                                         \
        xcat_status st_ = (call);                                                                \
        if (st_ != XCAT_OK)                                                                      \
            return xcat_fail((s), #call, st_);                                                   \
    } while (0)

/* Wrap host memory without copying where the backend can; copy it in otherwise. */
static xcat_status tensor_from_host(xcat_context *ctx, xcat_dtype dtype, int64_t rows,
                                    int64_t cols, void *data, xcat_tensor **out)
{
    xcat_status st = xcat_tensor_wrap_host(ctx, dtype, rows, cols, cols, data, out);
    if (st != XCAT_ERROR_UNSUPPORTED)
        return st;
    st = xcat_tensor_create(ctx, dtype, rows, cols, out);
    if (st == XCAT_OK)
        st = xcat_tensor_write(*out, data, 0);
    return st;
}

static int xcat_open_context(xcat_state *s, const bench_options *o)
{
    xcat_context_options opt;
    xcat_context_options_init(&opt);
    opt.isa_max = o->isa;
    opt.num_threads = o->threads;
    opt.error_message = s->rep->error;
    opt.error_message_size = sizeof s->rep->error;
    xcat_status st = xcat_context_create(&opt, &s->ctx);
    if (st != XCAT_OK) {
        char detail[sizeof s->rep->error];
        snprintf(detail, sizeof detail, "%s", s->rep->error);
        snprintf(s->rep->error, sizeof s->rep->error, "xcat_context_create: %s (%d): %.900s",
                 xcat_status_string(st), (int)st, detail);
        return -1;
    }
    xcat_context_info info;
    xcat_context_info_init(&info);
    XTRY(s, xcat_context_get_info(s->ctx, &info));
    snprintf(s->rep->device, sizeof s->rep->device, "%s", info.device_name);
    snprintf(s->rep->backend, sizeof s->rep->backend, "%s", info.backend_name);
    snprintf(s->rep->isa, sizeof s->rep->isa, "%s",
             info.backend == XCAT_BACKEND_CPU ? xcat_isa_name(info.isa) : "-");
    s->rep->threads = (int)info.num_threads;
    return 0;
}

static int xcat_setup(xcat_state *s, const shape *sh, inputs *in, const bench_options *o)
{
    if (xcat_open_context(s, o) != 0)
        return -1;
    XTRY(s, tensor_from_host(s->ctx, XCAT_DTYPE_F32, sh->n, sh->d, in->h, &s->h));
    XTRY(s, tensor_from_host(s->ctx, XCAT_DTYPE_F32, sh->c, sh->d, in->e, &s->e));
    XTRY(s, tensor_from_host(s->ctx, XCAT_DTYPE_F32, sh->c, 1, in->b, &s->b));
    XTRY(s, tensor_from_host(s->ctx, XCAT_DTYPE_I32, sh->n, 1, in->y, &s->y));
    xcat_loss_desc desc;
    xcat_loss_desc_init(&desc, XCAT_LOSS_CE);
    desc.flags = s->backward ? 0u : XCAT_LOSS_FORWARD_ONLY;
    XTRY(s, xcat_loss_plan_create(s->ctx, &desc, sh->n, sh->c, sh->d, &s->plan));
    size_t ws = 0;
    XTRY(s, xcat_loss_plan_workspace_size(s->plan, &ws));
    s->rep->workspace_mib = (double)ws / (1024.0 * 1024.0);
    XTRY(s, xcat_tensor_create(s->ctx, XCAT_DTYPE_F32, 1, 1, &s->loss));
    if (s->backward) {
        XTRY(s, xcat_tensor_create(s->ctx, XCAT_DTYPE_F32, sh->n, sh->d, &s->dh));
        XTRY(s, xcat_tensor_create(s->ctx, XCAT_DTYPE_F32, sh->c, sh->d, &s->de));
        XTRY(s, xcat_tensor_create(s->ctx, XCAT_DTYPE_F32, sh->c, 1, &s->db));
    }
    xcat_loss_args_init(&s->args);
    s->args.hidden = s->h;
    s->args.items = s->e;
    s->args.bias = s->b;
    s->args.targets = s->y;
    return 0;
}

static void xcat_teardown(xcat_state *s)
{
    xcat_tensor *tensors[] = {s->h, s->e, s->b, s->y, s->loss, s->dh, s->de, s->db};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; ++i)
        xcat_tensor_free(tensors[i]);
    xcat_loss_plan_free(s->plan);
    xcat_context_free(s->ctx);
}

static int xcat_step(void *state, double *parts_ms)
{
    xcat_state *s = state;
    double t0 = now_ms();
    if (s->backward == 2) {
        XTRY(s, xcat_loss_forward_backward(s->plan, &s->args, s->loss, NULL, NULL, s->dh, s->de,
                                           s->db));
        XTRY(s, xcat_context_synchronize(s->ctx));
        parts_ms[0] = now_ms() - t0;
        return 0;
    }
    XTRY(s, xcat_loss_forward(s->plan, &s->args, s->loss, NULL));
    XTRY(s, xcat_context_synchronize(s->ctx));
    double t1 = now_ms();
    parts_ms[0] = t1 - t0;
    if (!s->backward)
        return 0;
    XTRY(s, xcat_loss_backward(s->plan, &s->args, NULL, s->dh, s->de, s->db));
    XTRY(s, xcat_context_synchronize(s->ctx));
    double t2 = now_ms();
    parts_ms[0] = t2 - t0;
    parts_ms[1] = t1 - t0;
    parts_ms[2] = t2 - t1;
    return 0;
}

static int xcat_read_loss(xcat_state *s)
{
    float loss = 0.0f;
    XTRY(s, xcat_tensor_read(s->loss, &loss, 0));
    s->rep->loss = loss;
    return 0;
}

static int run_xcat(const char *label, const shape *sh, int backward, const bench_options *o,
                    child_report *rep)
{
    inputs in = {0};
    if (inputs_make(sh, &in) != 0) {
        snprintf(rep->error, sizeof rep->error, "out of memory for the inputs");
        return -1;
    }
    xcat_state s = {.backward = backward, .rep = rep};
    int rc = xcat_setup(&s, sh, &in, o);
    if (rc == 0) {
        bench_reset_profile(s.ctx); /* XCAT_PROFILE=1: the kernels of warm-up + repeats */
        rc = run_repeats(label, xcat_step, &s, backward == 1 ? 3 : 1, o, rep);
    }
    if (rc == 0) bench_print_profile(s.ctx, label);
    if (rc == 0)
        rc = xcat_read_loss(&s);
    xcat_teardown(&s);
    inputs_free(&in);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* OpenBLAS: the three GEMMs of a materialised CE                                             */
/* ---------------------------------------------------------------------------------------- */

/* z (rows×C) = h (rows×d) · eᵀ */
static void gemm_logits(const float *h, const float *e, float *z, int64_t rows, const shape *s)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)s->c, (int)s->d, 1.0f, h,
                (int)s->d, e, (int)s->d, 0.0f, z, (int)s->c);
}

/* dh (rows×d) = g (rows×C) · e */
static void gemm_dh(const float *g, const float *e, float *dh, int64_t rows, const shape *s)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)s->d, (int)s->c, 1.0f,
                g, (int)s->c, e, (int)s->d, 0.0f, dh, (int)s->d);
}

/* de (C×d) = gᵀ · h (rows×d), accumulated into de when beta = 1 */
static void gemm_de(const float *g, const float *h, float *de, int64_t rows, float beta,
                    const shape *s)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)s->c, (int)s->d, (int)rows, 1.0f, g,
                (int)s->c, h, (int)s->d, beta, de, (int)s->d);
}

static void report_openblas(child_report *rep)
{
    tool_cpu_model(rep->device, sizeof rep->device);
    snprintf(rep->backend, sizeof rep->backend, "openblas");
    const char *core = openblas_get_corename();
    snprintf(rep->isa, sizeof rep->isa, "%s", core ? core : "?");
    rep->threads = openblas_get_num_threads();
}

static void set_baseline_threads(const bench_options *o)
{
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
        openblas_set_num_threads(o->threads);
    }
}

typedef struct gemm_state {
    shape s;
    inputs in;
    float *z, *dh, *de, *db, *ones, *lse;
    int64_t block_rows;
    double loss;
} gemm_state;

static void gemm_state_free(gemm_state *g)
{
    inputs_free(&g->in);
    free(g->z);
    free(g->dh);
    free(g->de);
    free(g->db);
    free(g->ones);
    free(g->lse);
}

/* Allocate the inputs, dH, dE and a block_rows×C logits buffer. */
static int gemm_state_init(gemm_state *g, const shape *s, int64_t block_rows, child_report *rep)
{
    memset(g, 0, sizeof *g);
    g->s = *s;
    g->block_rows = block_rows;
    if (inputs_make(s, &g->in) == 0) {
        g->z = malloc((size_t)block_rows * (size_t)s->c * sizeof(float));
        g->dh = alloc_floats(s->n * s->d);
        g->de = alloc_floats(s->c * s->d);
        g->db = alloc_floats(s->c);
        g->ones = alloc_floats(s->n);
        g->lse = alloc_floats(s->n);
    }
    if (!g->in.h || !g->z || !g->dh || !g->de || !g->db || !g->ones || !g->lse) {
        snprintf(rep->error, sizeof rep->error, "out of memory (%lld×%lld logits buffer)",
                 (long long)block_rows, (long long)s->c);
        gemm_state_free(g);
        return -1;
    }
    for (int64_t i = 0; i < s->n; ++i)
        g->ones[i] = 1.0f;
    return 0;
}

/* Ceiling step: logits, dH, dE over row blocks of H, each GEMM kind timed separately. The
 * logits of a block serve as its G (realistic magnitudes, no denormals). */
static int sgemm_step(void *state, double *parts_ms)
{
    gemm_state *g = state;
    const shape *s = &g->s;
    parts_ms[0] = parts_ms[1] = parts_ms[2] = 0.0;
    for (int64_t r0 = 0; r0 < s->n; r0 += g->block_rows) {
        int64_t rows = s->n - r0 < g->block_rows ? s->n - r0 : g->block_rows;
        const float *h = g->in.h + r0 * s->d;
        double t0 = now_ms();
        gemm_logits(h, g->in.e, g->z, rows, s);
        double t1 = now_ms();
        gemm_dh(g->z, g->in.e, g->dh + r0 * s->d, rows, s);
        double t2 = now_ms();
        gemm_de(g->z, h, g->de, rows, r0 ? 1.0f : 0.0f, s);
        double t3 = now_ms();
        parts_ms[0] += t1 - t0;
        parts_ms[1] += t2 - t1;
        parts_ms[2] += t3 - t2;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Naive baseline: materialised logits, plain-C softmax, sgemm gradients                      */
/* ---------------------------------------------------------------------------------------- */

/* z += b per row, lse_i = log Σ exp z_ij; returns the mean of lse_i − z_{i,y_i}. */
static double naive_softmax_loss(float *z, const float *b, const int32_t *y, float *lse,
                                 const shape *s)
{
    const int64_t n = s->n, c = s->c;
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        float *zi = z + i * c;
        float m = -INFINITY;
        for (int64_t j = 0; j < c; ++j) {
            zi[j] += b[j];
            m = zi[j] > m ? zi[j] : m;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < c; ++j)
            sum += expf(zi[j] - m);
        lse[i] = m + (float)log(sum);
        total += (double)lse[i] - zi[y[i]];
    }
    return total / (double)n;
}

/* G = (softmax(z) − onehot(y)) / N, in place. */
static void naive_grad(float *z, const int32_t *y, const float *lse, const shape *s)
{
    const int64_t n = s->n, c = s->c;
    const float inv_n = 1.0f / (float)n;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        float *zi = z + i * c;
        const float l = lse[i];
        for (int64_t j = 0; j < c; ++j)
            zi[j] = expf(zi[j] - l) * inv_n;
        zi[y[i]] -= inv_n;
    }
}

static int naive_step(void *state, double *parts_ms)
{
    gemm_state *g = state;
    const shape *s = &g->s;
    double t0 = now_ms();
    gemm_logits(g->in.h, g->in.e, g->z, s->n, s);
    g->loss = naive_softmax_loss(g->z, g->in.b, g->in.y, g->lse, s);
    double t1 = now_ms();
    naive_grad(g->z, g->in.y, g->lse, s);
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)s->n, (int)s->c, 1.0f, g->z, (int)s->c, g->ones,
                1, 0.0f, g->db, 1);
    gemm_dh(g->z, g->in.e, g->dh, s->n, s);
    gemm_de(g->z, g->in.h, g->de, s->n, 0.0f, s);
    double t2 = now_ms();
    parts_ms[0] = t2 - t0;
    parts_ms[1] = t1 - t0;
    parts_ms[2] = t2 - t1;
    return 0;
}

/* Rows of H per ceiling block: all of them when the N×C buffer fits the memory budget. */
static int64_t ceiling_block_rows(const shape *s)
{
    double inputs_bytes = 4.0 * (double)(2 * (s->n + s->c) * s->d + 2 * s->c + 3 * s->n);
    double room = memory_budget_bytes() - inputs_bytes;
    double rows = room / (4.0 * (double)s->c);
    if (rows >= (double)s->n)
        return s->n;
    return rows >= 1.0 ? (int64_t)rows : 1;
}

static int run_gemm(const char *label, const shape *sh, child_kind kind, const bench_options *o,
                    child_report *rep)
{
    set_baseline_threads(o);
    report_openblas(rep);
    gemm_state g;
    int64_t block = kind == CHILD_SGEMM ? ceiling_block_rows(sh) : sh->n;
    if (gemm_state_init(&g, sh, block, rep) != 0)
        return -1;
    rep->block_rows = block;
    int rc = run_repeats(label, kind == CHILD_SGEMM ? sgemm_step : naive_step, &g, 3, o, rep);
    if (kind == CHILD_NAIVE)
        rep->loss = g.loss;
    gemm_state_free(&g);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Children                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t size)
{
    const char *p = buf;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        size -= (size_t)w;
    }
    return 0;
}

static size_t read_all(int fd, void *buf, size_t size)
{
    char *p = buf;
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void child_main(child_kind kind, const char *label, const shape *sh,
                       const bench_options *o, int fd)
{
    static child_report rep;
    memset(&rep, 0, sizeof rep);
    rep.loss = NAN;
    rep.workspace_mib = NAN;
    int rc;
    if (kind == CHILD_XCAT_FWD || kind == CHILD_XCAT_FWDBWD || kind == CHILD_XCAT_FUSED)
        rc = run_xcat(label, sh, kind == CHILD_XCAT_FUSED ? 2 : kind == CHILD_XCAT_FWDBWD, o, &rep);
    else
        rc = run_gemm(label, sh, kind, o, &rep);
    progress_done();
    rep.ok = rc == 0;
    int wrc = write_all(fd, &rep, sizeof rep);
    close(fd);
    _exit(wrc == 0 ? 0 : 3);
}

static void describe_exit(int wstatus, char *buf, size_t size)
{
    if (WIFSIGNALED(wstatus))
        snprintf(buf, size, "child killed by signal %d%s", WTERMSIG(wstatus),
                 WTERMSIG(wstatus) == 9 ? " (out of memory?)" : "");
    else
        snprintf(buf, size, "child exited with status %d without a report",
                 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
}

/* Run one method in a forked child; fill `res` with its report and peak RSS. */
static void run_child(child_kind kind, const shape *sh, const bench_options *o, child_result *res)
{
    char label[128];
    snprintf(label, sizeof label, "%s N=%lld C=%lld d=%lld", child_label[kind], (long long)sh->n,
             (long long)sh->c, (long long)sh->d);
    memset(res, 0, sizeof *res);
    res->ran = 1;
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(res->rep.error, sizeof res->rep.error, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(res->rep.error, sizeof res->rep.error, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(kind, label, sh, o, fds[1]);
    }
    close(fds[1]);
    size_t got = read_all(fds[0], &res->rep, sizeof res->rep);
    close(fds[0]);
    int wstatus = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &wstatus, 0, &ru) < 0 && errno == EINTR)
        ;
    res->rss_mib = (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
    if (got != sizeof res->rep) {
        memset(&res->rep, 0, sizeof res->rep);
        describe_exit(wstatus, res->rep.error, sizeof res->rep.error);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Results                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct record {
    shape s;
    const char *method; /* xcat_fwd, xcat_fwd_bwd, sgemm_fwd, sgemm_fwd_bwd, naive_... */
    const child_result *src;
    double median_ms, min_ms, gflops, pct, loss, workspace_mib;
} record;

typedef struct record_list {
    record *v;
    int count, cap;
} record_list;

static double gflops_of(double flops, double ms)
{
    return ms > 0.0 ? flops / (ms * 1e6) : 0.0;
}

/* Append a record for a method that ran successfully; pct is filled in later. */
static void add_record(record_list *l, const shape *s, const char *method, const child_result *src,
                       double median_ms, double min_ms, double flops)
{
    if (!src->ran || !src->rep.ok)
        return;
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        record *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    record *r = &l->v[l->count++];
    *r = (record){.s = *s, .method = method, .src = src, .median_ms = median_ms,
                  .min_ms = min_ms, .gflops = gflops_of(flops, median_ms), .pct = NAN,
                  .loss = src->rep.loss, .workspace_mib = src->rep.workspace_mib};
}

/* The records of one shape, from its four children (indexed by child_kind). */
static int shape_records(record_list *l, const shape *s, const child_result *res)
{
    const double ncd = (double)s->n * (double)s->c * (double)s->d;
    const double fwd = 2.0 * ncd, fwdbwd = 8.0 * ncd;
    int first = l->count;
    const child_report *x = &res[CHILD_XCAT_FWD].rep, *xb = &res[CHILD_XCAT_FWDBWD].rep;
    const child_report *g = &res[CHILD_SGEMM].rep, *nv = &res[CHILD_NAIVE].rep;
    add_record(l, s, "xcat_fwd", &res[CHILD_XCAT_FWD], x->median_ms[0], x->min_ms[0], fwd);
    add_record(l, s, "xcat_fwd_bwd", &res[CHILD_XCAT_FWDBWD], xb->median_ms[0], xb->min_ms[0],
               fwdbwd);
    const child_report *xf = &res[CHILD_XCAT_FUSED].rep;
    add_record(l, s, "xcat_fused_fwd_bwd", &res[CHILD_XCAT_FUSED], xf->median_ms[0],
               xf->min_ms[0], fwdbwd);
    add_record(l, s, "sgemm_fwd", &res[CHILD_SGEMM], g->median_ms[0], g->min_ms[0], fwd);
    add_record(l, s, "sgemm_fwd_bwd", &res[CHILD_SGEMM],
               2.0 * g->median_ms[0] + g->median_ms[1] + g->median_ms[2],
               2.0 * g->min_ms[0] + g->min_ms[1] + g->min_ms[2], fwdbwd);
    add_record(l, s, "naive_fwd", &res[CHILD_NAIVE], nv->median_ms[1], nv->min_ms[1], fwd);
    add_record(l, s, "naive_fwd_bwd", &res[CHILD_NAIVE], nv->median_ms[0], nv->min_ms[0], fwdbwd);
    /* Percent of the ceiling: each record against sgemm_fwd or sgemm_fwd_bwd of the shape. */
    double ceil_fwd = 0.0, ceil_fwdbwd = 0.0;
    for (int i = first; i < l->count; ++i) {
        if (strcmp(l->v[i].method, "sgemm_fwd") == 0)
            ceil_fwd = l->v[i].gflops;
        else if (strcmp(l->v[i].method, "sgemm_fwd_bwd") == 0)
            ceil_fwdbwd = l->v[i].gflops;
    }
    for (int i = first; i < l->count; ++i) {
        record *r = &l->v[i];
        double ceil = strstr(r->method, "_bwd") ? ceil_fwdbwd : ceil_fwd;
        r->pct = ceil > 0.0 ? 100.0 * r->gflops / ceil : NAN;
    }
    return first;
}

static const char *record_label(const char *method)
{
    static const char *const map[][2] = {
        {"xcat_fwd", "xcat fwd"},           {"xcat_fwd_bwd", "xcat fwd+bwd"},
        {"xcat_fused_fwd_bwd", "xcat fwd+bwd fused"},
        {"sgemm_fwd", "sgemm ceiling fwd"}, {"sgemm_fwd_bwd", "sgemm ceiling fwd+bwd"},
        {"naive_fwd", "naive fwd"},         {"naive_fwd_bwd", "naive fwd+bwd"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; ++i)
        if (strcmp(map[i][0], method) == 0)
            return map[i][1];
    return method;
}

static void print_failures(const child_result *res)
{
    for (int k = 0; k < NUM_CHILDREN; ++k) {
        if (!res[k].ran)
            printf("  %-22s skipped: %s\n", child_label[k], res[k].note);
        else if (!res[k].rep.ok)
            printf("  %-22s FAILED: %s\n", child_label[k], res[k].rep.error);
    }
}

static void print_shape_notes(const child_result *res)
{
    const child_report *xb = &res[CHILD_XCAT_FWDBWD].rep, *x = &res[CHILD_XCAT_FWD].rep;
    const child_report *nv = &res[CHILD_NAIVE].rep, *g = &res[CHILD_SGEMM].rep;
    int have_xb = res[CHILD_XCAT_FWDBWD].ran && xb->ok, have_x = res[CHILD_XCAT_FWD].ran && x->ok;
    int have_nv = res[CHILD_NAIVE].ran && nv->ok;
    if (have_xb)
        printf("  xcat fwd+bwd split: fwd %.3f ms + bwd %.3f ms; workspace %.2f MiB "
               "(fwd-only plan %.2f MiB)\n",
               xb->median_ms[1], xb->median_ms[2], xb->workspace_mib,
               have_x ? x->workspace_mib : NAN);
    if (res[CHILD_SGEMM].ran && g->ok)
        printf("  sgemm medians: logits %.3f ms, dH %.3f ms, dE %.3f ms\n", g->median_ms[0],
               g->median_ms[1], g->median_ms[2]);
    if (have_nv && (have_xb || have_x)) {
        double xl = have_xb ? xb->loss : x->loss;
        printf("  loss: xcat %.7g, naive %.7g, relative difference %.2e\n", xl, nv->loss,
               fabs(nv->loss - xl) / fmax(fabs(xl), 1e-30));
    }
    if (have_nv && have_xb && res[CHILD_XCAT_FWDBWD].rss_mib > 0.0)
        printf("  peak RSS naive/xcat (fwd+bwd): %.1fx\n",
               res[CHILD_NAIVE].rss_mib / res[CHILD_XCAT_FWDBWD].rss_mib);
}

static void print_shape_table(const record_list *l, int first, const shape *s,
                              const child_result *res)
{
    printf("\nN=%lld C=%lld d=%lld\n", (long long)s->n, (long long)s->c, (long long)s->d);
    printf("  %-22s %11s %11s %9s %8s %13s\n", "method", "median ms", "min ms", "GFLOP/s",
           "% sgemm", "peak RSS MiB");
    for (int i = first; i < l->count; ++i) {
        const record *r = &l->v[i];
        char pct[16] = "       -";
        if (isfinite(r->pct)) snprintf(pct, sizeof pct, "%7.1f%%", r->pct);
        printf("  %-22s %11.3f %11.3f %9.1f %8s %13.1f\n", record_label(r->method),
               r->median_ms, r->min_ms, r->gflops, pct, r->src->rss_mib);
    }
    print_failures(res);
    print_shape_notes(res);
    const child_report *g = &res[CHILD_SGEMM].rep;
    if (res[CHILD_SGEMM].ran && g->ok && g->block_rows < s->n)
        printf("  note: N×C does not fit in memory: the ceiling ran in blocks of %lld rows\n",
               (long long)g->block_rows);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON / CSV                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void json_number(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, ", \"%s\": %.6g", key, v);
    else
        fprintf(f, ", \"%s\": null", key);
}

static void json_text(FILE *f, const char *key, const char *v)
{
    fprintf(f, ", \"%s\": ", key);
    tool_json_string(f, v);
}

static int write_json(const char *path, const record_list *l, const char *date)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "[\n");
    for (int i = 0; i < l->count; ++i) {
        const record *r = &l->v[i];
        const child_report *rep = &r->src->rep;
        fprintf(f, "  {\"n\": %lld, \"c\": %lld, \"d\": %lld", (long long)r->s.n,
                (long long)r->s.c, (long long)r->s.d);
        json_text(f, "method", r->method);
        json_number(f, "median_ms", r->median_ms);
        json_number(f, "min_ms", r->min_ms);
        json_number(f, "gflops", r->gflops);
        json_number(f, "pct_of_sgemm", r->pct);
        json_number(f, "peak_rss_mib", r->src->rss_mib);
        json_number(f, "loss", r->loss);
        json_number(f, "workspace_mib", r->workspace_mib);
        json_text(f, "device", rep->device);
        json_text(f, "backend", rep->backend);
        json_text(f, "isa", rep->isa);
        fprintf(f, ", \"threads\": %d", rep->threads);
        json_text(f, "date", date);
        fprintf(f, "}%s\n", i + 1 < l->count ? "," : "");
    }
    fprintf(f, "]\n");
    return fclose(f);
}

/* A CSV field: quoted, with embedded quotes doubled. */
static void csv_text(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; ++s) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* ",value", or just "," for a value that does not apply (NaN). */
static void csv_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.7g", v);
    else
        fputc(',', f);
}

static int write_csv(const char *path, const record_list *l, const char *date)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "n,c,d,method,median_ms,min_ms,gflops,pct_of_sgemm,peak_rss_mib,loss,"
               "workspace_mib,device,backend,isa,threads,date\n");
    for (int i = 0; i < l->count; ++i) {
        const record *r = &l->v[i];
        const child_report *rep = &r->src->rep;
        fprintf(f, "%lld,%lld,%lld,%s", (long long)r->s.n, (long long)r->s.c, (long long)r->s.d,
                r->method);
        const double values[] = {r->median_ms, r->min_ms,  r->gflops,       r->pct,
                                 r->src->rss_mib, r->loss, r->workspace_mib};
        for (size_t k = 0; k < sizeof values / sizeof values[0]; ++k)
            csv_number(f, values[k]);
        fputc(',', f);
        csv_text(f, rep->device);
        fputc(',', f);
        csv_text(f, rep->backend);
        fputc(',', f);
        csv_text(f, rep->isa);
        fprintf(f, ",%d,%s\n", rep->threads, date);
    }
    return fclose(f);
}

/* ---------------------------------------------------------------------------------------- */
/* Command line                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xcat-bench [options]\n"
            "  --n LIST          rows N (comma list; default 8192)\n"
            "  --c LIST          catalog size C (default 100000)\n"
            "  --d LIST          embedding dim d (default 64,128)\n"
            "  --repeats R       timed repeats per method (default 5; median reported)\n"
            "  --warmup W        untimed warm-up iterations (default 1)\n"
            "  --quick           smoke run: N=1024 C=20000 d=64, 3 repeats\n"
            "  --isa LEVEL       cap the xcat context at scalar|avx2|avx512\n"
            "  --threads T       threads for xcat, OpenMP and OpenBLAS (default: all)\n"
            "  --no-naive        skip the materialised-logits baseline\n"
            "  --fwd-only        skip xcat's forward+backward (loss-only plans: the forward)\n"
            "  --no-fused        skip xcat's forward+backward in one call\n"
            "                    (xcat_loss_forward_backward)\n"
            "  --no-ceiling      skip the OpenBLAS sgemm ceiling (e.g. on a GPU, whose\n"
            "                    ceiling is measured by tools/peer_torch_ce.py)\n"
            "  --json FILE       write the records as a JSON array\n"
            "  --csv FILE        write the records as CSV\n"
            "The xcat context honours XCAT_BACKEND, XCAT_DEVICE, XCAT_NUM_THREADS and\n"
            "XCAT_ISA_MAX.\n"
            "Sub-commands (each has its own --help): topk, sampled, sce, suite, report.\n");
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_list(const char *s, int_list *l)
{
    l->count = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (l->count == MAX_LIST || parse_int(tok, 1, INT_MAX, &l->v[l->count]) != 0)
            return -1;
        l->count++;
    }
    return l->count > 0 ? 0 : -1;
}

static int parse_isa(const char *s, int *out)
{
    for (int level = XCAT_ISA_SCALAR; level <= XCAT_ISA_AVX512; ++level) {
        if (strcmp(s, xcat_isa_name((xcat_isa)level)) == 0) {
            *out = level;
            return 0;
        }
    }
    return -1;
}

static void set_default_list(int_list *l, const int64_t *v, int count)
{
    if (l->count)
        return;
    for (int i = 0; i < count; ++i)
        l->v[i] = v[i];
    l->count = count;
}

/* Parse one "--flag VALUE" option; returns 0, or -1 on a bad value. */
static int parse_valued(const char *flag, const char *val, bench_options *o)
{
    int64_t v = 0;
    if (strcmp(flag, "--n") == 0)
        return parse_list(val, &o->n);
    if (strcmp(flag, "--c") == 0)
        return parse_list(val, &o->c);
    if (strcmp(flag, "--d") == 0)
        return parse_list(val, &o->d);
    if (strcmp(flag, "--isa") == 0)
        return parse_isa(val, &o->isa);
    if (strcmp(flag, "--json") == 0)
        o->json_path = val;
    else if (strcmp(flag, "--csv") == 0)
        o->csv_path = val;
    else if (strcmp(flag, "--repeats") == 0 && parse_int(val, 1, MAX_REPEATS, &v) == 0)
        o->repeats = (int)v;
    else if (strcmp(flag, "--warmup") == 0 && parse_int(val, 0, MAX_REPEATS, &v) == 0)
        o->warmup = (int)v;
    else if (strcmp(flag, "--threads") == 0 && parse_int(val, 1, 4096, &v) == 0)
        o->threads = (int)v;
    else
        return -1;
    return 0;
}

static int is_valued_flag(const char *flag)
{
    static const char *const flags[] = {"--n",    "--c",   "--d",       "--isa",    "--json",
                                        "--csv", "--repeats", "--warmup", "--threads"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; ++i)
        if (strcmp(flag, flags[i]) == 0)
            return 1;
    return 0;
}

/* Returns 0 to run, 1 after --help, 2 on a usage error. */
static int parse_args(int argc, char **argv, bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->repeats = -1;
    o->warmup = 1;
    o->naive = 1;
    o->ceiling = 1;
    o->backward = 1;
    o->fused = 1;
    o->isa = -1;
    for (int i = 1; i < argc; ++i) {
        char flag[32];
        const char *arg = argv[i], *eq = strchr(arg, '=');
        snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(flag, "--quick") == 0) {
            o->quick = 1;
        } else if (strcmp(flag, "--no-naive") == 0) {
            o->naive = 0;
        } else if (strcmp(flag, "--no-ceiling") == 0) {
            o->ceiling = 0;
        } else if (strcmp(flag, "--fwd-only") == 0) {
            o->backward = 0;
        } else if (strcmp(flag, "--no-fused") == 0) {
            o->fused = 0;
        } else if (is_valued_flag(flag)) {
            const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val || parse_valued(flag, val, o) != 0) {
                fprintf(stderr, "xcat-bench: bad value for %s\n", flag);
                return 2;
            }
        } else {
            fprintf(stderr, "xcat-bench: unknown argument '%s'\n", arg);
            usage(stderr);
            return 2;
        }
    }
    static const int64_t quick_n[] = {1024}, quick_c[] = {20000}, quick_d[] = {64};
    static const int64_t full_n[] = {8192}, full_c[] = {100000}, full_d[] = {64, 128};
    set_default_list(&o->n, o->quick ? quick_n : full_n, 1);
    set_default_list(&o->c, o->quick ? quick_c : full_c, 1);
    set_default_list(&o->d, o->quick ? quick_d : full_d, o->quick ? 1 : 2);
    if (o->repeats < 0)
        o->repeats = o->quick ? 3 : 5;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Main                                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Bytes the naive baseline needs: N×C logits plus inputs and gradients. */
static double naive_bytes(const shape *s)
{
    return 4.0 * ((double)s->n * (double)s->c + 2.0 * (double)(s->n + s->c) * (double)s->d +
                  3.0 * (double)s->c + 3.0 * (double)s->n);
}

static void run_shape(const shape *s, const bench_options *o, child_result *res)
{
    for (int k = 0; k < NUM_CHILDREN; ++k) {
        if ((k == CHILD_NAIVE && !o->naive) || (k == CHILD_SGEMM && !o->ceiling) ||
            (k == CHILD_XCAT_FWDBWD && !o->backward) ||
            (k == CHILD_XCAT_FUSED && !(o->backward && o->fused))) {
            memset(&res[k], 0, sizeof res[k]);
            snprintf(res[k].note, sizeof res[k].note, "%s",
                     k == CHILD_NAIVE    ? "--no-naive"
                     : k == CHILD_SGEMM  ? "--no-ceiling"
                     : o->backward       ? "--no-fused"
                                         : "--fwd-only");
            continue;
        }
        if (k == CHILD_NAIVE && naive_bytes(s) > memory_budget_bytes()) {
            memset(&res[k], 0, sizeof res[k]);
            snprintf(res[k].note, sizeof res[k].note,
                     "needs %.1f GiB, more than %d%% of the %.1f GiB of physical memory",
                     naive_bytes(s) / 1073741824.0, MEMORY_BUDGET_PCT,
                     physical_memory_bytes() / 1073741824.0);
            continue;
        }
        run_child((child_kind)k, s, o, &res[k]);
    }
}

static void print_header(const bench_options *o, const char *date)
{
    char cpu[256];
    tool_cpu_model(cpu, sizeof cpu);
    printf("xcat-bench: xcat %s, %s, CPU %s, %.1f GiB RAM\n", xcat_version_string(), date, cpu,
           physical_memory_bytes() / 1073741824.0);
    printf("OpenBLAS: %s\n", openblas_get_config());
    printf("repeats %d (median), warm-up %d; flops: fwd 2·N·C·d, fwd+bwd 8·N·C·d; "
           "sgemm fwd+bwd = 2·logits + dH + dE\n",
           o->repeats, o->warmup);
}

/* The xcat context as the children saw it (the parent never opens one). */
static void print_context(const child_result *res)
{
    static int printed;
    for (int k = CHILD_XCAT_FWD; k <= CHILD_XCAT_FWDBWD && !printed; ++k) {
        const child_report *r = &res[k].rep;
        if (!res[k].ran || !r->ok)
            continue;
        printf("xcat context: backend %s, device \"%s\", isa %s, %d threads\n", r->backend,
               r->device, r->isa, r->threads);
        printed = 1;
    }
}

static int any_xcat_failure(const child_result *res)
{
    return (res[CHILD_XCAT_FWD].ran && !res[CHILD_XCAT_FWD].rep.ok) ||
           (res[CHILD_XCAT_FWDBWD].ran && !res[CHILD_XCAT_FWDBWD].rep.ok) ||
           (res[CHILD_XCAT_FUSED].ran && !res[CHILD_XCAT_FUSED].rep.ok);
}

static int write_outputs(const bench_options *o, const record_list *l, const char *date)
{
    int rc = 0;
    if (o->json_path && write_json(o->json_path, l, date) != 0) {
        fprintf(stderr, "xcat-bench: cannot write %s: %s\n", o->json_path, strerror(errno));
        rc = 1;
    }
    if (o->csv_path && write_csv(o->csv_path, l, date) != 0) {
        fprintf(stderr, "xcat-bench: cannot write %s: %s\n", o->csv_path, strerror(errno));
        rc = 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    /* Sub-commands for the other operations; the default is the full-softmax CE benchmark. */
    if (argc > 1 && strcmp(argv[1], "topk") == 0) return xcat_bench_topk_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "sampled") == 0)
        return xcat_bench_sampled_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "sce") == 0) return xcat_bench_sce_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "suite") == 0) return xcat_bench_suite_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return xcat_bench_report_main(argc - 1, argv + 1);
    bench_options o;
    int prc = parse_args(argc, argv, &o);
    if (prc != 0)
        return prc == 1 ? 0 : 2;

    char date[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    print_header(&o, date);

    const int nshapes = o.n.count * o.c.count * o.d.count;
    child_result *results = calloc((size_t)nshapes * NUM_CHILDREN, sizeof *results);
    if (!results) {
        fprintf(stderr, "xcat-bench: out of memory\n");
        return 1;
    }
    record_list records = {0};
    int failed = 0, idx = 0;
    for (int a = 0; a < o.n.count; ++a)
        for (int b = 0; b < o.c.count; ++b)
            for (int c = 0; c < o.d.count; ++c, ++idx) {
                shape s = {o.n.v[a], o.c.v[b], o.d.v[c]};
                child_result *res = results + (size_t)idx * NUM_CHILDREN;
                run_shape(&s, &o, res);
                print_context(res);
                int first = shape_records(&records, &s, res);
                print_shape_table(&records, first, &s, res);
                fflush(stdout);
                failed |= any_xcat_failure(res);
            }
    failed |= write_outputs(&o, &records, date);
    free(records.v);
    free(results);
    return failed ? 1 : 0;
}
