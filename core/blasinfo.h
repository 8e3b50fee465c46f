/* blasinfo.h -- what OpenBLAS is doing on this CPU, for startup logs and benchmarks. */
#ifndef SOLA_BLASINFO_H
#define SOLA_BLASINFO_H

#include <stddef.h>

/* The kernel set OpenBLAS chose ("Cooperlake", "Haswell", ...). */
const char *sola_blas_core(void);

/* If the environment forces OpenBLAS onto kernels narrower than the CPU supports
 * (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU halves the GEMM peak), writes a
 * one-line explanation into buf and returns 1; else returns 0. */
int sola_blas_warning(char *buf, size_t n);

#endif
