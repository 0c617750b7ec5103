/* Shared helpers of the xcat Check suites: see test_util.h. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- random numbers: xoshiro256** seeded through splitmix64 ------------------------------- */

static uint64_t g_seed;
static uint64_t g_state[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
    uint64_t x = seed;
    for (int k = 0; k < 4; ++k)
        g_state[k] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t test_rand_u64(void)
{
    const uint64_t result = rotl(g_state[1] * 5, 7) * 9;
    const uint64_t t = g_state[1] << 17;
    g_state[2] ^= g_state[0];
    g_state[3] ^= g_state[1];
    g_state[1] ^= g_state[2];
    g_state[0] ^= g_state[3];
    g_state[2] ^= t;
    g_state[3] = rotl(g_state[3], 45);
    return result;
}

void test_seed_init(void)
{
    const char *env = getenv("XCAT_TEST_SEED");
    if (env && *env) {
        g_seed = (uint64_t)strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        timespec_get(&ts, TIME_UTC);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                     ((uint64_t)getpid() << 32);
        g_seed = splitmix64(&x);
    }
    rng_seed(g_seed);
    printf("xcat tests: seed 0x%016" PRIx64 " (rerun with XCAT_TEST_SEED=0x%016" PRIx64
           " to reproduce)\n",
           g_seed, g_seed);
    fflush(stdout);
}

uint64_t test_seed(void)
{
    return g_seed;
}

void test_rng_stream(const char *name, int64_t index)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the name */
    for (const char *p = name; *p; ++p)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    rng_seed(g_seed ^ h ^ ((uint64_t)index * 0xD1B54A32D192ED03ull));
}

double test_rand_uniform(double lo, double hi)
{
    const double u = (double)(test_rand_u64() >> 11) * 0x1.0p-53; /* [0, 1) */
    return lo + (hi - lo) * u;
}

int64_t test_rand_int(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(test_rand_u64() % (uint64_t)(hi - lo));
}

void test_fill_matrix(float *x, int64_t rows, int64_t cols, int64_t stride, float lo, float hi)
{
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < stride; ++k)
            x[r * stride + k] = k < cols ? (float)test_rand_uniform(lo, hi) : NAN;
}

void test_fill_targets(int64_t *y, int64_t n, int64_t c, double ignore_frac,
                       int64_t ignore_index)
{
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int ignore = test_rand_uniform(0.0, 1.0) < ignore_frac;
        y[i] = ignore ? ignore_index : test_rand_int(0, c);
        kept += y[i] != ignore_index;
    }
    if (kept == 0 && n > 1 && ignore_frac < 1.0)
        y[0] = ignore_index == 0 ? c - 1 : 0;
}

/* ---- allocation and comparison --------------------------------------------------------------- */

void *test_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    ck_assert_msg(p != NULL, "test harness out of memory (%zu bytes)", bytes);
    return p;
}

double *test_alloc_doubles(int64_t count)
{
    return test_alloc((size_t)count * sizeof(double));
}

float *test_alloc_floats(int64_t count)
{
    return test_alloc((size_t)count * sizeof(float));
}

double test_max_abs(const double *x, int64_t count)
{
    double m = 0.0;
    for (int64_t k = 0; k < count; ++k)
        m = fmax(m, fabs(x[k]));
    return m;
}

void test_check_close(const char *what, const float *got, const double *ref, int64_t count,
                      double atol, double rtol)
{
    int64_t worst = -1;
    double worst_ratio = 0.0;
    for (int64_t k = 0; k < count; ++k) {
        const double err = fabs((double)got[k] - ref[k]);
        const double tol = atol + rtol * fabs(ref[k]);
        const double ratio = isnan(err) ? INFINITY : err / tol;
        if (worst < 0 || ratio > worst_ratio) {
            worst = k;
            worst_ratio = ratio;
        }
    }
    if (worst < 0)
        return;
    ck_assert_msg(worst_ratio <= 1.0,
                  "%s: element %" PRId64 " of %" PRId64 ": got %.9g, reference %.9g, |err| %.3g "
                  "> tolerance %.3g (atol %.3g, rtol %.3g); seed 0x%016" PRIx64,
                  what, worst, count, (double)got[worst], ref[worst],
                  fabs((double)got[worst] - ref[worst]), atol + rtol * fabs(ref[worst]), atol,
                  rtol, g_seed);
}

