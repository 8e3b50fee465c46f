/* fuzz_dataset_npz.c -- libFuzzer entry for fuzz_one_dataset_npz (body and invariants in
 * harness.h). */
#include "harness.h"

FUZZ_ENTRY(fuzz_one_dataset_npz)
