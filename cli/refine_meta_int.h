/* refine_meta_int.h -- the inside of a cli_rmeta, shared by refine_meta.c (the files)
 * and refine_grid.c (the post-run pass and the grid checks). Not for other callers. */
#ifndef SOLA_CLI_REFINE_META_INT_H
#define SOLA_CLI_REFINE_META_INT_H

#include <jansson.h>

#include "refine_meta.h"

struct cli_rmeta {
    json_t *head;      /* run-level fields, in order (owned) */
    json_t *videos;    /* name -> {T, fps, ...} */
    json_t *skipped;   /* name -> why */
    json_t *inherited; /* name -> true (from the input's missing list) */
    json_t *absent;    /* annotation key -> true */
    int names;         /* CLI_NAMES_* */
};

#endif
