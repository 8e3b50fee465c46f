/* refine_shard.h -- one shard of a dataset refine spread over processes or machines
 * (`sola refine --shard I/N`, or a Kubernetes Indexed Job's JOB_COMPLETION_INDEX).
 *
 * The split is by video name: video NAME belongs to shard FNV-1a-64(NAME) mod N. It
 * needs no listing shared between shards (each opens the dataset itself), and a
 * video keeps its shard when others are added or removed. HDF5 inputs split the
 * same way by their key (the dataset or group name).
 *
 * A shard writes its videos' outputs, and instead of refine_meta.json and
 * missing_files.txt its part of them: OUT/refine_meta.I-of-N.json and
 * OUT/missing_files.I-of-N.txt. When every part of the N is there (the last shard
 * to finish sees them all), or on `sola refine --merge-meta OUT`, the parts are
 * merged into the two files one process would have written (refine_meta.h). */
#ifndef SOLA_CLI_REFINE_SHARD_H
#define SOLA_CLI_REFINE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "err.h"

typedef struct cli_shard {
    int index, count; /* count 0: not sharded */
} cli_shard;

/* Most shards a run can be split into (a Job's completions are capped near this). */
#define CLI_SHARD_MAX 100000

/* The shard of this process: `flag` (--shard I/N, may be NULL), else the environment's
 * JOB_COMPLETION_INDEX with `shards` (--shards N, 0 if not given) or JOB_COMPLETIONS.
 * Neither: s->count = 0. Returns 0, or -1 with a usage message in msg. */
int cli_shard_resolve(const char *flag, long shards, cli_shard *s, char *msg, size_t n);

/* FNV-1a 64 of the name's bytes; shard of a name = hash mod N. */
uint64_t cli_shard_hash(const char *name);
int cli_shard_owns(const cli_shard *s, const char *name);

/* OUT/refine_meta.I-of-N.json and OUT/missing_files.I-of-N.txt. */
void cli_shard_part_paths(const char *out, int index, int count, char *meta, char *miss,
                          size_t n);

/* 1 when `path` holds a complete refined output of `rows` x `cols` float32 values: a
 * .npy whose header says '<f4' C order of that shape and whose size matches, an .npz
 * whose sequence member reads back (CRC checked) in that shape, a .csv of that shape.
 * Anything else (absent, truncated, another shape or dtype): 0. */
int cli_output_complete(const char *path, int64_t rows, int64_t cols);

/* Removes the temporaries (".FILE.tmp.PID.N", fsutil.h) a killed run left in `out`
 * for the items with mine[i] (every item when mine is NULL): a video's output, its
 * copied siblings. A retried pod runs with a PID the killed one may have had, and
 * the temporary name would then be taken. Returns the number removed. */
int cli_shard_clean_temps(const char *out, const sola_dataset *d, const unsigned char *mine);

/* Merges the parts of `count` shards in folder out into out/refine_meta.json and
 * out/missing_files.txt. count 0: the count of the parts found (refused when parts
 * of different counts are there). Returns 0 when merged; 1 when parts are missing
 * (their indices listed in e->msg, nothing written); a SOLA_E* error otherwise (a
 * part unreadable, or parts that disagree: model, C, layout, names). */
int cli_shard_merge(const char *out, int count, sola_err *e);

#endif
