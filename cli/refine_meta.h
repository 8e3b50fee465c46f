/* refine_meta.h -- what `sola refine` writes beside a refined dataset, kept in one
 * place: refine_meta.json (provenance, the per-video time grid, what was left out)
 * and missing_files.txt (the names a downstream loader must skip; OpenTAD's stock
 * configs open DATA_PATH/missing_files.txt, so it is always written, empty or not).
 *
 * A cli_rmeta collects while a run goes; cli_rmeta_write writes both files
 * atomically. A sharded run can write one part per shard (any paths) and later
 * cli_rmeta_load each part, cli_rmeta_merge them into one and cli_rmeta_write that:
 * the result is the two files a single process would have written (every
 * collection is a set keyed by name, written sorted, so the merge order does not
 * matter). The formats are described in docs/interop.md ("refine_meta.json").
 *
 * Names in missing_files.txt: a refined video's own name (the feature file stem)
 * goes through the names mode (as-is, or strip-v: a leading "v_" removed, as OpenTAD
 * compares ActivityNet annotation keys); names inherited from the input's own list
 * and annotated videos without features are already annotation keys and are
 * written verbatim. */
/* implemented in: refine_meta.c refine_grid.c */
#ifndef SOLA_CLI_REFINE_META_H
#define SOLA_CLI_REFINE_META_H

#include <stdint.h>

#include "dataset.h"
#include "err.h"
#include "model.h"

enum { CLI_NAMES_ASIS = 0, CLI_NAMES_STRIP_V = 1 };

typedef struct cli_rmeta cli_rmeta;

/* The time grid of one video, as far as it is known (0 / NULL: unknown). */
typedef struct cli_rmeta_grid {
    double fps;             /* frames per second of the video the features came from */
    const char *fps_from;   /* where fps came from ("v_a_fps.npy", "annotations: fps") */
    double stride, frames;  /* frames between snippets, frames per snippet */
    const char *grid_from;  /* where they came from ("--stride/--frames", ...) */
    const char *copied[2];  /* sibling files copied beside the output, NULL-padded */
} cli_rmeta_grid;

/* NULL on out of memory. */
cli_rmeta *cli_rmeta_new(int names_mode);
void cli_rmeta_free(cli_rmeta *m);

/* Run-level fields (tool, model, C, source, layout, ...), in the order described in
 * docs/interop.md. extra (may be NULL) is a JSON object whose fields are appended
 * (reference stolen). 0 or SOLA_ENOMEM. */
int cli_rmeta_describe(cli_rmeta *m, const sola_model *model, const char *mpath,
                       const char *in, const sola_dataset *d, int ct, void *extra);

/* A refined video. 0 or SOLA_ENOMEM. */
int cli_rmeta_video(cli_rmeta *m, const char *name, int64_t T, const cli_rmeta_grid *g);
/* A video of the input that was not refined, and why. */
int cli_rmeta_skip(cli_rmeta *m, const char *name, const char *why);
/* An annotated video that has no features in the input (annotation key). */
int cli_rmeta_absent(cli_rmeta *m, const char *key);
/* Reads the input's own missing list (one name per line, as OpenTAD writes it) and
 * keeps its names. A list that does not exist is fine (0, *n = 0); *n gets the count.
 * An unreadable one is SOLA_EIO naming it. */
int cli_rmeta_inherit(cli_rmeta *m, const char *list_path, int *n, sola_err *e);

/* The two sidecar paths of an output: OUT/refine_meta.json and OUT/missing_files.txt
 * for a folder, STEM.refine_meta.json and STEM.missing_files.txt beside an HDF5 file
 * (OUT = STEM.h5). Also where an input's own list is looked for. n: size of each. */
void cli_rmeta_paths(const char *out, int h5_file, char *meta, char *missing, size_t n);

/* After a run over d: notes d->skipped, and every other item as refined with its
 * grid: the video_features siblings (NAME_fps.npy, NAME_timestamps_ms.npy) when it
 * has them, else the declared values (--fps/--stride/--frames; `declared` may be
 * NULL). Siblings are copied byte for byte into copy_to (NULL: not copied). Prints a
 * warning (at most `maxwarn`, then a count) for each video whose siblings contradict
 * the declared grid. mine: NULL for every item, else mine[i] != 0 for the items this
 * process refined (a shard's); the others are left to their shard (scan-time skips
 * are noted by every shard alike, which the merge unites). Returns 0 or an error;
 * *warned gets the number of warnings. */
int cli_rmeta_collect(cli_rmeta *m, const sola_dataset *d, const unsigned char *mine,
                      const char *copy_to, const cli_rmeta_grid *declared, int maxwarn,
                      int *warned, sola_err *e);

/* Checks the refined videos against the annotation file a downstream loader will use
 * (call after cli_rmeta_collect). A video matches the key NAME, or NAME without its
 * "v_" (ActivityNet). For each: the annotation's fps (its "fps", else frame/duration)
 * becomes the video's fps when the features did not say; a warning (at most maxwarn,
 * then a count) when it differs from the fps the features were extracted at, or when
 * T differs by more than 2 snippets from what duration, fps and the grid give
 * (floor((duration * fps - frames) / stride) + 1). Annotated videos with no features
 * at all go to missing_annotated (and so into missing_files.txt). *warned gets the
 * number of warnings. */
struct sola_annotations;
int cli_rmeta_annotations(cli_rmeta *m, const sola_dataset *d,
                          const struct sola_annotations *a, int maxwarn, int *warned,
                          sola_err *e);

/* Counts: refined videos; lines missing_files.txt will hold. */
int cli_rmeta_nvideos(const cli_rmeta *m);
int cli_rmeta_nmissing(const cli_rmeta *m);
int cli_rmeta_nabsent(const cli_rmeta *m);

/* Writes meta_path (JSON) and missing_path (one name per line, each ending in '\n';
 * an empty file when nothing is missing). Either path may be NULL to skip it. */
int cli_rmeta_write(const cli_rmeta *m, const char *meta_path, const char *missing_path,
                    sola_err *e);

/* Reads a refine_meta.json written by cli_rmeta_write (a shard's part). */
int cli_rmeta_load(const char *meta_path, cli_rmeta **out, sola_err *e);
/* Adds part's videos, skips and missing names to into. Parts must agree on model, C,
 * layout and names mode (SOLA_EINVAL naming the field otherwise); into takes part's
 * run-level fields when it has none yet. */
int cli_rmeta_merge(cli_rmeta *into, const cli_rmeta *part, sola_err *e);

#endif
