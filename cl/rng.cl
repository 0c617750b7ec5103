/* rng.cl — the draws of sampled negatives, one source for every backend.
 *
 * This file is OpenCL C and C11 at once: the OpenCL programs embed it like any kernel file, and
 * the host (src/sampling_rng.c) includes it after defining XCAT_RNG_HOST. Everything is integer
 * arithmetic, so the CPU backend, every OpenCL device and the tests draw bit-identical items.
 *
 * Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as easy as 1, 2, 3"): a
 * counter-based generator; the 64-bit key is the plan's seed, the 128-bit counter names the
 * draw: (k, row, step low word, step high word ^ attempt << 24). A draw therefore depends on
 * nothing but (seed, step, row, k, attempt): forward and backward redraw instead of storing. */
#ifndef XCAT_RNG_CL
#define XCAT_RNG_CL

#ifdef XCAT_RNG_HOST
#include <stdint.h>
typedef uint32_t xr_u32;
typedef uint64_t xr_u64;
#else
typedef uint xr_u32;
typedef ulong xr_u64;
#endif

#define XR_PHILOX_M0 0xD2511F53u
#define XR_PHILOX_M1 0xCD9E8D57u
#define XR_PHILOX_W0 0x9E3779B9u
#define XR_PHILOX_W1 0xBB67AE85u

/* Philox4x32-10 in place on c[0..3] with key (k0, k1). */
static inline void xr_philox4x32_10(xr_u32 c[4], xr_u32 k0, xr_u32 k1)
{
    for (int round = 0; round < 10; ++round) {
        xr_u64 p0 = (xr_u64)XR_PHILOX_M0 * c[0];
        xr_u64 p1 = (xr_u64)XR_PHILOX_M1 * c[2];
        xr_u32 hi0 = (xr_u32)(p0 >> 32), lo0 = (xr_u32)p0;
        xr_u32 hi1 = (xr_u32)(p1 >> 32), lo1 = (xr_u32)p1;
        xr_u32 n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        k0 += XR_PHILOX_W0;
        k1 += XR_PHILOX_W1;
    }
}

/* The four words of draw (seed, step, row, k, attempt); attempt < 256. */
static inline void xr_draw_words(xr_u32 out[4], xr_u64 seed, xr_u64 step, xr_u32 row, xr_u32 k,
                                 xr_u32 attempt)
{
    out[0] = k;
    out[1] = row;
    out[2] = (xr_u32)step;
    out[3] = (xr_u32)(step >> 32) ^ (attempt << 24);
    xr_philox4x32_10(out, (xr_u32)seed, (xr_u32)(seed >> 32));
}

/* floor(r · n / 2^32): an index in [0, n) from one 32-bit word (n <= 2^31; bias < n / 2^32). */
static inline xr_u32 xr_index(xr_u32 r, xr_u32 n)
{
    return (xr_u32)(((xr_u64)r * n) >> 32);
}

/* UNIFORM sampler: item in [0, C). */
static inline xr_u32 xr_draw_uniform(xr_u64 seed, xr_u64 step, xr_u32 row, xr_u32 k,
                                     xr_u32 attempt, xr_u32 classes)
{
    xr_u32 w[4];
    xr_draw_words(w, seed, step, row, k, attempt);
    return xr_index(w[0], classes);
}

/* POPULARITY sampler through Walker's alias table: bucket j is kept when the second word is
 * below threshold[j] (= P(keep j) · 2^32, floored), else its alias is taken. Full buckets are
 * their own alias, so the threshold never needs the value 2^32. */
#define XR_ALIAS_DRAW(seed, step, row, k, attempt, classes, threshold, alias, out)             \
    do {                                                                                        \
        xr_u32 xr_w_[4];                                                                        \
        xr_draw_words(xr_w_, (seed), (step), (row), (k), (attempt));                            \
        xr_u32 xr_j_ = xr_index(xr_w_[0], (classes));                                           \
        (out) = xr_w_[1] < (threshold)[xr_j_] ? xr_j_ : (xr_u32)(alias)[xr_j_];                 \
    } while (0)

