/* ocl_topk.c — fused scoring + top-K on OpenCL, and sampled evaluation ranks (cl/topk.cl).
 *
 * The catalog is walked in nch interleaved chunks of at most `cc` items (chunk j: items j,
 * j + nch, …, so that any prefix of the scan is an even sample); per chunk one launch of
 * topk_score_filter
 * (queries × chunk GEMM tiles whose epilogue appends the scores that beat each query's current
 * threshold to the query's candidate buffer) and one of topk_select (queries whose buffer holds
 * more than `limit` keys drop their excluded items, keep their K best and raise their
 * threshold). At the end topk_select with limit 0, topk_sort_blocks and topk_merge write each
 * query's row. Nothing of size M×C exists. Before the scan (catalogs of at least 4 chunks) a
 * strided sample of the catalog, scored by the same kernel, gives each query its starting
 * threshold (make_layout: sample_*); a query it served badly is redone without it.
 *
 * Approximate scoring (L->approx 1: TF32 tensor cores, topk_score_filter_mma): before the scan
 * topk_norms finds the catalog's largest norm (and |bias|) and each query's error margin; the
 * selections keep every key within the margin of the K-th; at the end topk_rescore recomputes
 * the survivors in fp32 and an exact topk_select cuts them to K. A flagged query (no finite
 * margin, or a margin set larger than its buffer) is redone on the exact path (redo_flagged).
 * L->approx 2 (XCAT_CL_TOPK_APPROX=1 without tensor cores): the same with exact scores perturbed
 * within the margin — a program of its own, for the tests.
 *
 * Invariant that keeps appends in bounds: before a chunk, a buffer holds at most
 * limit = K + slack keys, and a chunk adds at most cc: cap = limit + cc. The slack
 * (clamp(4K, 2,048, 16,384)) makes selections rare once the threshold is good: after c items
 * seen, a chunk brings about K·cc/c new candidates. After a sampled start the selections are
 * spaced several chunks apart (sel_every): there a buffer may overflow, and then the keys
 * beyond cap are dropped and topk_select flags the row for the exact redo. A few launches
 * mid-scan (schedule_cuts: topk_cut_rank) lower every row's threshold to a rank of the items
 * seen so far, a tighter statistical threshold than the sample's, checked like it at the end:
 * on the H200 the scan's cost beyond its GEMM is the stores of the keys it admits.
 *
 * Knobs (ignored under IGNORE_ENV): XCAT_CL_TOPK_CHUNK=items per chunk, XCAT_CL_TOPK_SLACK=keys
 * a buffer may hold beyond K before a selection (tuning); XCAT_CL_TOPK_SAMPLE=0 (no sampled
 * starting thresholds) or =n (about n sampled items), XCAT_CL_TOPK_SAMPLE_MISS=p (the tail
 * probability the sampled rank and the cuts' ranks are chosen for);
 * XCAT_CL_TOPK_SELECT_EVERY=n (after a sampled start, a selection every n chunks);
 * XCAT_CL_TOPK_CUT=0 (no mid-scan cuts) or =f (one exact cut to K after a fraction f of the
 * catalog), XCAT_CL_TOPK_CUT_COST=keys (a cut's price in admitted keys a query, default 90);
 * XCAT_CL_TOPK_HOST_CSR=1 (the exclusion CSR copied to the host and checked there, as before
 * the device-side check); XCAT_CL_TOPK_APPROX=0
 * (exact fp32 scoring only) / 1 (approximate scoring, emulated where there are no tensor
 * cores: testing); XCAT_CL_TOPK_SCORE_ONLY=1 runs the same scoring
 * launches with a threshold nothing passes and no selection: the scoring pass alone, the
 * reference the selection overhead is measured against (results are then all −1 / −inf).
 *
 * Workspace (device, per call): queries are processed in blocks of `mb` rows so that
 * mb·(8·cap + 12) bytes stay within WORKSPACE_MAX; plus the exclusion CSR and banned list as
 * int32 ids. Released before the call returns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_devices.h"
#include "ocl_launch.h"
#include "topk_validate.h"

#define WORKSPACE_MAX ((int64_t)960 << 20) /* the bound: under 1 GB */
#define TOPK_MAX_CUTS 16                     /* mid-scan cuts a layout may schedule */
/* Statistical cuts (schedule_cuts) and the plan-wide sample choice up to this K; above it one
 * exact cut and the sample sized alone, as before session 12. H200, M = 4,096, C = 10^6
 * (docs/benchmarks.md, session 12): faster at every K <= 1,000, but 0.8-4.2 ms slower at
 * K = 4,096 … 16,384 (equal only at d = 64, K = 4,096), where each cut works on buffers of
 * 10^4 keys and more — a cost the plan's fixed price does not model. Between 1,000 and 4,096
 * not measured. */
#define TOPK_STAT_CUT_MAX_K 1024

typedef struct topk_layout {
    gemm_cfg g, exact_g; /* the scoring tile; exact_g: the plain one (fallback) */
    int wg, vec_loads, sel_wg, sort_local;
    int approx;          /* 0 exact scoring; 1 TF32 tensor cores (mma.cl); 2 emulated (tests) */
    int64_t cc, nch, limit, cap, mb; /* chunk j of nch: items j, j + nch, j + 2·nch, … */
    int64_t sample_stride, sample_n, sample_rank; /* sampled starting thresholds (0: none) */
    int64_t sel_every; /* after a sampled start: a selection every sel_every chunks */
    /* after a sampled start: every row cut to cut_k[i] keys after chunk cut_at[i] (a
     * statistical cut where cut_k < K, else an exact one) */
    int ncuts;
    int64_t cut_at[TOPK_MAX_CUTS], cut_k[TOPK_MAX_CUTS];
} topk_layout;

/* XCAT_CL_TOPK_APPROX: -1 unset, 0 off, 1 forced (emulated where there are no tensor cores). */
static int approx_env(const xcat_context *ctx)
{
    const char *v = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_APPROX");
    return v && (v[0] == '0' || v[0] == '1') && !v[1] ? v[0] - '0' : -1;
}

/* The approximate mode and its tile: tensor cores where the device's compiler takes inline
 * PTX (a capability: NVIDIA's advertises cl_nv_compiler_options; whether mma.sync builds is
 * found out by building, see build()) and the 128 × 128 tile fits its local memory. */
static void choose_approx(xcat_context *ctx, topk_layout *L)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    const int want = approx_env(ctx);
    L->approx = 0;
    if (want == 0) return;
    const bool emulate = want == 1 && xcat_ocl_mma_emulate(ctx);
    if (s->mma_state == 0 && !xcat_ocl_has_extension(s->device, "cl_nv_compiler_options"))
        s->mma_state = -1;
    /* mma.cl's local tiles: 2 operands × 2 buffers × 128 rows × 20 floats, + 2 × 128 counts */
    const size_t local = (size_t)2 * 2 * 128 * 20 * 4 + 2 * 128 * 4;
    if ((s->mma_state >= 0 || emulate) && local <= (size_t)s->local_mem &&
        s->max_wg_size >= 256 && s->max_wi_sizes[0] >= 256) {
        L->approx = 1;
        L->g = (gemm_cfg){128, 128, 16, 8, 8};
    } else if (want == 1) {
        L->approx = 2;
    }
}

