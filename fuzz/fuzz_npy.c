/* fuzz_npy.c -- libFuzzer entry for fuzz_one_npy (body and invariants in harness.h). */
#include "harness.h"

FUZZ_ENTRY(fuzz_one_npy)
