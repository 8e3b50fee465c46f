/* fuzz_npz.c -- libFuzzer entry for fuzz_one_npz (body and invariants in harness.h). */
#include "harness.h"

FUZZ_ENTRY(fuzz_one_npz)