/* The smallest r with P(Poisson(mean) >= r) <= p; above a mean of 700 (e^-mean underflows
 * there) the bound mean + 6·sqrt(mean) + 16. */
static int64_t poisson_rank(double mean, double p)
{
    if (mean > 700.0) return (int64_t)ceil(mean + 6.0 * sqrt(mean) + 16.0);
    double pmf = exp(-mean), below = 0.0; /* P(X = r), P(X < r) */
    int64_t r = 0;
    while (1.0 - below > p) {
        below += pmf;
        ++r;
        pmf *= mean / (double)r;
    }
    return r;
}

/* The smallest r with P(Binomial(n, f) >= r) <= p (n + 1 if none); where (1 − f)^n underflows,
 * the bound n·f + 6·sqrt(n·f·(1 − f)) + 16. */
static int64_t binomial_rank(int64_t n, double f, double p)
{
    if (f >= 1.0) return n + 1;
    const double log0 = (double)n * log1p(-f), mean = (double)n * f;
    if (log0 < -700.0) return (int64_t)ceil(mean + 6.0 * sqrt(mean * (1.0 - f)) + 16.0);
    double pmf = exp(log0), below = 0.0; /* P(X = r), P(X < r) */
    int64_t r = 0;
    while (1.0 - below > p && r <= n) {
        below += pmf;
        ++r;
        pmf *= (double)(n - r + 1) / (double)r * (f / (1.0 - f));
    }
    return r;
}

/* Cut positions the plan considers: every chunk boundary where there are few, else 64 on a
 * geometric grid (the ranks change fastest early). */
#define TOPK_CUT_CANDIDATES 64

/* Mid-scan cuts after a sampled start. The sampled threshold lets about r·stride keys a query
 * into the buffer over the catalog, several times the K that the final bound does, and every
 * admitted key costs the scan's epilogue a store (on the H200 the scan's one cost beyond its
 * GEMM). After j of the nch interleaved chunks the items seen are an even sample of a fraction
 * f = j/nch of the catalog, holding about Binomial(K, f) of the row's final K best: a threshold
 * at each row's rank-r_f key, r_f = binomial_rank(K, f, miss), keeps out an item of the final
 * top K (approx: of its margin set — the thresholds and the final bound are widened by the
 * same margin, so K and not the margin set's size is what is counted) with probability at
 * most miss. Such a threshold is recorded as the row's statistical threshold and checked at
 * the end: a miss flags the row for the exact redo (topk_cut_rank). It admits about r_f / f
 * keys over the catalog, tightening as f grows: at K = 1,000 and miss 10^-6, 2,420 after one
 * chunk of 62, 1,630 after 4, 1,320 after 12 (the sampled threshold: 15,600 with 511 sampled
 * items). Where r_f >= K the cut is an exact one to K (K / f; topk_select). A cut is a launch
 * over the rows, priced at `price` admitted keys a query: the plan (at most TOPK_MAX_CUTS cuts)
 * minimises keys admitted + price per cut. H200, M = 4,096, C = 10^6, d = 64 (session 13): a
 * cut 29–37 µs of device time, an admitted key a query ~0.38 µs of scan time, so 90 keys (the
 * plans there are the same for any price of 60 … 120).
 * Above TOPK_STAT_CUT_MAX_K one exact cut to K instead, where the K-th key seen starts to
 * beat the sampled threshold: f1 = 1.3·K' / (r·stride) (session 11; none at K >= 10,000 and
 * C = 10^6). XCAT_CL_TOPK_CUT=0: no cuts; =f: one exact cut to K after a fraction f of the
 * catalog (testing). Returns the keys a query is expected to admit over the scan. */
static double schedule_cuts(const xcat_context *ctx, const xcat_topk_call *c, double kk,
                            double miss, double price, topk_layout *L)
{
    const double rate0 = (double)L->sample_rank * (double)L->sample_stride;
    const double nch = (double)L->nch;
    L->ncuts = 0;
    const char *cv = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_CUT");
    if (cv || c->k > TOPK_STAT_CUT_MAX_K) { /* one exact cut to K at f1, or none */
        const double f1 = cv ? atof(cv) : 1.3 * kk / rate0;
        const int64_t at = f1 > 0.0 ? (int64_t)ceil(f1 * nch) : 0;
        if (at < 1 || at >= L->nch) return rate0;
        L->cut_at[0] = at, L->cut_k[0] = c->k, L->ncuts = 1;
        const double f = (double)at / nch, after = (double)c->k / f;
        return rate0 * f + (after < rate0 ? after : rate0) * (1.0 - f);
    }
    /* The cheapest plan, keys admitted + price per cut, by dynamic programming over the
     * candidate positions (a greedy walk that cut wherever a cut paid for itself took 9 cuts
     * at K = 1,000 where 3 cost less in all). Position 0 is the sample's threshold. */
    enum { N = TOPK_CUT_CANDIDATES + 1, NC = TOPK_MAX_CUTS + 1 };
    int64_t pos[N], rank[N];
    double f[N], rate[N];
    int n = 1;
    pos[0] = 0, f[0] = 0.0, rate[0] = rate0, rank[0] = L->sample_rank;
    const int64_t last = L->nch - 1;
    for (int t = 0; t < TOPK_CUT_CANDIDATES && last >= 1; ++t) {
        const double g = t / (TOPK_CUT_CANDIDATES - 1.0); /* 0 … 1 */
        const int64_t j =
            last <= TOPK_CUT_CANDIDATES ? t + 1 : (int64_t)llround(pow((double)last, g));
        if (j > last) break;
        if (j <= pos[n - 1]) continue;
        pos[n] = j, f[n] = (double)j / nch;
        rank[n] = binomial_rank(c->k, f[n], miss);
        if (rank[n] > c->k) rank[n] = c->k; /* an exact cut */
        rate[n] = (double)rank[n] / f[n];
        ++n;
    }
    /* best[m][i]: the least keys admitted before f[i] plus price·m, with m cuts, the last at
     * candidate i (m = 0: i = 0, the sample); from[m][i]: the cut before it */
    double best[NC][N];
    int from[NC][N];
    for (int m = 0; m < NC; ++m)
        for (int i = 0; i < n; ++i) best[m][i] = INFINITY, from[m][i] = -1;
    best[0][0] = 0.0;
    double total = rate0; /* no cut */
    int end_m = 0, end_i = 0;
    for (int m = 1; m < NC; ++m)
        for (int i = 1; i < n; ++i) {
            for (int p = 0; p < i; ++p) {
                if (!(best[m - 1][p] < INFINITY) || rate[i] >= rate[p]) continue;
                const double v = best[m - 1][p] + rate[p] * (f[i] - f[p]) + price;
                if (v < best[m][i]) best[m][i] = v, from[m][i] = p;
            }
            const double v = best[m][i] + rate[i] * (1.0 - f[i]);
            if (v < total) total = v, end_m = m, end_i = i;
        }
    L->ncuts = end_m;
    for (int m = end_m, i = end_i; m > 0; i = from[m][i], --m)
        L->cut_at[m - 1] = pos[i], L->cut_k[m - 1] = rank[i];
    return total - price * (double)end_m;
}

