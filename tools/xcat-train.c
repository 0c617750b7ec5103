/*
 * xcat-train — train and evaluate a small sequential recommender whose output layer is xcat's
 * loss over the whole catalog and whose evaluation is xcat's top-K, on any backend.
 *
 * The model (tools/train_model.h) runs on the host; only the loss (forward + backward) and the
 * top-K scoring move between devices, so `--backend cpu` and `--backend opencl` run the same
 * training loop. Data: a synthetic log by default (planted transitions, Zipf popularity), or a
 * SASRec-format file with --data. Leave-one-out split; NDCG@K and HR@K with full ranking and the
 * user's seen items excluded, on validation every epoch and on test at the end.
 *
 * usage: xcat-train [options]        (xcat-train --help lists them)
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "train_data.h"
#include "train_model.h"
#include "xcat.h"

typedef struct options {
    const char *data, *backend, *device, *loss, *sampler, *correction, *json, *csv;
    int64_t users, items, dim, batch, negatives, max_steps, eval_users, sce_buckets, sce_ky;
    int32_t window, epochs, k, threads;
    double lr, gbce_t;
    uint64_t seed;
    int quiet, negatives_given, sce_mix, no_bias;
} options;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: xcat-train [options]\n"
        "  --data PATH          SASRec-format log (`user item` lines); default: synthetic data\n"
        "  --users N --items C  synthetic data size (default 6000 users, 5000 items)\n"
        "  --backend B          auto|cpu|opencl (default auto)   --device SEL  index or name\n"
        "  --threads N          CPU threads (default: all)\n"
        "  --loss L             ce|sampled-ce|bce|gbce|inbatch|sce (default ce)\n"
        "  --negatives K        negatives per row for the sampled kinds (default 256; inbatch:\n"
        "                       extra sampled negatives besides the batch, default 0)\n"
        "  --sampler S          uniform|popularity (default uniform)\n"
        "  --correction C       none|uniform|logq|logq-corrected (default none)\n"
        "  --gbce-t T           gBCE calibration (default 0.75)\n"
        "  --sce-buckets B      SCE: buckets n_b = rows per bucket k_x (default 2*sqrt(batch))\n"
        "  --sce-ky K           SCE: items per bucket k_y (default 256)   --sce-mix: mixed\n"
        "                       directions (from the batch's rows); item 0 is never selected\n"
        "  --dim D (64)  --window L (20)  --batch N (1024)  --epochs E (8)  --lr R (0.002)\n"
        "  --no-bias            no per-item output bias (logits h·e_j only)\n"
        "  --k K                cutoff of NDCG@K / HR@K (default 10)\n"
        "  --eval-users N       evaluate on the first N eligible users only (default all)\n"
        "  --max-steps N        stop each epoch after N steps (smoke runs)\n"
        "  --seed S (1)  --json PATH  --csv PATH  --quiet\n");
}

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.backend = "auto", .loss = "ce", .sampler = "uniform", .correction = "none",
                   .users = 6000, .items = 5000, .dim = 64, .batch = 1024, .negatives = 256,
                   .window = 20, .epochs = 8, .k = 10, .lr = 0.002, .gbce_t = 0.75, .seed = 1};
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        int *flag = !strcmp(a, "--quiet")     ? &o->quiet
                    : !strcmp(a, "--sce-mix") ? &o->sce_mix
                    : !strcmp(a, "--no-bias") ? &o->no_bias
                                              : NULL;
        if (flag) { /* options without a value */
            *flag = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "xcat-train: %s needs a value\n", a);
            return -1;
        }
        const char *v = argv[++i];
        int64_t n = 0;
        int bad = 0;
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--loss")) o->loss = v;
        else if (!strcmp(a, "--sampler")) o->sampler = v;
        else if (!strcmp(a, "--correction")) o->correction = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--csv")) o->csv = v;
        else if (!strcmp(a, "--lr")) o->lr = strtod(v, NULL), bad = !(o->lr > 0);
        else if (!strcmp(a, "--gbce-t")) o->gbce_t = strtod(v, NULL);
        else if ((bad = parse_int(v, &n)) != 0) ;
        else if (!strcmp(a, "--users")) o->users = n;
        else if (!strcmp(a, "--items")) o->items = n;
        else if (!strcmp(a, "--dim")) o->dim = n;
        else if (!strcmp(a, "--batch")) o->batch = n;
        else if (!strcmp(a, "--negatives")) o->negatives = n, o->negatives_given = 1;
        else if (!strcmp(a, "--sce-buckets")) o->sce_buckets = n, bad = n < 1;
        else if (!strcmp(a, "--sce-ky")) o->sce_ky = n, bad = n < 1;
        else if (!strcmp(a, "--max-steps")) o->max_steps = n;
        else if (!strcmp(a, "--eval-users")) o->eval_users = n;
        else if (!strcmp(a, "--window")) o->window = (int32_t)n;
        else if (!strcmp(a, "--epochs")) o->epochs = (int32_t)n;
        else if (!strcmp(a, "--k")) o->k = (int32_t)n;
        else if (!strcmp(a, "--threads")) o->threads = (int32_t)n;
        else if (!strcmp(a, "--seed")) o->seed = (uint64_t)n;
        else {
            fprintf(stderr, "xcat-train: unknown option %s\n", a);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "xcat-train: bad value for %s: %s\n", a, v);
            return -1;
        }
    }
    if (o->dim < 1 || o->dim > 1024 || o->batch < 1 || o->window < 1 || o->epochs < 0 ||
        o->k < 1) {
        fprintf(stderr, "xcat-train: need 1 <= dim <= 1024, batch >= 1, window >= 1, k >= 1\n");
        return -1;
    }
    return 0;
}