/* ---- distinct uniform negatives: a keyed permutation of the C−1 items other than the
 * positive. A balanced Feistel network over 2·half bits (2^(2·half) < 4·n) is a bijection of
 * that domain; walking the cycle until the value falls below n makes it a bijection of [0, n),
 * so negatives k = 0..K−1 of a row are distinct with no storage and O(1) expected work
 * (at most 4 steps on average). The round keys come from one Philox draw per row. */

typedef struct xr_perm {
    xr_u32 key[4];
    xr_u32 hbits; /* bits per Feistel half */
    xr_u32 mask;  /* (1 << half) − 1 */
    xr_u32 n;     /* domain size C − 1 */
} xr_perm;

static inline xr_perm xr_perm_make(xr_u64 seed, xr_u64 step, xr_u32 row, xr_u32 n)
{
    xr_perm p;
    /* k = 0xFFFFFFFF never names a negative (K <= C − 1 < 2^31), so this draw is the row's own. */
    xr_draw_words(p.key, seed, step, row, 0xFFFFFFFFu, 255u);
    xr_u32 bits = 1;
    while (bits < 32 && ((xr_u64)1 << bits) < (xr_u64)n) ++bits;
    p.hbits = (bits + 1) / 2;
    p.mask = (p.hbits >= 32) ? 0xFFFFFFFFu : ((1u << p.hbits) - 1u);
    p.n = n;
    return p;
}

/* murmur3's 32-bit finaliser: the Feistel round function. */
static inline xr_u32 xr_mix32(xr_u32 x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

static inline xr_u32 xr_perm_step(const xr_perm *p, xr_u32 x)
{
    xr_u32 l = x >> p->hbits, r = x & p->mask;
    for (int i = 0; i < 4; ++i) {
        xr_u32 t = l ^ (xr_mix32(r ^ p->key[i]) & p->mask);
        l = r;
        r = t;
    }
    return (l << p->hbits) | r;
}

/* The k-th (k < n) element of the row's permutation of [0, n). */
static inline xr_u32 xr_perm_at(const xr_perm *p, xr_u32 k)
{
    xr_u32 x = xr_perm_step(p, k);
    while (x >= p->n) x = xr_perm_step(p, x);
    return x;
}

/* DISTINCT sampler: negative k of a row whose positive is `positive` (skipped). */
static inline xr_u32 xr_draw_distinct(const xr_perm *p, xr_u32 k, xr_u32 positive)
{
    xr_u32 x = xr_perm_at(p, k);
    return x < positive ? x : x + 1u;
}

/* ---- SCE bucket directions: approximately Gaussian values, bit-identical everywhere.
 * The sum of twelve uniforms minus 6 (Irwin–Hall(12): mean 0, variance 1, bounded to ±6, its
 * density within 0.01 of the normal one) from integer arithmetic only: twelve 24-bit words of
 * three Philox draws are summed exactly as integers, and one int → float conversion (round to
 * nearest even on every IEEE device) and one exact scaling by 2^−24 make the value. Box–Muller
 * would need log/cos, whose last bits differ between libm and OpenCL builtins. Value number
 * `index` of stream (seed, step): counter (index low, index high, step low, step high ^ 0x5CE ^
 * draw << 24). */
static inline float xr_gauss12(xr_u64 seed, xr_u64 step, xr_u64 index)
{
    xr_u32 sum = 0;
    for (xr_u32 t = 0; t < 3; ++t) {
        xr_u32 w[4];
        w[0] = (xr_u32)index;
        w[1] = (xr_u32)(index >> 32);
        w[2] = (xr_u32)step;
        w[3] = (xr_u32)(step >> 32) ^ 0x5CEu ^ (t << 24);
        xr_philox4x32_10(w, (xr_u32)seed, (xr_u32)(seed >> 32));
        sum += (w[0] >> 8) + (w[1] >> 8) + (w[2] >> 8) + (w[3] >> 8);
    }
    const int v = (int)sum - 6 * (1 << 24); /* |v| < 2^27: exact in int */
    return (float)v * 5.9604644775390625e-8f;  /* 2^−24: exact */
}

#endif /* XCAT_RNG_CL */