static xcat_status make_layout(xcat_context *ctx, const xcat_topk_call *c, topk_layout *L)
{
    const xcat_ocl_state *s = xcat_ocl(ctx);
    memset(L, 0, sizeof *L);
    xcat_status st = xcat_ocl_gemm_choose(ctx, c->d <= 256, &L->g, &L->vec_loads);
    if (st) return st;
    L->exact_g = L->g;
    choose_approx(ctx, L);
    L->wg = xcat_ocl_gemm_wg(&L->g);
    const size_t wmax = s->max_wg_size < s->max_wi_sizes[0] ? s->max_wg_size : s->max_wi_sizes[0];
    L->sel_wg = pow2_at_most(wmax, s->info.is_gpu ? 256 : 64);
    /* local sort: keys + 256 histogram words + the group's reduction + EX_LOCAL (1024) ids of
     * exclusion lists within local memory */
    const size_t fixed = 256 * 4 + 16 + (size_t)L->sel_wg * 8 + 4096 + 64;
    L->sort_local = 64;
    while (L->sort_local < 4096 && fixed + (size_t)L->sort_local * 2 * 8 <= (size_t)s->local_mem)
        L->sort_local *= 2;
    /* Chunk: enough GEMM tiles per launch to fill the device, few launches overall. On a GPU
     * about as many tiles per launch as 4,096 queries × 8,192 items give (the tuned case), up
     * to 32,768 items for fewer queries: H200, M = 1,280, C = 10^6, K = 256 (SCE's item
     * selection at N = 409,600), chunks of 16,384 instead of 8,192 took a whole SCE step from
     * 92.8 to 81.4 ms at d = 256 and from 49.3 to 44.6 ms at d = 64. The tensor-core tiles
     * score a chunk twice as fast, so per-chunk costs weigh more: twice the items per chunk
     * (H200, M = 4,096, C = 10^6, 50 exclusions, chunks of 8,192 / 16,384 / 32,768 items:
     * d = 128, K = 10: 21.1 / 19.9 / 22.4 ms, K = 1,000: 26.4 / 24.7 / 28.3 ms). */
    int64_t cc = 4096;
    if (s->info.is_gpu) {
        const int64_t tiles = (int64_t)4096 * 8192 * (L->approx == 1 ? 2 : 1);
        cc = 8192;
        while (cc < 32768 && c->m * 2 * cc <= tiles) cc *= 2;
    }
    if (!ctx->ignore_env) { /* tuning: XCAT_CL_TOPK_CHUNK=items per chunk */
        const char *v = getenv("XCAT_CL_TOPK_CHUNK");
        const long long e = v ? atoll(v) : 0;
        if (e >= L->g.bn && e <= (1 << 24)) cc = e;
    }
    cc -= cc % L->g.bn;
    if (cc > c->c) cc = c->c;
    L->cc = cc;
    /* The chunks interleave: chunk j holds items j, j + nch, j + 2·nch, … (the kernel's item
     * stride), so that the items seen after any number of chunks are an even sample of the
     * catalog, whatever its order — what the statistical cuts below rely on. Each item row is
     * still read whole; at most one partly filled tile per chunk (~0.8 % of the tiles at
     * C = 10^6). Replaced XCAT_CL_TOPK_FIRST (a shorter first chunk, measured within noise). */
    L->nch = cdiv(c->c, cc);
    /* Slack: keys a buffer may hold beyond K before a selection. Fewer selections against
     * more appends and memory; H100, M = 4,096, C = 10^6, d = 128 (K = 100 / 1,000, no / 50
     * exclusions): max(K, 1024) 36.6 / 40.5 / 39.8 / 44.2 ms, 2,048 36.4 / 39.8 / 39.2 / 43.0,
     * 4,096 37.4 / 39.1 / 40.4 / 42.2, 8,192 42.0 / 43.3 / 45.1 / 46.6. */
    int64_t slack = 4 * c->k < 16384 ? 4 * c->k : 16384;
    if (slack < 2048) slack = 2048;
    if (!ctx->ignore_env) { /* tuning: XCAT_CL_TOPK_SLACK=keys beyond K before a selection */
        const char *v = getenv("XCAT_CL_TOPK_SLACK");
        const long long e = v ? atoll(v) : 0;
        if (e >= 1 && e <= (1 << 24)) slack = e;
    }
    L->limit = c->k + slack;
    L->cap = L->limit + cc; /* a chunk holds at most cdiv(C, nch) <= cc items */
    /* Sampled starting thresholds (as on the CPU, src/cpu/cpu_topk.c): a query that starts with
     * no threshold takes in a whole first chunk and then about K·ln(C/chunk) more keys, cut
     * every few chunks. Instead every stride-th item (ns = C/stride items) is scored first, with
     * the scan's own kernel, and the key at sampled rank r becomes the starting threshold:
     * about r·stride keys enter over the scan. Exact: a query left with fewer than K keys, or
     * whose final bound is not inside its sampled threshold, is redone without one
     * (topk_select, must_fill; redo_flagged) — a scan of its own, as dear as a GEMM row tile
     * of queries — so r is chosen for that to be rare: the sampled items above a query's
     * final bound number about Poisson(e), e = ns·K'/C, where K' = 1.25·K + 16 also covers the
     * keys the approximate path keeps within its margin of the K-th (about 8 % of K at
     * K = 4,096 on the H200's TF32 scores); r is the smallest with P(Poisson(e) >= r) <= 1e-4:
     * a tail that admits fewer keys, at the price of a redo in about one call of three at
     * M = 4,096. H200, M = 4,096, C = 10^6, d = 64 / 128, K = 10 and 1,000, no / 50 exclusions,
     * one run: 1e-4 faster than 1e-7 in all eight cases (K = 1,000: 0.3-0.6 ms of 16-22), 1e-3
     * slower again at K = 1,000 (redos). That was before the statistical cuts; up to
     * TOPK_STAT_CUT_MAX_K the sample and the cuts now take their ranks from Binomial(K, f)
     * (schedule_cuts: the margin widens the thresholds and the final bound alike, so K' is not
     * needed there) with tail 1e-6: each of a row's 3–4 thresholds may flag it, and a miss
     * costs a row tile's exact redo (an estimated ~0.6 ms on the H200 at C = 10^6: 3·C to 7·C
     * admitted keys' worth) — at that price 1e-6 gives the cheapest plan of 1e-5 … 1e-8 at
     * K = 10, 100 and 1,000 (a model: ~1,610 keys a query at K = 1,000 and ~0.01 redone rows
     * a call at M = 4,096).
     * (With the CPU's e + 4·sqrt(e) + 8 and K' = K one query of 4,096 on the H200 fell short
     * at K = 4,096 and the redo doubled the call.) The sample size balances its own cost
     * (scored, every key appended, cut to r: per sampled key) against the keys it lets in
     * (appended in the scan, cut at the end: per admitted key, 2.3 times as dear in the H200's
     * kernel profile): ns among 512 … chunk minimising ns + 2.3·(admitted + price·cuts), with
     * the keys admitted and the cuts of schedule_cuts' plan for that sample. Since the first
     * cut (after one chunk) replaces the sampled threshold, the sample only serves the first
     * chunk, and the smallest sample wins at C = 10^6 (512 items, rank 3 at K = 10, 8 at
     * K = 1,000; before the cuts, 2,044 and 4,081 items). On the H200
     * (M = 4,096, C = 10^6, d = 128, K = 10 / 1,000) the sample of a whole chunk (16,129
     * items, rank e + 5·sqrt(e) + 16) cost 2.35 ms a call (scoring 1.0, its selection 1.35)
     * of a 20–23 ms call. Catalogs of at least 4 chunks; XCAT_CL_TOPK_SAMPLE=0 turns it off,
     * =n asks for about n sampled items (tuning). */
    const char *sv = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_SAMPLE");
    const long long want_ns = sv ? atoll(sv) : -1;
    /* tuning: XCAT_CL_TOPK_SAMPLE_MISS=p, the tail probability r (and the ranks of the
     * statistical cuts, schedule_cuts) are chosen for (default 1e-6 up to
     * TOPK_STAT_CUT_MAX_K, else 1e-4) */
    const bool stat = c->k <= TOPK_STAT_CUT_MAX_K; /* else: the sample sized alone */
    const char *mv = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_SAMPLE_MISS");
    const double miss = mv && atof(mv) > 0.0 && atof(mv) < 0.5 ? atof(mv) : stat ? 1e-6 : 1e-4;
    const double kk = 1.25 * (double)c->k + 16.0; /* K' above */
    /* tuning: XCAT_CL_TOPK_CUT_COST=keys, a mid-scan cut's price in admitted keys a query */
    const char *pv = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_CUT_COST");
    const double price = pv && atof(pv) >= 0.0 ? atof(pv) : 90.0;
    double best = INFINITY;
    for (int64_t try_ns = stat ? 512 : 1024; want_ns != 0 && c->c >= 4 * cc && try_ns <= cc;
         try_ns *= 2) {
        topk_layout T = *L;
        T.sample_stride = cdiv(c->c, want_ns > 0 && want_ns < cc ? want_ns : try_ns);
        T.sample_n = c->c / T.sample_stride;
        T.sample_rank = stat ? binomial_rank(c->k, (double)T.sample_n / (double)c->c, miss)
                             : poisson_rank((double)T.sample_n * kk / (double)c->c, miss);
        const double admitted = schedule_cuts(ctx, c, kk, miss, price, &T);
        const double cost = (double)T.sample_n +
                            2.3 * (stat ? admitted + price * (double)T.ncuts
                                        : (double)T.sample_rank * (double)T.sample_stride);
        if (T.sample_rank < T.sample_n / 2 && cost < best) {
            best = cost;
            *L = T;
        }
        if (want_ns > 0) break; /* the size asked for: one candidate */
    }
    /* Selections during a scan that started from sampled thresholds: about r·stride keys enter
     * a buffer over the whole catalog, r·stride·cc/C a chunk, so most per-chunk selections
     * would find nothing to do (61 launches, 0.7 ms of a call on the H200). One every
     * sel_every chunks instead, as many as leave a chunk's room (cap − limit = cc) for
     * 1 + 8/sqrt(r) times the expected keys (the count above the r-th sampled key varies as
     * a Gamma(r)); a buffer that still overflows loses keys and is flagged (redone exactly).
     * XCAT_CL_TOPK_SELECT_EVERY=n sets it (tuning). */
    L->sel_every = 1;
    if (L->sample_n) {
        const double f = 1.0 + 8.0 / sqrt((double)L->sample_rank);
        const double every = (double)c->c / (f * (double)L->sample_rank * (double)L->sample_stride);
        L->sel_every = every < 1.0 ? 1 : every > 1e6 ? 1000000 : (int64_t)every;
        const char *v = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_SELECT_EVERY");
        const long long e = v ? atoll(v) : 0;
        if (e >= 1 && e <= (1 << 20)) L->sel_every = e;
    }
    int64_t budget = WORKSPACE_MAX;
    if (s->info.max_alloc_bytes > 0 && s->info.max_alloc_bytes < budget)
        budget = s->info.max_alloc_bytes;
    if (s->info.global_mem_bytes > 0 && s->info.global_mem_bytes / 4 < budget)
        budget = s->info.global_mem_bytes / 4;
    int64_t mb = budget / (L->cap * 8);
    if (mb >= L->g.bm) mb -= mb % L->g.bm;
    if (mb < 1)
        return xcat_error(ctx, XCAT_ERROR_DEVICE_OUT_OF_MEMORY, "top-K: one query's candidate "
                          "buffer (%lld keys) exceeds the device's allocation limit",
                          (long long)L->cap);
    if (mb > c->m) mb = c->m;
    L->mb = mb;
    if (c->c > INT32_MAX || c->m > INT32_MAX || c->d > INT32_MAX || c->k > UINT32_MAX / 2)
        return xcat_error(ctx, XCAT_ERROR_UNSUPPORTED, "OpenCL top-K: queries, items, dim and k "
                          "must be < 2^31");
    return XCAT_OK;
}

