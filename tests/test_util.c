/* Shared helpers of the xcat Check suites: see test_util.h. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef XCAT_TEST_HAVE_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include "xcat_opencl.h"
#endif

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

/* ---- targets --------------------------------------------------------------------------------- */

#define MAX_TARGETS (3 + TEST_MAX_OPENCL_TARGETS)

static test_target g_targets[MAX_TARGETS];
static int g_num_targets;
static int g_first_opencl = -1;
static int g_require_opencl;

static int contains_nocase(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (; *hay; ++hay) {
        size_t k = 0;
        while (k < n && hay[k] &&
               tolower((unsigned char)hay[k]) == tolower((unsigned char)needle[k]))
            ++k;
        if (k == n)
            return 1;
    }
    return n == 0;
}

/* What the enumerating child sends back: a status, then the devices it kept. */
typedef struct opencl_scan {
    int status; /* xcat_status of xcat_device_count, or 1 when the child died */
    int total;  /* devices the library reports */
    int kept;   /* after XCAT_TEST_OPENCL_DEVICE and the cap */
    int index[TEST_MAX_OPENCL_TARGETS];
    char name[TEST_MAX_OPENCL_TARGETS][256];
    char error[256];
} opencl_scan;

static void scan_opencl(const char *filter, opencl_scan *scan)
{
    int32_t count = 0;
    memset(scan, 0, sizeof *scan);
    scan->status = (int)xcat_device_count(XCAT_BACKEND_OPENCL, &count);
    if (scan->status != XCAT_OK)
        return;
    scan->total = count;
    for (int32_t i = 0; i < count && scan->kept < TEST_MAX_OPENCL_TARGETS; ++i) {
        xcat_device_info info;
        xcat_device_info_init(&info);
        const xcat_status st = xcat_device_get_info(XCAT_BACKEND_OPENCL, i, &info);
        if (st != XCAT_OK) {
            snprintf(scan->error, sizeof scan->error, "xcat_device_get_info(OPENCL, %d): %s",
                     (int)i, xcat_status_string(st));
            continue;
        }
        char index[16];
        snprintf(index, sizeof index, "%d", (int)i);
        if (filter && *filter && strcmp(filter, index) != 0 &&
            !contains_nocase(info.name, filter) && !contains_nocase(info.vendor, filter) &&
            !contains_nocase(info.platform, filter))
            continue;
        scan->index[scan->kept] = (int)i;
        snprintf(scan->name[scan->kept], sizeof scan->name[0], "%.180s (%.60s)", info.name,
                 info.platform);
        scan->kept++;
    }
}

/* Run scan_opencl() in a child process, so this process never loads an OpenCL driver (a
 * driver initialised before fork() may not work in Check's forked children: its worker
 * threads do not survive the fork). Falls back to scanning in-process if fork fails. */
static void scan_opencl_isolated(const char *filter, opencl_scan *scan)
{
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        scan_opencl(filter, scan);
        return;
    }
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        scan_opencl(filter, scan);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        static opencl_scan mine;
        scan_opencl(filter, &mine);
        const char *p = (const char *)&mine;
        size_t left = sizeof mine;
        while (left > 0) {
            const ssize_t w = write(fds[1], p, left);
            if (w <= 0 && errno != EINTR)
                break;
            if (w > 0) {
                p += w;
                left -= (size_t)w;
            }
        }
        close(fds[1]);
        _exit(0); /* no atexit handlers: nothing of the parent's is flushed or checked twice */
    }
    close(fds[1]);
    memset(scan, 0, sizeof *scan);
    char *p = (char *)scan;
    size_t got = 0;
    while (got < sizeof *scan) {
        const ssize_t r = read(fds[0], p + got, sizeof *scan - got);
        if (r == 0 || (r < 0 && errno != EINTR))
            break;
        if (r > 0)
            got += (size_t)r;
    }
    close(fds[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *scan) {
        memset(scan, 0, sizeof *scan);
        scan->status = 1;
        snprintf(scan->error, sizeof scan->error,
                 "the OpenCL device scan died (%s %d)",
                 WIFSIGNALED(wstatus) ? "signal" : "exit status",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus));
    }
}