void test_check_all_zero(const char *what, const float *x, int64_t count)
{
    for (int64_t k = 0; k < count; ++k)
        ck_assert_msg(x[k] == 0.0f, "%s: element %" PRId64 " is %.9g, expected exactly 0", what,
                      k, (double)x[k]);
}

/* ---- xcat objects ---------------------------------------------------------------------------- */

xcat_context *test_context(int isa_max, int num_threads)
{
    xcat_context_options opt;
    char msg[256] = "";
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_CPU;
    opt.isa_max = isa_max;
    opt.num_threads = num_threads;
    opt.flags = XCAT_CONTEXT_IGNORE_ENV;
    opt.error_message = msg;
    opt.error_message_size = sizeof msg;
    xcat_context *ctx = NULL;
    const xcat_status st = xcat_context_create(&opt, &ctx);
    ck_assert_msg(st == XCAT_OK && ctx != NULL,
                  "xcat_context_create(isa_max %d, threads %d): %s (%s)", isa_max, num_threads,
                  xcat_status_string(st), msg);
    return ctx;
}

xcat_context *test_context_at_isa(int level, int num_threads)
{
    xcat_context *ctx = test_context(level, num_threads);
    xcat_context_info info;
    xcat_context_info_init(&info);
    test_expect_ok(ctx, xcat_context_get_info(ctx, &info), "xcat_context_get_info");
    ck_assert_msg((int)info.isa <= level, "isa_max %d not honoured: context runs at %s", level,
                  xcat_isa_name(info.isa));
    if ((int)info.isa < level) {
        printf("note: ISA level %d not available here (capped at %s): test skipped\n", level,
               xcat_isa_name(info.isa));
        fflush(stdout);
        xcat_context_free(ctx);
        return NULL;
    }
    return ctx;
}

xcat_tensor *test_tensor(xcat_context *ctx, xcat_dtype dtype, int64_t rows, int64_t cols,
                         const void *data)
{
    xcat_tensor *t = NULL;
    test_expect_ok(ctx, xcat_tensor_create(ctx, dtype, rows, cols, &t), "xcat_tensor_create");
    if (data)
        test_expect_ok(ctx, xcat_tensor_write(t, data, 0), "xcat_tensor_write");
    return t;
}

void test_free_tensors(xcat_tensor *const *tensors, size_t count)
{
    for (size_t k = 0; k < count; ++k)
        xcat_tensor_free(tensors[k]);
}

float *test_read_floats(const xcat_tensor *t)
{
    int64_t rows = 0, cols = 0;
    xcat_dtype dtype = XCAT_DTYPE_I32;
    ck_assert_int_eq(xcat_tensor_get_shape(t, &dtype, &rows, &cols, NULL), XCAT_OK);
    ck_assert_int_eq(dtype, XCAT_DTYPE_F32);
    float *x = test_alloc_floats(rows * cols);
    ck_assert_int_eq(xcat_tensor_read(t, x, 0), XCAT_OK);
    return x;
}

void test_expect_error(const xcat_context *ctx, xcat_status got, xcat_status want,
                       const char *needle, const char *what)
{
    const char *msg = ctx ? xcat_context_last_error(ctx) : "";
    ck_assert_msg(got == want, "%s: expected %d (%s), got %d (%s); last error \"%s\"", what,
                  (int)want, xcat_status_string(want), (int)got, xcat_status_string(got), msg);
    if (!ctx)
        return;
    ck_assert_msg(msg != NULL && msg[0] != '\0', "%s: last error is empty after %s", what,
                  xcat_status_string(got));
    if (needle)
        ck_assert_msg(strstr(msg, needle) != NULL, "%s: last error \"%s\" does not mention \"%s\"",
                      what, msg, needle);
}

void test_expect_ok(const xcat_context *ctx, xcat_status got, const char *what)
{
    ck_assert_msg(got == XCAT_OK, "%s failed: %d (%s): %s", what, (int)got,
                  xcat_status_string(got), ctx ? xcat_context_last_error(ctx) : "");
}

int test_run_suite(Suite *suite)
{
    test_seed_init();
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