typedef struct topk_bufs {
    cl_mem cand, cnt, thr, ex_off, ex, banned, targets, dummy;
    cl_mem marg, gmax;        /* approximate mode: per-row margins, the catalog's maxima */
    cl_mem flags, sthr;       /* rows to redo exactly; sampled starting thresholds */
    bool borrowed_ex_off, borrowed_ex; /* the caller's own cl_mem: not released here */
    int ex_mode;                       /* has_ex of topk.cl: 1 int32 ids, 2 int64 ids */
} topk_bufs;

static void bufs_release(topk_bufs *b)
{
    if (b->borrowed_ex_off) b->ex_off = NULL;
    if (b->borrowed_ex) b->ex = NULL;
    cl_mem *ms[] = {&b->cand, &b->cnt,     &b->thr,   &b->ex_off, &b->ex,   &b->banned,
                    &b->targets, &b->dummy, &b->marg, &b->flags, &b->gmax, &b->sthr};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (*ms[i]) clReleaseMemObject(*ms[i]);
}

/* The caller's vector tensor usable in place: contiguous and at buffer offset 0. */
static bool usable_in_place(const xcat_tensor *t)
{
    const bool contiguous = t->cols == 1 ? (t->stride == 1 || t->rows == 1) : t->rows == 1;
    return contiguous && t->offset == 0;
}

