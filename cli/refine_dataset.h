/* refine_dataset.h -- `sola refine` of a whole dataset (a folder in any layout of
 * core/data/layouts.h, or an HDF5 file) into refined files downstream codebases read
 * unchanged: same names, same T, float32, same orientation and format family. */
#ifndef SOLA_CLI_REFINE_DATASET_H
#define SOLA_CLI_REFINE_DATASET_H

#include "model.h"
#include "refine.h"

typedef struct cli_refine_opts {
    int ct;              /* --layout ct: files are [C, T], outputs written [C, T] too */
    int allow_missing;   /* --allow-missing: skipped videos do not fail the run */
    const char *h5_out;  /* --h5-out FILE: also (or, with -o FILE.h5, only) an HDF5 file */
    int names;           /* --missing-names as-is|strip-v (CLI_NAMES_*, refine_meta.h) */
    int flow_first;      /* --pair-order flow,rgb */
    double fps, stride, frames; /* --fps/--stride/--frames: the declared grid (0: none) */
    const char *annotations;    /* --annotations JSON: checked against, see refine_meta.h */
    const char *subset;         /* --subset S of it (NULL: every video) */
    int shard, shards;          /* this process refines shard `shard` of `shards`
                                 * (refine_shard.h); shards 0: every video */
    int skip_existing;          /* --skip-existing: a complete output is kept */
} cli_refine_opts;

struct cli_prefetch;

/* Refines dataset `in` into `out` (a folder, or an HDF5 file when it ends in .h5 /
 * .hdf5). Writes OUT/refine_meta.json and OUT/missing_files.txt (STEM.refine_meta.json
 * and STEM.missing_files.txt beside an HDF5 output) through refine_meta.h; the list
 * is always written and carries over the input's own. A sharded run (o->shards)
 * refines its own videos and writes its part of those two files, merging the parts
 * when it finds them all (refine_shard.h). Returns an exit code. */
int cli_refine_dataset(const sola_model *m, const char *mpath, const char *in,
                       const char *out, const cli_refine_opts *o, sola_ws *ws,
                       struct cli_prefetch *pf);

/* What a dataset run can do before its model is loaded, started while it loads: the
 * dataset opened (scanned) and its first video read ahead on a thread of its own
 * (refine_pipe.h). Pass it to cli_refine_dataset (same in, out, o), which takes over
 * what fits and redoes the rest; NULL when nothing could be started (no error is
 * reported here: cli_refine_dataset reports it, after the model's own errors). */
struct cli_prefetch *cli_refine_prefetch(const char *in, const char *out,
                                         const cli_refine_opts *o);
/* Waits for the read ahead and frees it (NULL: nothing). */
void cli_prefetch_free(struct cli_prefetch *pf);
/* The shortest T among the videos the run will refine, as planned with the scan; 0
 * when that is not known (no plan, nothing to refine). The model can then be packed
 * for passes of no fewer rows (sola_model_load_ex). */
int64_t cli_prefetch_min_T(const struct cli_prefetch *pf);

/* 1 if path names an HDF5 file by its extension (.h5, .hdf5). */
int cli_is_h5_name(const char *path);

#endif