static test_target *add_target(xcat_backend_kind backend, int isa, int device)
{
    test_target *t = &g_targets[g_num_targets++];
    memset(t, 0, sizeof *t);
    t->backend = backend;
    t->isa = isa;
    t->device = device;
    return t;
}

void test_targets_init(void)
{
    if (g_num_targets > 0)
        return;
    for (int level = XCAT_ISA_SCALAR; level <= XCAT_ISA_AVX512; ++level) {
        test_target *t = add_target(XCAT_BACKEND_CPU, level, 0);
        snprintf(t->name, sizeof t->name, "cpu:%s", xcat_isa_name((xcat_isa)level));
    }
    g_first_opencl = g_num_targets;

    const char *mode = getenv("XCAT_TEST_OPENCL");
    const char *filter = getenv("XCAT_TEST_OPENCL_DEVICE");
    g_require_opencl = mode && (strcmp(mode, "require") == 0 || strcmp(mode, "2") == 0);
    char why[320] = "";
    if (mode && (strcmp(mode, "0") == 0 || strcmp(mode, "off") == 0 ||
                 strcmp(mode, "no") == 0)) {
        snprintf(why, sizeof why, "XCAT_TEST_OPENCL=%s", mode);
    } else {
        static opencl_scan scan;
        scan_opencl_isolated(filter, &scan);
        if (scan.status == XCAT_ERROR_BACKEND_UNAVAILABLE)
            snprintf(why, sizeof why, "the OpenCL backend is not built into this xcat");
        else if (scan.status != XCAT_OK)
            snprintf(why, sizeof why, "%s",
                     scan.status == 1 ? scan.error
                                      : xcat_status_string((xcat_status)scan.status));
        else if (scan.total == 0)
            snprintf(why, sizeof why, "no OpenCL platform or device is installed");
        else if (scan.kept == 0)
            snprintf(why, sizeof why,
                     "none of the %d OpenCL devices matches XCAT_TEST_OPENCL_DEVICE='%.60s'%s%.160s",
                     scan.total, filter ? filter : "", scan.error[0] ? "; " : "", scan.error);
        for (int k = 0; k < scan.kept; ++k) {
            test_target *t = add_target(XCAT_BACKEND_OPENCL, 0, scan.index[k]);
            snprintf(t->name, sizeof t->name, "opencl:%d", scan.index[k]);
            snprintf(t->detail, sizeof t->detail, "%s", scan.name[k]);
        }
        if (scan.kept > 0 && scan.total > scan.kept && !(filter && *filter))
            printf("note: %d OpenCL devices, only the first %d are tested\n", scan.total,
                   scan.kept);
    }
    if (g_num_targets == g_first_opencl) {
        test_target *t = add_target(XCAT_BACKEND_OPENCL, 0, -1);
        snprintf(t->name, sizeof t->name, "opencl:none");
        snprintf(t->detail, sizeof t->detail, "%s", why);
    }
    printf("xcat tests: targets");
    for (int k = 0; k < g_num_targets; ++k)
        printf(" %s%s%s%s", g_targets[k].name, g_targets[k].detail[0] ? " [" : "",
               g_targets[k].detail, g_targets[k].detail[0] ? "]" : "");
    printf("\n");
    fflush(stdout);
}

int test_num_targets(void)
{
    test_targets_init();
    return g_num_targets;
}

const test_target *test_target_get(int index)
{
    test_targets_init();
    ck_assert_msg(index >= 0 && index < g_num_targets, "target %d out of range", index);
    return &g_targets[index];
}

int test_first_opencl_target(void)
{
    test_targets_init();
    return g_first_opencl;
}

xcat_context *test_target_context(int index, int num_threads)
{
    return test_target_context_flags(index, num_threads, XCAT_CONTEXT_IGNORE_ENV);
}