/* A device buffer holding `n` values of `v` converted to int32 (ids) or copied as int64. */
static xcat_status upload(xcat_context *ctx, const int64_t *v, int64_t n, bool as_i32,
                          cl_mem *out)
{
    const size_t esz = as_i32 ? 4 : 8;
    const size_t bytes = (size_t)(n > 0 ? n : 1) * esz;
    xcat_status st = xcat_ocl_buffer(ctx, bytes, false, out);
    if (st || n == 0) return st;
    const void *h = v;
    int32_t *tmp = NULL;
    if (as_i32) {
        tmp = xcat_host_alloc(ctx, bytes, 64);
        if (!tmp) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "top-K: staging ids");
        for (int64_t i = 0; i < n; ++i) tmp[i] = (int32_t)v[i];
        h = tmp;
    }
    cl_int err = clEnqueueWriteBuffer(xcat_ocl(ctx)->queue, *out, CL_TRUE, 0, bytes, h, 0, NULL,
                                      NULL);
    xcat_host_free(ctx, tmp);
    return err == CL_SUCCESS ? XCAT_OK : xcat_ocl_error(ctx, err, "uploading top-K lists");
}

static xcat_status build_one(xcat_context *ctx, const topk_layout *L, cl_program *prog)
{
    char gp[256], prelude[640];
    xcat_ocl_gemm_prelude(&L->g, L->vec_loads, gp, sizeof gp);
    char mode[64] = "";
    if (L->approx == 2)
        snprintf(mode, sizeof mode, "#define TOPK_PERTURB 1\n");
    else if (L->approx == 1)
        snprintf(mode, sizeof mode, "#define GEMM_MMA 1\n#define MMA_EMULATE %d\n",
                 xcat_ocl_mma_emulate(ctx));
    snprintf(prelude, sizeof prelude,
             "%s#define SEL_WG %d\n#define SORT_LOCAL %d\n#define TOPK_EARLY_EXIT %d\n%s", gp,
             L->sel_wg, L->sort_local, xcat_ocl(ctx)->info.is_gpu ? 1 : 0, mode);
    static const char *const sources[] = {"rng.cl", "gemm.cl", "mma.cl", "topk.cl", NULL};
    return xcat_ocl_program(ctx, prelude, sources, "-cl-std=CL1.2", prog);
}

/* The program; when the tensor-core build fails here (no sm_80, or a compiler that refuses
 * the asm), the device is marked and the exact program is built instead. */
static xcat_status build(xcat_context *ctx, topk_layout *L, cl_program *prog)
{
    xcat_ocl_state *s = xcat_ocl(ctx);
    xcat_status st = build_one(ctx, L, prog);
    if (st == XCAT_ERROR_BUILD_FAILED && L->approx == 1 && !xcat_ocl_mma_emulate(ctx)) {
        s->mma_state = -1;
        L->approx = approx_env(ctx) == 1 ? 2 : 0;
        L->g = L->exact_g;
        L->wg = xcat_ocl_gemm_wg(&L->g);
        st = build_one(ctx, L, prog);
        if (!st) ctx->last_error[0] = '\0'; /* the failed build's log was not the call's fault */
    } else if (!st && L->approx == 1) {
        s->mma_state = 1;
    }
    return st;
}

bool xcat_ocl_topk_device_csr(const xcat_context *ctx, const xcat_topk_call *c)
{
    const char *v = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_HOST_CSR");
    if (v && v[0] == '1') return false; /* tuning: the API layer's host copy and check */
    return c->exclude_offsets->dtype == XCAT_DTYPE_I64 && usable_in_place(c->exclude_offsets) &&
           usable_in_place(c->exclude_items);
}

/* The caller's CSR, read in place, checked by topk_check_csr before any kernel uses it: one
 * 4-byte read back instead of a copy of the lists to the host (M·8·(n + 1) bytes) and a host
 * loop. H200, M = 4,096, 50 ids each: within run-to-run noise (docs/benchmarks.md, run 41);
 * the point is that nothing in the call grows with the lists or waits on the host. A bad CSR
 * is then read to the host for the message. */
