/* cpu_features.c — which CPU ISA level can run here: cpuid says what the CPU has, xgetbv says
 * whether the OS saves the YMM/ZMM state (without it AVX instructions fault). Probed once
 * (call_once): the only process-wide state in xcat, and it never changes after the probe. */
#include <string.h>
#include <threads.h>

#include "baseline_guard.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define XCAT_X86 1
#endif

static once_flag probe_once = ONCE_FLAG_INIT;
static xcat_isa probed_isa = XCAT_ISA_SCALAR;
static char probed_model[64];

#ifdef XCAT_X86
static unsigned long long read_xcr0(void)
{
    unsigned eax, edx;
    /* xgetbv with ecx = 0, spelled as bytes so baseline code needs no -mxsave. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void probe_model(void)
{
    unsigned regs[12] = {0}, max_ext = __get_cpuid_max(0x80000000u, NULL);
    if (max_ext < 0x80000004u) return;
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                    &regs[4 * i + 3]);
    char brand[49];
    memcpy(brand, regs, 48);
    brand[48] = '\0';
    const char *p = brand;
    while (*p == ' ') p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == ' ') n--;
    if (n >= sizeof probed_model) n = sizeof probed_model - 1;
    memcpy(probed_model, p, n);
    probed_model[n] = '\0';
}

static xcat_isa probe_isa(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return XCAT_ISA_SCALAR;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx || !fma) return XCAT_ISA_SCALAR;
    const unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return XCAT_ISA_SCALAR; /* XMM and YMM state saved by the OS */
    if (__get_cpuid_max(0, NULL) < 7) return XCAT_ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    if (!avx2) return XCAT_ISA_SCALAR;
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const int zmm_state = (xcr0 & 0xE0) == 0xE0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    if (f && dq && bw && vl && zmm_state) return XCAT_ISA_AVX512;
    return XCAT_ISA_AVX2;
}
#endif

static void probe(void)
{
#ifdef XCAT_X86
    xcat_isa isa = probe_isa();
    probe_model();
#else
    xcat_isa isa = XCAT_ISA_SCALAR;
#endif
    /* Never report a level whose kernels were not compiled in. */
#ifndef XCAT_HAVE_AVX512_UNIT
    if (isa == XCAT_ISA_AVX512) isa = XCAT_ISA_AVX2;
#endif
#ifndef XCAT_HAVE_AVX2_UNIT
    if (isa == XCAT_ISA_AVX2) isa = XCAT_ISA_SCALAR;
#endif
    probed_isa = isa;
}

xcat_isa xcat_cpu_isa_detect(void)
{
    call_once(&probe_once, probe);
    return probed_isa;
}

const char *xcat_cpu_model_name(void)
{
    call_once(&probe_once, probe);
    return probed_model;
}