/* ---- the loss descriptor from the command line ------------------------------------------- */

static int loss_desc_from(const options *o, xcat_loss_desc *d)
{
    static const struct { const char *name; xcat_loss_kind kind; } kinds[] = {
        {"ce", XCAT_LOSS_CE}, {"sampled-ce", XCAT_LOSS_SAMPLED_CE}, {"bce", XCAT_LOSS_BCE},
        {"gbce", XCAT_LOSS_GBCE}, {"inbatch", XCAT_LOSS_INBATCH}, {"sce", XCAT_LOSS_SCE}};
    static const struct { const char *name; xcat_correction c; } corrs[] = {
        {"none", XCAT_CORRECTION_NONE}, {"uniform", XCAT_CORRECTION_UNIFORM},
        {"logq", XCAT_CORRECTION_LOGQ}, {"logq-corrected", XCAT_CORRECTION_LOGQ_CORRECTED}};
    int kind = -1, corr = -1;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; ++i)
        if (!strcmp(o->loss, kinds[i].name)) kind = (int)i;
    for (size_t i = 0; i < sizeof corrs / sizeof *corrs; ++i)
        if (!strcmp(o->correction, corrs[i].name)) corr = (int)i;
    if (kind < 0 || corr < 0 || (strcmp(o->sampler, "uniform") && strcmp(o->sampler, "popularity"))) {
        fprintf(stderr, "xcat-train: unknown --loss, --sampler or --correction\n");
        return -1;
    }
    xcat_loss_desc_init(d, kinds[kind].kind);
    if (kinds[kind].kind == XCAT_LOSS_SCE) { /* 0 = the library's defaults */
        d->sce_buckets = d->sce_rows_per_bucket = o->sce_buckets;
        d->sce_items_per_bucket = o->sce_ky;
        d->sce_mix_rows = o->sce_mix;
        d->seed = o->seed;
    } else if (kinds[kind].kind != XCAT_LOSS_CE) {
        /* in-batch: its negatives are the batch's positives; --negatives adds sampled extras */
        const bool inb = kinds[kind].kind == XCAT_LOSS_INBATCH;
        d->num_negatives = inb && !o->negatives_given ? 0 : o->negatives;
        d->sampler = strcmp(o->sampler, "popularity") ? XCAT_SAMPLER_UNIFORM
                                                      : XCAT_SAMPLER_POPULARITY;
        if (inb && d->num_negatives == 0) d->sampler = XCAT_SAMPLER_IN_BATCH;
        d->correction = corrs[corr].c;
        d->gbce_t = (float)o->gbce_t;
        d->seed = o->seed;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------ */

#define EVAL_BLOCK 1024 /* queries per top-K call during evaluation */

typedef struct run {
    const options *o;
    train_data data;
    train_split split;
    train_model model;
    xcat_context *ctx;
    xcat_loss_plan *plan;
    xcat_tensor *H, *Y, *E, *B, *dH, *dE, *dB, *L, *TBan;
    /* evaluation: on ectx, the training context unless its backend has no top-K yet (then a
     * CPU context), with its own copies of E and b */
    xcat_context *ectx;
    xcat_tensor *Q, *Eoff, *Eitems, *Ban, *Idx, *Tgt, *EE, *EB;
    float *h, *x;     /* batch × d host buffers */
    int32_t *y;
    int64_t *eoff;
    int32_t *eitems;
    int32_t *etgt;
    int64_t eval_count, eval_cap_items;
} run;

static int xfail(run *r, const char *what, xcat_status st)
{
    fprintf(stderr, "xcat-train: %s: %s (%s)\n", what, xcat_status_string(st),
            r->ctx ? xcat_context_last_error(r->ctx) : "");
    return -1;
}

#define XTRY(what, call)                                  \
    do {                                                  \
        xcat_status st_ = (call);                         \
        if (st_ != XCAT_OK) return xfail(r, (what), st_); \
    } while (0)

static int make_tensors(run *r)
{
    const int64_t n = r->o->batch, c = r->data.num_items, d = r->o->dim;
    XTRY("tensor H", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, n, d, &r->H));
    XTRY("tensor y", xcat_tensor_create(r->ctx, XCAT_DTYPE_I32, n, 1, &r->Y));
    XTRY("tensor E", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, c, d, &r->E));
    XTRY("tensor b", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, c, 1, &r->B));
    XTRY("tensor dH", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, n, d, &r->dH));
    XTRY("tensor dE", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, c, d, &r->dE));
    XTRY("tensor db", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, c, 1, &r->dB));
    XTRY("tensor loss", xcat_tensor_create(r->ctx, XCAT_DTYPE_F32, 1, 1, &r->L));
    /* host rows for a training batch, and for an evaluation block of EVAL_BLOCK queries */
    const int64_t rows = n > EVAL_BLOCK ? n : EVAL_BLOCK;
    r->h = malloc((size_t)(rows * d) * sizeof *r->h);
    r->x = malloc((size_t)(rows * d) * sizeof *r->x);
    r->y = malloc((size_t)n * sizeof *r->y);
    if (!r->h || !r->x || !r->y) {
        fprintf(stderr, "xcat-train: out of memory\n");
        return -1;
    }
    return 0;
}