static xcat_status check_csr_on_device(xcat_context *ctx, cl_program prog, int sel_wg,
                                       const xcat_topk_call *c, const topk_bufs *b)
{
    cl_kernel k = NULL;
    cl_mem bad = NULL;
    cl_int first = (cl_int)c->m;
    xcat_status st = xcat_ocl_kernel(ctx, prog, "topk_check_csr", &k);
    if (!st) st = xcat_ocl_buffer(ctx, 4, false, &bad);
    cl_command_queue q = xcat_ocl(ctx)->queue;
    if (!st) {
        cl_int err = clEnqueueWriteBuffer(q, bad, CL_TRUE, 0, 4, &first, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = xcat_ocl_error(ctx, err, "top-K: checking the exclusions");
    }
    if (!st) {
        args a = {.k = k};
        A_INT(&a, c->m);
        A_INT(&a, c->c);
        A_LONG(&a, c->nnz);
        A_MEM(&a, b->ex_off);
        A_MEM(&a, b->ex);
        A_INT(&a, b->ex_mode);
        A_MEM(&a, bad);
        const size_t lw = (size_t)sel_wg, gw = (size_t)cdiv(c->m, sel_wg) * lw;
        st = launch(ctx, &a, 1, &gw, &lw, "enqueueing topk_check_csr");
    }
    if (!st) {
        cl_int err = clEnqueueReadBuffer(q, bad, CL_TRUE, 0, 4, &first, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = xcat_ocl_error(ctx, err, "top-K: checking the exclusions");
    }
    if (!st && first < c->m) {
        st = xcat_topk_check_csr_on_host(ctx, c);
        if (!st)
            st = xcat_error(ctx, XCAT_ERROR_INTERNAL, "top-K: the device found a problem in "
                            "the exclusion lists of query %d that the host check does not",
                            (int)first);
    }
    if (k) clReleaseKernel(k);
    if (bad) clReleaseMemObject(bad);
    return st;
}

/* The exclusion CSR and banned list on the device (dummies when absent). */
static xcat_status upload_lists(xcat_context *ctx, cl_program prog, int sel_wg,
                                const xcat_topk_call *c, topk_bufs *b)
{
    xcat_status st = xcat_ocl_buffer(ctx, 16, true, &b->dummy);
    if (st || !c->has_exclusions) goto banned;
    /* The kernels read the caller's tensors where they can (no copy; checked here first when
     * the API layer left that to us: csr_on_device), else an int32 upload of the host copy
     * the API layer checked. */
    b->ex_mode = 1;
    if (c->exclude_offsets->dtype == XCAT_DTYPE_I64 && usable_in_place(c->exclude_offsets)) {
        b->ex_off = xcat_ocl_mem(c->exclude_offsets);
        b->borrowed_ex_off = true;
    } else {
        st = upload(ctx, c->h_offsets, c->m + 1, false, &b->ex_off);
    }
    if (!st && usable_in_place(c->exclude_items)) {
        b->ex = xcat_ocl_mem(c->exclude_items);
        b->borrowed_ex = true;
        b->ex_mode = c->exclude_items->dtype == XCAT_DTYPE_I64 ? 2 : 1;
    } else if (!st) {
        st = upload(ctx, c->h_exclude, c->h_offsets[c->m], true, &b->ex);
    }
    if (!st && c->csr_on_device) st = check_csr_on_device(ctx, prog, sel_wg, c, b);
banned:
    if (!st && c->num_banned) st = upload(ctx, c->h_banned, c->num_banned, true, &b->banned);
    return st;
}

#define LIST_ARGS(a, c, b)                                                                   \
    do {                                                                                     \
        A_MEM(a, (c)->has_exclusions ? (b)->ex_off : (b)->dummy);                            \
        A_MEM(a, (c)->has_exclusions ? (b)->ex : (b)->dummy);                                \
        A_INT(a, (c)->has_exclusions ? (b)->ex_mode : 0);                                    \
        A_MEM(a, (c)->num_banned ? (b)->banned : (b)->dummy);                                \
        A_INT(a, (c)->num_banned);                                                           \
    } while (0)

typedef struct topk_kernels {
    cl_kernel score, select, sort, merge, norms, rescore, rescore4, cut;
} topk_kernels;

/* topk_select over the block's mb queries: those holding more than `limit` keys are cut to k
 * (approx: to their margin set, at most keep_max keys, else flagged). sthr_mode (topk.cl): 0,
 * or 1 to check the rows' statistical thresholds (the final selection). */
static xcat_status launch_select(xcat_context *ctx, const topk_kernels *kn, const topk_layout *L,
                                 const xcat_topk_call *c, const topk_bufs *b, int64_t q0,
                                 int64_t mb, cl_uint k, cl_uint limit, cl_uint keep_max,
                                 int approx, int sthr_mode, const char *label)
{
    args a = {.k = kn->select, .label = label};
    A_MEM(&a, b->cand);
    A_LONG(&a, L->cap);
    A_MEM(&a, b->cnt);
    A_MEM(&a, b->thr);
    A_UINT(&a, k);
    A_UINT(&a, limit);
    A_UINT(&a, keep_max);
    A_LONG(&a, q0);
    LIST_ARGS(&a, c, b);
    A_INT(&a, approx != 0);
    A_MEM(&a, approx ? b->marg : b->dummy);
    A_MEM(&a, b->flags);
    A_INT(&a, sthr_mode);
    A_MEM(&a, b->sthr);
    const size_t sl = (size_t)L->sel_wg, sg = (size_t)mb * sl;
    return launch(ctx, &a, 1, &sg, &sl, "enqueueing topk_select");
}

/* topk_cut_rank over the block's mb queries: each row's threshold tightened to (an upper bound
 * of) its k-th best valid key, recorded as its statistical threshold. */
static xcat_status launch_cut(xcat_context *ctx, const topk_kernels *kn, const topk_layout *L,
                              const xcat_topk_call *c, const topk_bufs *b, int64_t q0,
                              int64_t mb, cl_uint k, int approx, const char *label)
{
    args a = {.k = kn->cut, .label = label};
    A_MEM(&a, b->cand);
    A_LONG(&a, L->cap);
    A_MEM(&a, b->cnt);
    A_MEM(&a, b->thr);
    A_MEM(&a, b->sthr);
    A_UINT(&a, k);
    A_LONG(&a, q0);
    LIST_ARGS(&a, c, b);
    A_INT(&a, approx != 0);
    A_MEM(&a, approx ? b->marg : b->dummy);
    const size_t sl = (size_t)L->sel_wg, sg = (size_t)mb * sl;
    return launch(ctx, &a, 1, &sg, &sl, "enqueueing topk_cut_rank");
}

/* topk_norms over `rows` rows of a matrix (mode 0 items, 1 bias, 2 queries → margins). */
static xcat_status launch_norms(xcat_context *ctx, const topk_kernels *kn, const topk_layout *L,
                                const topk_bufs *b, int64_t rows, int64_t d, mat X, int mode)
{
    args a = {.k = kn->norms};
    A_INT(&a, rows);
    A_INT(&a, d);
    A_MEM(&a, X.mem);
    A_ULONG(&a, X.off);
    A_LONG(&a, X.ld);
    A_INT(&a, mode);
    A_MEM(&a, b->gmax);
    A_MEM(&a, b->marg);
    const int per_group = L->sel_wg < 8 ? 1 : L->sel_wg / 8; /* topk.cl's NORM_LANES */
    const size_t lw = (size_t)L->sel_wg, gw = (size_t)cdiv(rows, per_group) * lw;
    return launch(ctx, &a, 1, &gw, &lw, "enqueueing topk_norms");
}

/* One launch of the scoring kernel: queries of the block × nc items, every stride-th from c0
 * (a chunk of the scan: stride nch; the sample: sample_stride). */
static xcat_status launch_score(xcat_context *ctx, const topk_kernels *kn, const topk_layout *L,
                                const xcat_topk_call *c, const topk_bufs *b, mat Ub, int64_t mb,
                                int64_t c0, int64_t nc, int64_t stride, int approx,
                                const char *label)
{
    const mat E = tensor_mat(c->items);
    args a = {.k = kn->score, .label = label};
    A_INT(&a, mb);
    A_INT(&a, nc);
    A_INT(&a, c->d);
    A_MEM(&a, Ub.mem);
    A_ULONG(&a, Ub.off);
    A_LONG(&a, Ub.ld);
    A_MEM(&a, E.mem);
    A_ULONG(&a, E.off + (uint64_t)c0 * (uint64_t)E.ld);
    A_LONG(&a, E.ld * stride);
    A_MEM(&a, c->bias ? xcat_ocl_mem(c->bias) : b->dummy);
    A_ULONG(&a, c->bias ? elem_off(c->bias) + (uint64_t)c0 : 0);
    A_INT(&a, c->bias != NULL);
    A_INT(&a, c0);
    A_INT(&a, stride);
    A_MEM(&a, b->cand);
    A_LONG(&a, L->cap);
    A_MEM(&a, b->cnt);
    A_MEM(&a, b->thr);
    A_MEM(&a, approx ? b->marg : b->dummy);
    const size_t lw = (size_t)L->wg;
    const size_t gw = (size_t)(cdiv(mb, L->g.bm) * cdiv(nc, L->g.bn)) * lw;
    return launch(ctx, &a, 1, &gw, &lw, "enqueueing a top-K scoring kernel");
}

/* One block of mb queries from q0: the scan over the catalog, the final selection, the
 * sorted rows written out. approx: scores from the approximate kernel, kept with each row's
 * margin, recomputed exactly at the end; rows that could not keep their margin set are
 * flagged in b->flags (the caller redoes them exactly).
 * sample: the scan starts from sampled thresholds; rows they served badly are flagged too. */
static xcat_status run_block(xcat_context *ctx, const topk_kernels *kn, const topk_layout *L,
                             const xcat_topk_call *c, const topk_bufs *b, int64_t q0,
                             int64_t mb, int approx, bool sample, bool score_only,
                             xcat_tensor *indices, xcat_tensor *scores)
{
    cl_command_queue q = xcat_ocl(ctx)->queue;
    const mat U = tensor_mat(c->queries), E = tensor_mat(c->items);
    const mat Ub = {U.mem, U.off + (uint64_t)q0 * (uint64_t)U.ld, U.ld};
    const cl_uint zero = 0;
    const cl_ulong none = score_only ? 0 : ~(cl_ulong)0;
    cl_int err = clEnqueueFillBuffer(q, b->cnt, &zero, 4, 0, (size_t)mb * 4, 0, NULL, NULL);
    if (err == CL_SUCCESS)
        err = clEnqueueFillBuffer(q, b->thr, &none, 8, 0, (size_t)mb * 8, 0, NULL, NULL);
    if (err == CL_SUCCESS)
        err = clEnqueueFillBuffer(q, b->flags, &zero, 4, 0, (size_t)mb * 4, 0, NULL, NULL);
    if (err == CL_SUCCESS && sample)
        err = clEnqueueFillBuffer(q, b->sthr, &none, 8, 0, (size_t)mb * 8, 0, NULL, NULL);
    if (err != CL_SUCCESS) return xcat_ocl_error(ctx, err, "clearing top-K state");
    xcat_status st = XCAT_OK;
    if (approx) st = launch_norms(ctx, kn, L, b, mb, c->d, Ub, 2);
    /* Sampled starting thresholds: a strided sample of the catalog scored and the rank of its
     * sample_rank-th key (topk_cut_rank: as the mid-scan cuts, no compaction — the sample's
     * keys are dropped, the scan meets those items again) becomes each query's threshold and
     * statistical threshold before the scan. */
    if (!st && sample) {
        st = launch_score(ctx, kn, L, c, b, Ub, mb, 0, L->sample_n, L->sample_stride, approx,
                          "topk_score/sample");
        if (!st)
            st = launch_cut(ctx, kn, L, c, b, q0, mb, (cl_uint)L->sample_rank, approx,
                            "topk_cut_rank/sample");
        if (!st) {
            err = clEnqueueFillBuffer(q, b->cnt, &zero, 4, 0, (size_t)mb * 4, 0, NULL, NULL);
            if (err != CL_SUCCESS) st = xcat_ocl_error(ctx, err, "top-K sampled thresholds");
        }
    }
    /* after a sampled start, a selection only every sel_every chunks, and the cuts that
     * schedule_cuts placed (every row, whatever its count) */
    const int64_t every = sample ? L->sel_every : 1;
    int cut = 0;
    for (int64_t j = 0; !st && j < L->nch; ++j) {
        st = launch_score(ctx, kn, L, c, b, Ub, mb, j, cdiv(c->c - j, L->nch), L->nch, approx,
                          NULL);
        if (st || score_only || j + 1 == L->nch) continue;
        const bool cuts = sample && cut < L->ncuts && L->cut_at[cut] == j + 1;
        const int64_t k = cuts ? L->cut_k[cut++] : c->k;
        /* a statistical cut: the threshold only, no compaction; an exact one: topk_select */
        if (cuts && k < c->k)
            st = launch_cut(ctx, kn, L, c, b, q0, mb, (cl_uint)k, approx, NULL);
        const bool exact_cut = cuts && k == c->k;
        if (st || (!exact_cut && (j + 1) % every != 0)) continue;
        st = launch_select(ctx, kn, L, c, b, q0, mb, (cl_uint)c->k,
                           exact_cut ? (cl_uint)c->k : (cl_uint)L->limit, (cl_uint)L->limit,
                           approx, 0, exact_cut ? "topk_select/cut" : "topk_select/scan");
    }
    /* the end: every row purged and cut (limit 0); approx: to its margin set, rescored
     * exactly, cut to k; then sorted in blocks and merged */
    if (!st)
        st = launch_select(ctx, kn, L, c, b, q0, mb, (cl_uint)c->k, 0, 0, approx,
                           sample ? 1 : 0, "topk_select/final");
    if (!st && approx) {
        /* float4 reads of E's rows where they are 16-byte aligned and whole quads */
        const bool v4 = E.off % 4 == 0 && E.ld % 4 == 0 && c->d % 4 == 0;
        args a = {.k = v4 ? kn->rescore4 : kn->rescore};
        A_MEM(&a, b->cand);
        A_LONG(&a, L->cap);
        A_MEM(&a, b->cnt);
        A_INT(&a, c->d);
        A_MEM(&a, Ub.mem);
        A_ULONG(&a, Ub.off);
        A_LONG(&a, Ub.ld);
        A_MEM(&a, E.mem);
        A_ULONG(&a, E.off);
        A_LONG(&a, E.ld);
        A_MEM(&a, c->bias ? xcat_ocl_mem(c->bias) : b->dummy);
        A_ULONG(&a, c->bias ? elem_off(c->bias) : 0);
        A_INT(&a, c->bias != NULL);
        const size_t sl = (size_t)L->sel_wg, sg = (size_t)mb * sl;
        st = launch(ctx, &a, 1, &sg, &sl, "enqueueing topk_rescore");
        if (!st)
            st = launch_select(ctx, kn, L, c, b, q0, mb, (cl_uint)c->k, 0, 0, 0, 0,
                               "topk_select/rescored");
    }
    const size_t sl = (size_t)L->sel_wg;
    const int64_t nblk = cdiv(c->k, L->sort_local);
    for (int pass = 0; pass < 2 && !st; ++pass) {
        args a = {.k = pass ? kn->merge : kn->sort};
        A_MEM(&a, b->cand);
        A_LONG(&a, L->cap);
        A_MEM(&a, b->cnt);
        A_UINT(&a, c->k);
        if (!pass) A_UINT(&a, nblk);
        A_MEM(&a, xcat_ocl_mem(indices));
        A_ULONG(&a, elem_off(indices));
        A_LONG(&a, indices->stride);
        A_INT(&a, indices->dtype == XCAT_DTYPE_I64);
        A_MEM(&a, scores ? xcat_ocl_mem(scores) : b->dummy);
        A_ULONG(&a, scores ? elem_off(scores) : 0);
        A_LONG(&a, scores ? scores->stride : 0);
        A_INT(&a, scores != NULL);
        A_LONG(&a, q0);
        const size_t g2 = (size_t)mb * (pass ? 1 : (size_t)nblk) * sl;
        st = launch(ctx, &a, 1, &g2, &sl, pass ? "enqueueing topk_merge"
                                               : "enqueueing topk_sort_blocks");
    }
    return st;
}

/* The block's flagged rows (approximate scores that could not be bounded: NaN / inf inputs, or
 * more keys within the margin than a buffer holds, e.g. masses of ties; or a sampled threshold
 * that kept out too much) again, exact and without a sampled start. Rows are independent, so
 * each run of consecutive flagged rows is a block of its own — unless those runs would cost
 * more GEMM row tiles than the whole block, which is then redone at once. */
/* The next run [*i, *j) of consecutive flagged rows at or after *i; false when none is left. */
static bool next_flagged_run(const uint32_t *f, int64_t n, int64_t *i, int64_t *j)
{
    while (*i < n && !f[*i]) ++*i;
    for (*j = *i; *j < n && f[*j]; ++*j) {}
    return *i < n;
}

static xcat_status redo_flagged(xcat_context *ctx, const topk_kernels *exact, const topk_layout *L,
                                const xcat_topk_call *c, const topk_bufs *b, int64_t q0,
                                int64_t mb, xcat_tensor *indices, xcat_tensor *scores)
{
    uint32_t *f = xcat_host_alloc(ctx, (size_t)mb * 4, 64);
    if (!f) return xcat_error(ctx, XCAT_ERROR_OUT_OF_MEMORY, "top-K: reading row flags");
    cl_int err = clEnqueueReadBuffer(xcat_ocl(ctx)->queue, b->flags, CL_TRUE, 0, (size_t)mb * 4,
                                     f, 0, NULL, NULL);
    xcat_status st = err == CL_SUCCESS ? XCAT_OK
                                       : xcat_ocl_error(ctx, err, "reading top-K row flags");
    int64_t tiles = 0, i = 0, j = 0;
    while (!st && next_flagged_run(f, mb, &i, &j)) tiles += cdiv(j - i, L->g.bm), i = j;
    if (!st && tiles >= cdiv(mb, L->g.bm)) {
        st = run_block(ctx, exact, L, c, b, q0, mb, 0, false, false, indices, scores);
    } else {
        for (i = 0; !st && next_flagged_run(f, mb, &i, &j); i = j)
            st = run_block(ctx, exact, L, c, b, q0 + i, j - i, 0, false, false, indices, scores);
    }
    xcat_host_free(ctx, f);
    return st;
}

xcat_status xcat_ocl_topk(xcat_context *ctx, const xcat_topk_call *c, xcat_tensor *indices,
                          xcat_tensor *scores)
{
    topk_layout L;
    xcat_status st = make_layout(ctx, c, &L);
    if (st) return st;
    cl_program prog;
    topk_kernels kn = {0}, exact = {0};
    topk_bufs b = {0};
    st = build(ctx, &L, &prog);
    /* emulated approximate scores (approx 2) are a program of their own; the exact scoring
     * kernel (the fallback) then comes from the plain one */
    cl_program plain = prog;
    if (!st && L.approx == 2) {
        topk_layout Lp = L;
        Lp.approx = 0;
        st = build_one(ctx, &Lp, &plain);
        if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_score_filter", &kn.score);
    }
    if (!st) st = xcat_ocl_kernel(ctx, plain, "topk_score_filter", &exact.score);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_select", &kn.select);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_sort_blocks", &kn.sort);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_merge", &kn.merge);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_norms", &kn.norms);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_rescore", &kn.rescore);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_rescore4", &kn.rescore4);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_cut_rank", &kn.cut);
    if (!st && L.approx == 1) st = xcat_ocl_kernel(ctx, prog, "topk_score_filter_mma", &kn.score);
    if (!st) st = xcat_ocl_check_wg(ctx, &exact.score, 1, L.wg);
    if (!st && kn.score) st = xcat_ocl_check_wg(ctx, &kn.score, 1, L.wg);
    if (!st) {
        exact.select = kn.select, exact.sort = kn.sort, exact.merge = kn.merge;
        if (!kn.score) kn.score = exact.score;
    }
    if (!st) st = upload_lists(ctx, prog, L.sel_wg, c, &b);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)(L.mb * L.cap * 8), false, &b.cand);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)L.mb * 4, false, &b.cnt);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)L.mb * 8, false, &b.thr);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)L.mb * 4, false, &b.flags);
    if (!st) st = xcat_ocl_buffer(ctx, (size_t)L.mb * 8, false, &b.sthr);
    const char *so = ctx->ignore_env ? NULL : getenv("XCAT_CL_TOPK_SCORE_ONLY");
    const bool score_only = so && so[0] == '1';
    const int approx = score_only && L.approx == 2 ? 0 : L.approx;
    const topk_kernels *scan = score_only && L.approx == 2 ? &exact : &kn;
    if (!st && approx) {
        st = xcat_ocl_buffer(ctx, (size_t)L.mb * 4, false, &b.marg);
        if (!st) st = xcat_ocl_buffer(ctx, 8, true, &b.gmax);
        /* the catalog's largest norm and |bias|, once per call */
        if (!st) st = launch_norms(ctx, &kn, &L, &b, c->c, c->d, tensor_mat(c->items), 0);
        if (!st && c->bias) {
            const mat bv = {xcat_ocl_mem(c->bias), elem_off(c->bias), 1}; /* contiguous */
            st = launch_norms(ctx, &kn, &L, &b, c->c, 1, bv, 1);
        }
    }
    for (int64_t q0 = 0; !st && q0 < c->m; q0 += L.mb) {
        const int64_t mb = c->m - q0 < L.mb ? c->m - q0 : L.mb;
        const bool sample = L.sample_n > 0 && !score_only;
        st = run_block(ctx, scan, &L, c, &b, q0, mb, approx, sample, score_only, indices, scores);
        if (!st && (approx || sample) && !score_only)
            st = redo_flagged(ctx, &exact, &L, c, &b, q0, mb, indices, scores);
        /* the next block reuses the buffers: the queue is in order */
    }
    st = finish(ctx, st);
    cl_kernel all[] = {exact.score, kn.score != exact.score ? kn.score : NULL, kn.select, kn.sort,
                       kn.merge, kn.norms, kn.rescore, kn.rescore4, kn.cut};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) clReleaseKernel(all[i]);
    bufs_release(&b);
    return st;
}

