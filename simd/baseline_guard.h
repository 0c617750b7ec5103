/* baseline_guard.h — included by every translation unit that must run on any x86-64 CPU.
 * Such code must never be compiled with AVX flags: a stray -mavx2 here would let the compiler
 * emit AVX instructions into code that runs before (or instead of) the cpuid check. */
#ifndef XCAT_BASELINE_GUARD_H
#define XCAT_BASELINE_GUARD_H
#if defined(__AVX__) && !defined(XCAT_ISA_UNIT) && !defined(XCAT_ALLOW_NATIVE_BASELINE)
#error "baseline xcat code compiled with AVX enabled: remove -mavx*/-march=native from CFLAGS"
#endif
#endif
