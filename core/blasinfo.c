/* blasinfo.c -- see blasinfo.h. The check exists because a build machine of this
 * project exported OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU: every GEMM then ran
 * at half the peak and nothing said so. */
#include "blasinfo.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *sola_blas_core(void)
{
    return openblas_get_corename();
}

int sola_blas_warning(char *buf, size_t n)
{
    const char *forced = getenv("OPENBLAS_CORETYPE");
    if (!forced || !*forced)
        return 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
    static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids",
                                               "zen4", "zen5"};
    const char *core = openblas_get_corename();
    for (size_t i = 0; i < sizeof avx512_cores / sizeof avx512_cores[0]; i++)
        if (core && !strcasecmp(core, avx512_cores[i]))
            return 0;
    snprintf(buf, n,
             "OPENBLAS_CORETYPE=%s forces OpenBLAS onto %s kernels although this CPU has "
             "AVX-512; GEMMs run at about half their peak. Unset OPENBLAS_CORETYPE unless "
             "that is intended.",
             forced, core ? core : "older");
    return 1;
#else
    (void)buf;
    (void)n;
    return 0;
#endif
}