xcat_context *test_target_context_flags(int index, int num_threads, uint32_t flags)
{
    const test_target *t = test_target_get(index);
    if (t->backend == XCAT_BACKEND_CPU)
        return test_context_at_isa(t->isa, num_threads);
    if (t->device < 0) {
        ck_assert_msg(!g_require_opencl, "XCAT_TEST_OPENCL=require but no OpenCL device: %s",
                      t->detail);
        printf("note: no OpenCL target (%s): test skipped\n", t->detail);
        fflush(stdout);
        return NULL;
    }
    xcat_context_options opt;
    char msg[512] = "", device[16];
    snprintf(device, sizeof device, "%d", t->device);
    xcat_context_options_init(&opt);
    opt.backend = XCAT_BACKEND_OPENCL;
    opt.device = device;
    opt.flags = flags;
    opt.error_message = msg;
    opt.error_message_size = sizeof msg;
    xcat_context *ctx = NULL;
    const xcat_status st = xcat_context_create(&opt, &ctx);
    ck_assert_msg(st == XCAT_OK && ctx != NULL, "xcat_context_create(%s [%s]): %s (%s)", t->name,
                  t->detail, xcat_status_string(st), msg);
    return ctx;
}

xcat_backend_kind test_context_backend(const xcat_context *ctx)
{
    xcat_context_info info;
    xcat_context_info_init(&info);
    test_expect_ok(ctx, xcat_context_get_info(ctx, &info), "xcat_context_get_info");
    return info.backend;
}

void test_context_label(const xcat_context *ctx, char *buf, size_t size)
{
    xcat_context_info info;
    xcat_context_info_init(&info);
    test_expect_ok(ctx, xcat_context_get_info(ctx, &info), "xcat_context_get_info");
    if (info.backend == XCAT_BACKEND_CPU)
        snprintf(buf, size, "isa %s threads %d", xcat_isa_name(info.isa),
                 (int)info.num_threads);
    else
        snprintf(buf, size, "%s '%s'", info.backend_name, info.device_name);
}

/* The OpenCL path of test_input_matrix(): a cl_mem of our own, wrapped at an offset of `prefix`
 * elements (NaN before them). */
static xcat_tensor *opencl_input_matrix(xcat_context *ctx, int64_t rows, int64_t cols,
                                        int64_t stride, const float *data, int64_t prefix)
{
#ifdef XCAT_TEST_HAVE_OPENCL
    cl_context clctx = NULL;
    test_expect_ok(ctx, xcat_context_get_opencl(ctx, &clctx, NULL, NULL),
                   "xcat_context_get_opencl");
    const int64_t count = prefix + rows * stride;
    float *host = test_alloc_floats(count);
    for (int64_t k = 0; k < prefix; ++k)
        host[k] = NAN;
    memcpy(host + prefix, data, (size_t)(rows * stride) * sizeof *host);
    cl_int err = CL_SUCCESS;
    cl_mem buf = clCreateBuffer(clctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                                (size_t)count * sizeof *host, host, &err);
    free(host);
    ck_assert_msg(err == CL_SUCCESS && buf != NULL, "clCreateBuffer(%lld bytes): error %d",
                  (long long)count * 4, (int)err);
    xcat_tensor *t = NULL;
    const xcat_status st = xcat_tensor_wrap_opencl(ctx, XCAT_DTYPE_F32, rows, cols, stride, buf,
                                                   prefix * sizeof(float), &t);
    clReleaseMemObject(buf); /* the tensor holds its own reference */
    test_expect_ok(ctx, st, "xcat_tensor_wrap_opencl");
    return t;
#else
    (void)prefix;
    xcat_tensor *t = test_tensor(ctx, XCAT_DTYPE_F32, rows, cols, NULL);
    test_expect_ok(ctx, xcat_tensor_write(t, data, stride), "xcat_tensor_write with stride");
    return t;
#endif
}

xcat_tensor *test_input_matrix(xcat_context *ctx, int64_t rows, int64_t cols, int64_t stride,
                               float *data)
{
    return test_input_matrix_at(ctx, rows, cols, stride, data, 7);
}

xcat_tensor *test_input_matrix_at(xcat_context *ctx, int64_t rows, int64_t cols, int64_t stride,
                                  float *data, int64_t prefix)
{
    ck_assert_int_ge(stride, cols);
    if (stride == cols)
        return test_tensor(ctx, XCAT_DTYPE_F32, rows, cols, data);
    if (test_context_backend(ctx) == XCAT_BACKEND_OPENCL)
        return opencl_input_matrix(ctx, rows, cols, stride, data, prefix);
    xcat_tensor *t = NULL;
    test_expect_ok(ctx, xcat_tensor_wrap_host(ctx, XCAT_DTYPE_F32, rows, cols, stride, data, &t),
                   "xcat_tensor_wrap_host");
    return t;
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
