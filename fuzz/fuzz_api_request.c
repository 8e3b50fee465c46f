/* fuzz_api_request.c -- libFuzzer entry for fuzz_one_api_request (body and invariants in harness_api.h). */
#include "harness_api.h"

FUZZ_ENTRY(fuzz_one_api_request)