xcat_status xcat_ocl_rank_sampled(xcat_context *ctx, const xcat_topk_call *c,
                                  const int64_t *h_targets, int64_t num_negatives, uint64_t seed,
                                  xcat_tensor *ranks)
{
    topk_layout L;
    xcat_topk_call one = *c;
    one.k = 1;
    xcat_status st = make_layout(ctx, &one, &L);
    if (st) return st;
    cl_program prog;
    cl_kernel kr = NULL;
    topk_bufs b = {0};
    st = build(ctx, &L, &prog);
    if (!st) st = xcat_ocl_kernel(ctx, prog, "topk_rank_sampled", &kr);
    if (!st) st = upload_lists(ctx, prog, L.sel_wg, c, &b);
    if (!st) st = upload(ctx, h_targets, c->m, false, &b.targets);
    if (!st) {
        const mat U = tensor_mat(c->queries), E = tensor_mat(c->items);
        args a = {.k = kr};
        A_INT(&a, c->m);
        A_INT(&a, c->c);
        A_INT(&a, c->d);
        A_MEM(&a, U.mem);
        A_ULONG(&a, U.off);
        A_LONG(&a, U.ld);
        A_MEM(&a, E.mem);
        A_ULONG(&a, E.off);
        A_LONG(&a, E.ld);
        A_MEM(&a, c->bias ? xcat_ocl_mem(c->bias) : b.dummy);
        A_ULONG(&a, c->bias ? elem_off(c->bias) : 0);
        A_INT(&a, c->bias != NULL);
        A_MEM(&a, b.targets);
        A_LONG(&a, num_negatives);
        A_ULONG(&a, seed);
        LIST_ARGS(&a, c, &b);
        A_MEM(&a, xcat_ocl_mem(ranks));
        A_ULONG(&a, elem_off(ranks));
        const size_t lw = (size_t)L.sel_wg, gw = (size_t)cdiv(c->m, L.sel_wg) * lw;
        st = launch(ctx, &a, 1, &gw, &lw, "enqueueing topk_rank_sampled");
    }
    st = finish(ctx, st);
    if (kr) clReleaseKernel(kr);
    bufs_release(&b);
    return st;
}
