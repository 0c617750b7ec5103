/* bench_util.h — what every xcat-bench sub-command shares: clock, deterministic inputs,
 * medians, progress lines on stderr. */
#ifndef XCAT_BENCH_UTIL_H
#define XCAT_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in milliseconds. */
double now_ms(void);
/* splitmix64: the deterministic stream behind every generated input. */
uint64_t splitmix64(uint64_t *state);
/* Uniform values with mean 0 and standard deviation `sd`, from `seed`. */
void fill_uniform(float *x, int64_t count, float sd, uint64_t seed);
/* 64-byte aligned allocation (free with free()); never NULL for 0 bytes. */
void *alloc_bytes(size_t bytes);
/* Median of v[0..count) (sorts v in place). */
double median_of(double *v, int count);
/* "label: phase i/total" on stderr (one updating line on a terminal). */
void progress(const char *label, const char *phase, int i, int total);
void progress_done(void);
/* Peak resident set of this process in MiB (getrusage). */
double peak_rss_mib(void);

/* Comma-separated integers into v[0..max); returns the count, or -1 on a bad list. */
int parse_int_list(const char *s, int64_t *v, int max);

struct xcat_context;
struct xcat_context_info;
/* A context on backend "cpu", "opencl" or "auto" (anything else: cpu), described into `info`;
 * on failure prints "<tool>: context: <reason>" and returns -1. */
int bench_open_context(const char *backend, const char *tool, struct xcat_context **ctx,
                       struct xcat_context_info *info);

/* With XCAT_PROFILE=1 (the context then records its kernels' device times): print the kernel
 * profile since the last call, under `title`, as comment lines, and reset it; else nothing. */
void bench_print_profile(struct xcat_context *ctx, const char *title);
/* Clear the kernel profile (before the runs bench_print_profile should show). */
void bench_reset_profile(struct xcat_context *ctx);

/* Sub-commands of xcat-bench (argv[0] is the sub-command's name). */
int xcat_bench_topk_main(int argc, char **argv);
int xcat_bench_sampled_main(int argc, char **argv);
int xcat_bench_sce_main(int argc, char **argv);
int xcat_bench_suite_main(int argc, char **argv);
int xcat_bench_report_main(int argc, char **argv);

#endif
