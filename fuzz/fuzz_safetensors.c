/* fuzz_safetensors.c -- libFuzzer entry for fuzz_one_safetensors (body and invariants in harness.h). */
#include "harness.h"

FUZZ_ENTRY(fuzz_one_safetensors)
