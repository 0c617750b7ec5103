/* train_data.c — see train_data.h. */
#include "train_data.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static int fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

void synth_options_init(synth_options *o)
{
    o->users = 6000;
    o->items = 5000;
    o->min_len = 5;
    o->max_len = 40;
    o->zipf_s = 1.05;
    o->follow_p = 0.5;
    o->seed = 42;
}

void train_data_free(train_data *d)
{
    free(d->offsets);
    free(d->items);
    memset(d, 0, sizeof *d);
}

int train_data_load(const char *path, train_data *d, char *err, size_t err_size)
{
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, err_size, "cannot open %s", path);
    int64_t cap = 1 << 20, n = 0, ucap = 1 << 16, users = 0, prev_user = -1, max_item = 0;
    int32_t *items = malloc((size_t)cap * sizeof *items);
    int64_t *offsets = malloc((size_t)(ucap + 1) * sizeof *offsets);
    long long u, it;
    int rc, bad = 0; /* 1: not a log, 2: id < 1, 3: users not grouped, 4: out of memory */
    while ((rc = fscanf(f, "%lld %lld", &u, &it)) == 2) {
        if (!items || !offsets) {
            bad = 4;
            break;
        }
        if (u < 1 || it < 1 || it > INT32_MAX) {
            bad = 2;
            break;
        }
        if (u != prev_user) {
            if (u < prev_user) {
                bad = 3;
                break;
            }
            if (users + 1 >= ucap) {
                ucap *= 2;
                int64_t *o2 = realloc(offsets, (size_t)(ucap + 1) * sizeof *o2);
                if (!o2) {
                    bad = 4;
                    break;
                }
                offsets = o2;
            }
            offsets[users++] = n;
            prev_user = u;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *i2 = realloc(items, (size_t)cap * sizeof *i2);
            if (!i2) {
                bad = 4;
                break;
            }
            items = i2;
        }
        items[n++] = (int32_t)it;
        if (it > max_item) max_item = it;
    }
    if (!bad && (rc != EOF || n == 0)) bad = 1; /* a line that is not two integers */
    fclose(f);
    if (bad) {
        free(items);
        free(offsets);
        const long long line = (long long)n + 1;
        if (bad == 2) return fail(err, err_size, "%s: ids must be >= 1 (line %lld)", path, line);
        if (bad == 3)
            return fail(err, err_size, "%s: users are not grouped in increasing order (line "
                        "%lld)", path, line);
        if (bad == 4) return fail(err, err_size, "%s: out of memory (line %lld)", path, line);
        return fail(err, err_size, "%s: not a `user item` log (line %lld)", path, line);
    }
    offsets[users] = n;
    d->num_users = users;
    d->num_items = max_item + 1;
    d->num_events = n;
    d->offsets = offsets;
    d->items = items;
    return 0;
}

/* Zipf(s) over ranks 1..n by inversion of the cumulative table. */
static int32_t zipf_draw(const double *cdf, int64_t n, uint64_t *state)
{
    double u = (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (cdf[mid] < u) lo = mid + 1; else hi = mid;
    }
    return (int32_t)lo;
}

