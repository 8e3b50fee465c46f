/* fuzz_api_number.c -- libFuzzer entry for fuzz_one_api_number (body and invariants in
 * harness_api.h). */
#include "harness_api.h"

FUZZ_ENTRY(fuzz_one_api_number)