static void free_all(run *r)
{
    xcat_tensor *ts[] = {r->H, r->Y, r->E, r->B, r->dH, r->dE, r->dB, r->L, r->TBan,
                         r->Q, r->Eoff, r->Eitems, r->Ban, r->Idx, r->Tgt, r->EE, r->EB};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; ++i) xcat_tensor_free(ts[i]);
    xcat_loss_plan_free(r->plan);
    if (r->ectx != r->ctx) xcat_context_free(r->ectx);
    xcat_context_free(r->ctx);
    train_model_free(&r->model);
    train_split_free(&r->split);
    train_data_free(&r->data);
    free(r->h), free(r->x), free(r->y), free(r->eoff), free(r->eitems), free(r->etgt);
}

static int upload_catalog(run *r)
{
    XTRY("write E", xcat_tensor_write(r->E, r->model.E.value, 0));
    XTRY("write b", xcat_tensor_write(r->B, r->model.b.value, 0));
    return 0;
}

/* One optimisation step on positions order[first .. first+n). Returns the batch loss or NaN. */
static double train_step(run *r, const int64_t *order, int64_t first, int64_t n)
{
    const int64_t d = r->o->dim;
    /* Rows are independent here (their backward below shares gradients and stays serial). */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const int64_t p = order[first + i], u = r->split.pos_user[p];
        const int32_t t = r->split.pos_t[p];
        const int32_t *seq = r->data.items + r->data.offsets[u];
        train_model_state(&r->model, seq, t + 1, r->x + i * d, r->h + i * d);
        r->y[i] = seq[t + 1];
    }
    /* A ragged last batch: pad with ignored rows (target −100), so tensors keep their shape. */
    for (int64_t i = n; i < r->o->batch; ++i) {
        memset(r->h + i * d, 0, (size_t)d * sizeof *r->h);
        r->y[i] = -100;
    }
    if (xcat_tensor_write(r->H, r->h, 0) || xcat_tensor_write(r->Y, r->y, 0) ||
        upload_catalog(r))
        return NAN;
    xcat_loss_args a;
    xcat_loss_args_init(&a);
    a.hidden = r->H;
    a.items = r->E;
    a.bias = r->o->no_bias ? NULL : r->B;
    a.targets = r->Y;
    a.step = (uint64_t)r->model.step;
    a.banned_items = r->TBan; /* SCE: the padding item never enters a bucket */
    xcat_status st = xcat_loss_forward_backward(r->plan, &a, r->L, NULL, NULL, r->dH, r->dE,
                                                r->o->no_bias ? NULL : r->dB);
    if (st) {
        xfail(r, "loss", st);
        return NAN;
    }
    float loss;
    train_model_zero_grad(&r->model);
    if (xcat_tensor_read(r->L, &loss, 0) || xcat_tensor_read(r->dH, r->h, 0) ||
        xcat_tensor_read(r->dE, r->model.E.grad, 0) ||
        (!r->o->no_bias && xcat_tensor_read(r->dB, r->model.b.grad, 0)))
        return NAN;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t p = order[first + i], u = r->split.pos_user[p];
        const int32_t t = r->split.pos_t[p];
        train_model_state_backward(&r->model, r->data.items + r->data.offsets[u], t + 1,
                                   r->x + i * d, r->h + i * d);
    }
    train_model_adam(&r->model, (float)r->o->lr);
    return loss;
}

