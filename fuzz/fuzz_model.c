/* fuzz_model.c -- libFuzzer entry for fuzz_one_model (body and invariants in harness.h). */
#include "harness.h"

FUZZ_ENTRY(fuzz_one_model)