int train_data_synthetic(const synth_options *o, train_data *d, char *err, size_t err_size)
{
    memset(d, 0, sizeof *d);
    if (o->users < 1 || o->items < 2 || o->items > INT32_MAX - 1 || o->min_len < 3 ||
        o->max_len < o->min_len)
        return fail(err, err_size, "synthetic data: need users >= 1, 2 <= items < 2^31, 3 <= "
                    "min_len <= max_len");
    const int64_t n_items = o->items;
    uint64_t st = o->seed;
    double *cdf = malloc((size_t)n_items * sizeof *cdf);
    int32_t *succ = malloc((size_t)n_items * sizeof *succ);  /* rank -> successor rank */
    int32_t *id_of = malloc((size_t)n_items * sizeof *id_of); /* rank -> item id */
    int64_t *offsets = malloc((size_t)(o->users + 1) * sizeof *offsets);
    int64_t total = 0;
    if (cdf && offsets) {
        uint64_t ls = o->seed ^ 0x5bd1e995u;
        for (int64_t u = 0; u < o->users; ++u) {
            offsets[u] = total;
            total += o->min_len + (int64_t)(splitmix64(&ls) % (uint64_t)(o->max_len - o->min_len + 1));
        }
        offsets[o->users] = total;
    }
    int32_t *items = (cdf && offsets) ? malloc((size_t)total * sizeof *items) : NULL;
    if (!cdf || !succ || !id_of || !offsets || !items) {
        free(cdf), free(succ), free(id_of), free(offsets), free(items);
        return fail(err, err_size, "synthetic data: out of memory");
    }
    double z = 0.0;
    for (int64_t r = 0; r < n_items; ++r) z += pow((double)(r + 1), -o->zipf_s);
    double acc = 0.0;
    for (int64_t r = 0; r < n_items; ++r) {
        acc += pow((double)(r + 1), -o->zipf_s) / z;
        cdf[r] = acc;
        id_of[r] = (int32_t)(r + 1);
        succ[r] = (int32_t)r;
    }
    cdf[n_items - 1] = 1.0;
    /* Shuffle ids (popularity is not id order) and successors (a random permutation). */
    for (int64_t r = n_items - 1; r > 0; --r) {
        int64_t j = (int64_t)(splitmix64(&st) % (uint64_t)(r + 1));
        int32_t t = id_of[r]; id_of[r] = id_of[j]; id_of[j] = t;
        j = (int64_t)(splitmix64(&st) % (uint64_t)(r + 1));
        t = succ[r]; succ[r] = succ[j]; succ[j] = t;
    }
    for (int64_t u = 0; u < o->users; ++u) {
        int32_t cur = zipf_draw(cdf, n_items, &st);
        for (int64_t i = offsets[u]; i < offsets[u + 1]; ++i) {
            items[i] = id_of[cur];
            double p = (double)(splitmix64(&st) >> 11) * (1.0 / 9007199254740992.0);
            cur = p < o->follow_p ? succ[cur] : zipf_draw(cdf, n_items, &st);
        }
    }
    free(cdf), free(succ), free(id_of);
    d->num_users = o->users;
    d->num_items = n_items + 1;
    d->num_events = total;
    d->offsets = offsets;
    d->items = items;
    return 0;
}

void train_split_free(train_split *s)
{
    free(s->pos_user);
    free(s->pos_t);
    free(s->eval_user);
    free(s->item_counts);
    memset(s, 0, sizeof *s);
}

int train_split_make(const train_data *d, train_split *s, char *err, size_t err_size)
{
    memset(s, 0, sizeof *s);
    int64_t npos = 0, nev = 0;
    for (int64_t u = 0; u < d->num_users; ++u) {
        int64_t n = d->offsets[u + 1] - d->offsets[u];
        if (n >= 3) {
            npos += n - 3; /* train part has n−2 items: n−3 (history, next) pairs */
            ++nev;
        }
    }
    s->pos_user = malloc((size_t)(npos ? npos : 1) * sizeof *s->pos_user);
    s->pos_t = malloc((size_t)(npos ? npos : 1) * sizeof *s->pos_t);
    s->eval_user = malloc((size_t)(nev ? nev : 1) * sizeof *s->eval_user);
    s->item_counts = calloc((size_t)d->num_items, sizeof *s->item_counts);
    if (!s->pos_user || !s->pos_t || !s->eval_user || !s->item_counts) {
        train_split_free(s);
        return fail(err, err_size, "split: out of memory");
    }
    if (npos == 0) {
        train_split_free(s);
        return fail(err, err_size, "split: no user has 4 or more items to train on");
    }
    int64_t p = 0, e = 0;
    for (int64_t u = 0; u < d->num_users; ++u) {
        const int64_t base = d->offsets[u], n = d->offsets[u + 1] - base;
        if (n < 3) continue;
        s->eval_user[e++] = u;
        for (int64_t t = 0; t < n - 2; ++t) {
            ++s->item_counts[d->items[base + t]];
            if (t + 1 < n - 2) {
                s->pos_user[p] = u;
                s->pos_t[p++] = (int32_t)t;
            }
        }
    }
    s->num_train_positions = p;
    s->num_eval_users = e;
    return 0;
}
