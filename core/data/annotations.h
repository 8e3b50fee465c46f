/* annotations.h -- ActionFormer / OpenTAD annotation JSON turned into snippet labels
 * (docs/spec.md section 2), for `sola probe` and the grid checks of `sola refine --annotations`.
 *
 * File form: {"database": {VIDEO: {"subset", "duration", "fps" (or "frame", the frame
 *             count OpenTAD keeps), "annotations": [{"label", "segment": [s, e]}]}}}
 * (a root without "database" is taken as the database itself). Times are seconds.
 *
 * fps of a video: its "fps"; else "frame" / "duration" (OpenTAD derives it that way,
 * opentad/datasets/thumos.py), or BMN's "duration_frame" / "duration_second"; else
 * the caller's default. THUMOS mixes 25 and 30 fps videos, so one global fps is wrong.
 *
 * Time to snippet: g(t) = (t * fps - offset) / stride, so snippet i is centred at
 * time (i * stride + offset) / fps (ActionFormer THUMOS I3D: stride 4, 16 frames,
 * offset 8 = frames / 2). A segment [s, e] labels the snippets whose centre lies in
 * it, i.e. ceil(g(s)) <= i <= floor(g(e)), clipped to [0, T). A boundary within
 * SOLA_ANN_EPS snippets of a centre counts as on it: two-decimal times times 29.97 or
 * 30 land on a centre exactly in decimal, and floating point puts 1 in 20 of them a
 * hair off (33.2 s x 30 fps = 996.0000000000001 frames), which plain ceil/floor turn
 * into a whole snippet. No segment inside the video is lost: one that holds no centre
 * (shorter than a stride, or before the first / after the last centre) labels the
 * snippet nearest its middle, clamped to [0, T). Only segments that start at or past
 * the end of the video (its "duration", else the end of the last snippet) are
 * dropped, and counted.
 *
 * Classes are the distinct "label" strings of the whole file, sorted; overlapping
 * segments give multi-hot rows. Segments labelled with the ignored label ("Ambiguous"
 * by default, as OpenTAD skips THUMOS's Ambiguous segments) label nothing and are no
 * class. */
#ifndef SOLA_ANNOTATIONS_H
#define SOLA_ANNOTATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Boundaries closer than this (in snippets) to a centre are on it: 1e-6 of a snippet
 * is well under a microsecond at any stride, and some 1e9 times the rounding error of
 * t * fps for videos of any length. */
#define SOLA_ANN_EPS 1e-6

typedef struct sola_ann_params {
    double stride;      /* frames between snippets (4) */
    double frames;      /* frames per snippet (16) */
    double offset;      /* frame of snippet 0's centre; < 0: frames / 2 */
    double default_fps; /* for videos without "fps"; 0: such a video is an error */
} sola_ann_params;

void sola_ann_params_default(sola_ann_params *p); /* 4, 16, 8, 0 */

typedef struct sola_ann_seg {
    double start, end; /* seconds */
    int label;         /* index into classes; -1 for an ignored label */
} sola_ann_seg;

typedef struct sola_ann_video {
    char *name, *subset; /* owned; subset "" when absent */
    double duration;     /* seconds; < 0 when absent */
    double fps;          /* 0 when neither "fps" nor frames / duration is there */
    const char *fps_from; /* static: "fps", "frame/duration", "duration_frame/
                           * duration_second", or NULL */
    sola_ann_seg *segs;  /* owned; ignored segments included (label -1) */
    int nseg;
    int nignored;        /* segments with the ignored label */
} sola_ann_video;

typedef struct sola_annotations {
    sola_ann_video *videos; /* sorted by name; only those of the subset */
    int n;
    char **classes; /* sorted, owned */
    int nclasses;
    char *path;     /* for messages, owned */
    char *ignored;  /* the ignored label, or NULL; owned */
} sola_annotations;

/* Parses the JSON in buf (len bytes; `name` prefixes errors). subset: keep only the
 * videos whose "subset" equals it ignoring case (NULL: all). Segments labelled
 * "Ambiguous" are ignored. Errors name the video and field: a segment that is not two
 * numbers, start > end, a negative time, a non-positive fps or frame count. */
int sola_ann_parse(const void *buf, size_t len, const char *name, const char *subset,
                   sola_annotations **out, sola_err *e);
int sola_ann_load(const char *path, const char *subset, sola_annotations **out, sola_err *e);
/* The same with the ignored label chosen: NULL or "" labels every segment. */
int sola_ann_parse_ex(const void *buf, size_t len, const char *name, const char *subset,
                      const char *ignore, sola_annotations **out, sola_err *e);
int sola_ann_load_ex(const char *path, const char *subset, const char *ignore,
                     sola_annotations **out, sola_err *e);
void sola_ann_free(sola_annotations *a);

/* Index of the video `name`, or -1. */
int sola_ann_find(const sola_annotations *a, const char *name);

/* What sola_ann_labels found, for the caller to report. */
typedef struct sola_ann_report {
    int outside;        /* segments starting at or past the end of the video (dropped) */
    int clamped;        /* segments inside the video but past the features' snippets,
                         * put on the first / last snippet */
    int ignored;        /* segments with the ignored label (not labelled) */
    double fps;         /* the fps used */
    int64_t expected_T; /* from duration: floor((duration*fps - frames) / stride) + 1; -1 */
    int mismatch;       /* |T - expected_T| > 2 snippets: labels may be misaligned */
} sola_ann_report;

/* Labels video v at T snippets. hot [T, nclasses] multi-hot (may be NULL), fg [T]
 * 1 where any class is on (may be NULL). SOLA_EINVAL when the video has no fps and
 * p->default_fps is 0, or p is not usable (stride <= 0). */
int sola_ann_labels(const sola_annotations *a, int v, int64_t T, const sola_ann_params *p,
                    uint8_t *hot, uint8_t *fg, sola_ann_report *r, sola_err *e);

#endif