/* ---- evaluation: full ranking with xcat_topk, seen items excluded ------------------------- */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* NDCG@K and HR@K over the evaluation users; `test` adds the validation item to the history. */
static int evaluate(run *r, int test, double *ndcg, double *hr)
{
    const int64_t d = r->o->dim, c = r->data.num_items, k = r->o->k;
    const int64_t m_all = r->o->eval_users > 0 && r->o->eval_users < r->split.num_eval_users
                              ? r->o->eval_users : r->split.num_eval_users;
    const int64_t mb = EVAL_BLOCK; /* queries per top-K call */
    double sum_ndcg = 0.0, sum_hr = 0.0;
    int64_t counted = 0;
    if (!r->Q) {
        xcat_context *e = r->ectx;
        XTRY("tensor Q", xcat_tensor_create(e, XCAT_DTYPE_F32, mb, d, &r->Q));
        XTRY("tensor idx", xcat_tensor_create(e, XCAT_DTYPE_I32, mb, k, &r->Idx));
        XTRY("tensor tgt", xcat_tensor_create(e, XCAT_DTYPE_I32, mb, 1, &r->Tgt));
        XTRY("tensor offsets", xcat_tensor_create(e, XCAT_DTYPE_I64, mb + 1, 1, &r->Eoff));
        XTRY("tensor banned", xcat_tensor_create(e, XCAT_DTYPE_I32, 1, 1, &r->Ban));
        XTRY("tensor E", xcat_tensor_create(e, XCAT_DTYPE_F32, c, d, &r->EE));
        XTRY("tensor b", xcat_tensor_create(e, XCAT_DTYPE_F32, c, 1, &r->EB));
        int32_t zero = 0;
        XTRY("write banned", xcat_tensor_write(r->Ban, &zero, 0)); /* the padding item */
        r->eoff = malloc((size_t)(mb + 1) * sizeof *r->eoff);
        r->etgt = malloc((size_t)mb * sizeof *r->etgt);
        if (!r->eoff || !r->etgt) return fprintf(stderr, "xcat-train: out of memory\n"), -1;
    }
    XTRY("write E", xcat_tensor_write(r->EE, r->model.E.value, 0));
    XTRY("write b", xcat_tensor_write(r->EB, r->model.b.value, 0));
    for (int64_t first = 0; first < m_all; first += mb) {
        const int64_t m = m_all - first < mb ? m_all - first : mb;
        /* histories, sorted and unique, as the exclusion CSR */
        int64_t nnz = 0;
        for (int64_t q = 0; q < m; ++q) {
            const int64_t u = r->split.eval_user[first + q];
            nnz += r->data.offsets[u + 1] - r->data.offsets[u];
        }
        if (nnz > r->eval_cap_items) {
            free(r->eitems);
            r->eitems = malloc((size_t)nnz * sizeof *r->eitems);
            r->eval_cap_items = nnz;
            xcat_tensor_free(r->Eitems);
            r->Eitems = NULL;
            if (!r->eitems) return fprintf(stderr, "xcat-train: out of memory\n"), -1;
        }
        nnz = 0;
        r->eoff[0] = 0;
        for (int64_t q = 0; q < m; ++q) {
            const int64_t u = r->split.eval_user[first + q];
            const int32_t *seq = r->data.items + r->data.offsets[u];
            const int64_t n = r->data.offsets[u + 1] - r->data.offsets[u];
            const int64_t hist = test ? n - 1 : n - 2;
            train_model_state(&r->model, seq, hist, r->x + q * d, r->h + q * d);
            r->etgt[q] = seq[hist];
            int32_t *ex = r->eitems + nnz;
            memcpy(ex, seq, (size_t)hist * sizeof *ex);
            qsort(ex, (size_t)hist, sizeof *ex, cmp_i32);
            int64_t w = 0;
            for (int64_t i = 0; i < hist; ++i)
                if (w == 0 || ex[i] != ex[w - 1]) ex[w++] = ex[i];
            /* The target itself is never excluded, even when the user saw it before. */
            int64_t keep = 0;
            for (int64_t i = 0; i < w; ++i)
                if (ex[i] != r->etgt[q]) ex[keep++] = ex[i];
            nnz += keep;
            r->eoff[q + 1] = nnz;
        }
        for (int64_t q = m; q < mb; ++q) {
            r->eoff[q + 1] = nnz;
            r->etgt[q] = -1;
            memset(r->h + q * d, 0, (size_t)d * sizeof *r->h);
        }
        xcat_tensor *items_t = NULL;
        XTRY("tensor exclusions",
             xcat_tensor_create(r->ectx, XCAT_DTYPE_I32, nnz > 0 ? nnz : 1, 1, &items_t));
        xcat_status st = nnz > 0 ? xcat_tensor_write(items_t, r->eitems, 0) : XCAT_OK;
        if (!st) st = xcat_tensor_write(r->Q, r->h, 0);
        if (!st) st = xcat_tensor_write(r->Eoff, r->eoff, 0);
        if (!st) st = xcat_tensor_write(r->Tgt, r->etgt, 0);
        xcat_topk_args ta;
        xcat_topk_args_init(&ta);
        ta.queries = r->Q;
        ta.items = r->EE;
        ta.bias = r->EB;
        ta.banned_items = r->Ban;
        if (nnz > 0) {
            ta.exclude_offsets = r->Eoff;
            ta.exclude_items = items_t;
        }
        if (!st) st = xcat_topk(r->ectx, &ta, k, r->Idx, NULL);
        xcat_metrics met;
        xcat_metrics_init(&met);
        if (!st) st = xcat_metrics_from_topk(r->ectx, r->Idx, k, NULL, r->Tgt, c, &met);
        xcat_tensor_free(items_t);
        if (st == XCAT_ERROR_UNSUPPORTED && r->ectx == r->ctx) {
            /* This backend has no top-K yet: evaluate on the native CPU backend instead. */
            fprintf(stderr, "xcat-train: %s; evaluating with the CPU backend\n",
                    xcat_context_last_error(r->ctx));
            xcat_tensor *ev[] = {r->Q, r->Eoff, r->Ban, r->Idx, r->Tgt, r->EE, r->EB};
            for (size_t i = 0; i < sizeof ev / sizeof *ev; ++i) xcat_tensor_free(ev[i]);
            r->Q = r->Eoff = r->Ban = r->Idx = r->Tgt = r->EE = r->EB = NULL;
            free(r->eoff), free(r->etgt);
            r->eoff = NULL, r->etgt = NULL;
            xcat_context_options co;
            xcat_context_options_init(&co);
            co.backend = XCAT_BACKEND_CPU;
            co.num_threads = r->o->threads;
            xcat_status cs = xcat_context_create(&co, &r->ectx);
            if (cs) return xfail(r, "CPU context for evaluation", cs);
            return evaluate(r, test, ndcg, hr);
        }
        if (st) return xfail(r, "evaluation (top-K)", st);
        sum_ndcg += met.ndcg * (double)met.queries;
        sum_hr += met.hr * (double)met.queries;
        counted += met.queries;
    }
    *ndcg = counted ? sum_ndcg / (double)counted : 0.0;
    *hr = counted ? sum_hr / (double)counted : 0.0;
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static xcat_backend_kind backend_of(const char *s)
{
    return !strcmp(s, "cpu") ? XCAT_BACKEND_CPU
         : !strcmp(s, "opencl") ? XCAT_BACKEND_OPENCL : XCAT_BACKEND_AUTO;
}

static int load_data(const options *o, train_data *d, char *err, size_t size)
{
    if (o->data) return train_data_load(o->data, d, err, size);
    synth_options so;
    synth_options_init(&so);
    so.users = o->users;
    so.items = o->items;
    so.seed = o->seed;
    return train_data_synthetic(&so, d, err, size);
}

int main(int argc, char **argv)
{
    options o;
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc > 0 ? 0 : 2;
    run rr = {.o = &o}, *r = &rr;
    char err[512] = "";
    int rc = 1;
    xcat_loss_desc desc;
    if (loss_desc_from(&o, &desc)) return 2;

    if (load_data(&o, &r->data, err, sizeof err) ||
        train_split_make(&r->data, &r->split, err, sizeof err)) {
        fprintf(stderr, "xcat-train: %s\n", err);
        free_all(r);
        return 1;
    }
    if (train_model_init(&r->model, r->data.num_items, o.dim, o.window, o.seed)) {
        fprintf(stderr, "xcat-train: out of memory for the model\n");
        free_all(r);
        return 1;
    }
    xcat_context_options co;
    xcat_context_options_init(&co);
    co.backend = backend_of(o.backend);
    co.device = o.device;
    co.num_threads = o.threads;
    if (o.threads > 0) omp_set_num_threads(o.threads); /* the model's own loops too */
    co.error_message = err;
    co.error_message_size = sizeof err;
    xcat_status st = xcat_context_create(&co, &r->ctx);
    if (st) {
        fprintf(stderr, "xcat-train: context: %s (%s)\n", xcat_status_string(st), err);
        free_all(r);
        return 1;
    }
    r->ectx = r->ctx;
    xcat_context_info info;
    xcat_context_info_init(&info);
    xcat_context_get_info(r->ctx, &info);
    st = xcat_loss_plan_create(r->ctx, &desc, o.batch, r->data.num_items, o.dim, &r->plan);
    if (!st && desc.kind == XCAT_LOSS_SCE) {
        const int32_t pad = 0;
        st = xcat_tensor_create(r->ctx, XCAT_DTYPE_I32, 1, 1, &r->TBan);
        if (!st) st = xcat_tensor_write(r->TBan, &pad, 0);
    }
    if (st) {
        xfail(r, "loss plan", st);
        free_all(r);
        return 1;
    }
    if (desc.sampler == XCAT_SAMPLER_POPULARITY || desc.correction == XCAT_CORRECTION_LOGQ ||
        desc.correction == XCAT_CORRECTION_LOGQ_CORRECTED) {
        xcat_tensor *counts = NULL;
        st = xcat_tensor_create(r->ctx, XCAT_DTYPE_I64, r->data.num_items, 1, &counts);
        if (!st) st = xcat_tensor_write(counts, r->split.item_counts, 0);
        if (!st) st = xcat_loss_plan_set_item_counts(r->plan, counts);
        xcat_tensor_free(counts);
        if (st) {
            xfail(r, "item counts", st);
            free_all(r);
            return 1;
        }
    }
    if (make_tensors(r)) {
        free_all(r);
        return 1;
    }
    FILE *csv = o.csv ? fopen(o.csv, "w") : NULL;
    FILE *json = o.json ? fopen(o.json, "w") : NULL;
    if ((o.csv && !csv) || (o.json && !json)) {
        fprintf(stderr, "xcat-train: cannot write %s\n", o.csv && !csv ? o.csv : o.json);
        goto done;
    }
    if (csv) fprintf(csv, "epoch,loss,seconds,samples_per_s,val_ndcg,val_hr\n");
    if (json)
        fprintf(json, "{\"tool\": \"xcat-train\", \"version\": \"%s\", \"backend\": \"%s\", "
                "\"device\": \"%s\", \"data\": \"%s\", \"users\": %lld, \"items\": %lld, "
                "\"events\": %lld, \"loss\": \"%s\", \"negatives\": %lld, \"sampler\": \"%s\", "
                "\"sce_buckets\": %lld, \"sce_ky\": %lld, \"sce_mix\": %d, "
                "\"correction\": \"%s\", \"dim\": %lld, \"window\": %d, \"batch\": %lld, "
                "\"lr\": %g, \"bias\": %d, \"seed\": %llu, \"k\": %d, \"epochs\": [",
                xcat_version_string(), info.backend_name, info.device_name,
                o.data ? o.data : "synthetic", (long long)r->data.num_users,
                (long long)r->data.num_items, (long long)r->data.num_events, o.loss,
                (long long)desc.num_negatives, o.sampler, (long long)desc.sce_buckets,
                (long long)desc.sce_items_per_bucket, desc.sce_mix_rows, o.correction, (long long)o.dim,
                o.window, (long long)o.batch, o.lr, !o.no_bias, (unsigned long long)o.seed, o.k);
    fprintf(stderr, "xcat-train: %s on %s (%s) — %lld users, %lld items, %lld train positions, "
            "loss %s, d=%lld, batch %lld\n", o.data ? o.data : "synthetic data",
            info.backend_name, info.device_name, (long long)r->data.num_users,
            (long long)r->data.num_items, (long long)r->split.num_train_positions, o.loss,
            (long long)o.dim, (long long)o.batch);

    const int64_t npos = r->split.num_train_positions;
    int64_t *order = malloc((size_t)npos * sizeof *order);
    if (!order) goto done;
    uint64_t shuffle = o.seed * 0x9E3779B97F4A7C15ull + 7;
    const double t_start = now_ms();
    for (int32_t ep = 1; ep <= o.epochs; ++ep) {
        for (int64_t i = 0; i < npos; ++i) order[i] = i;
        for (int64_t i = npos - 1; i > 0; --i) {
            int64_t j = (int64_t)(splitmix64(&shuffle) % (uint64_t)(i + 1));
            int64_t t = order[i]; order[i] = order[j]; order[j] = t;
        }
        const double t0 = now_ms();
        double loss_sum = 0.0;
        int64_t steps = 0, samples = 0;
        const int64_t nsteps = (npos + o.batch - 1) / o.batch;
        for (int64_t first = 0; first < npos; first += o.batch, ++steps) {
            if (o.max_steps && steps >= o.max_steps) break;
            const int64_t n = npos - first < o.batch ? npos - first : o.batch;
            const double l = train_step(r, order, first, n);
            if (isnan(l)) {
                free(order);
                goto done;
            }
            loss_sum += l;
            samples += n;
            if (!o.quiet && isatty(STDERR_FILENO) && steps % 20 == 0) {
                const double el = (now_ms() - t0) / 1e3;
                const int64_t todo = o.max_steps && o.max_steps < nsteps ? o.max_steps : nsteps;
                fprintf(stderr, "\repoch %d/%d  step %lld/%lld  loss %.4f  %.0f samples/s  "
                        "ETA %.0f s   ", ep, o.epochs, (long long)steps + 1, (long long)todo,
                        loss_sum / (double)(steps + 1), samples / (el > 0 ? el : 1e-9),
                        el / (double)(steps + 1) * (double)(todo - steps - 1) +
                            el / (double)(steps + 1) * (double)todo * (o.epochs - ep));
            }
        }
        const double secs = (now_ms() - t0) / 1e3;
        double ndcg = 0.0, hr = 0.0;
        if (evaluate(r, 0, &ndcg, &hr)) {
            free(order);
            goto done;
        }
        const double loss = loss_sum / (double)(steps ? steps : 1);
        if (!o.quiet && isatty(STDERR_FILENO)) fprintf(stderr, "\r\033[K");
        printf("epoch %d/%d  loss %.4f  %.1f s  %.0f samples/s  val NDCG@%d %.4f  HR@%d %.4f\n",
               ep, o.epochs, loss, secs, samples / secs, o.k, ndcg, o.k, hr);
        fflush(stdout);
        if (csv) fprintf(csv, "%d,%.6f,%.3f,%.1f,%.6f,%.6f\n", ep, loss, secs, samples / secs,
                         ndcg, hr);
        if (json)
            fprintf(json, "%s{\"epoch\": %d, \"loss\": %.6f, \"seconds\": %.3f, "
                    "\"samples_per_s\": %.1f, \"val_ndcg\": %.6f, \"val_hr\": %.6f}",
                    ep > 1 ? ", " : "", ep, loss, secs, samples / secs, ndcg, hr);
    }
    free(order);
    double ndcg = 0.0, hr = 0.0;
    if (evaluate(r, 1, &ndcg, &hr)) goto done;
    const double total = (now_ms() - t_start) / 1e3;
    printf("test  NDCG@%d %.4f  HR@%d %.4f  (%.1f s in all, peak RSS %.0f MiB)\n", o.k, ndcg,
           o.k, hr, total, peak_rss_mib());
    if (json)
        fprintf(json, "], \"test_ndcg\": %.6f, \"test_hr\": %.6f, \"seconds\": %.3f, "
                "\"peak_rss_mib\": %.1f}\n", ndcg, hr, total, peak_rss_mib());
    rc = 0;
done:
    if (csv) fclose(csv);
    if (json) fclose(json);
    free_all(r);
    return rc;
}
