/* annotations.h -- ActionFormer / OpenTAD annotation JSON turned into snippet labels
 * (SPEC 2), for `sola probe`.
 *
 * File form: {"database": {VIDEO: {"subset", "duration", "fps",
 *             "annotations": [{"label", "segment": [start_s, end_s]}, ...]}}}
 * (a root without "database" is taken as the database itself). Times are seconds.
 *
 * Time to snippet: g(t) = (t * fps - offset) / stride, so snippet i is centred at
 * time (i * stride + offset) / fps (ActionFormer THUMOS I3D: stride 4, 16 frames,
 * offset 8 = frames / 2). A segment [s, e] labels the snippets whose centre lies in
 * it, i.e. ceil(g(s)) <= i <= floor(g(e)), clipped to [0, T); a segment shorter than
 * a stride that holds no centre labels the snippet nearest its middle, so no action
 * disappears. Classes are the distinct "label" strings of the whole file, sorted;
 * overlapping segments give multi-hot rows. */
#ifndef SOLA_ANNOTATIONS_H
#define SOLA_ANNOTATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sola_ann_params {
    double stride;      /* frames between snippets (4) */
    double frames;      /* frames per snippet (16) */
    double offset;      /* frame of snippet 0's centre; < 0: frames / 2 */
    double default_fps; /* for videos without "fps"; 0: such a video is an error */
} sola_ann_params;

void sola_ann_params_default(sola_ann_params *p); /* 4, 16, 8, 0 */

typedef struct sola_ann_seg {
    double start, end; /* seconds */
    int label;         /* index into classes */
} sola_ann_seg;

typedef struct sola_ann_video {
    char *name, *subset; /* owned; subset "" when absent */
    double duration;     /* seconds; < 0 when absent */
    double fps;          /* 0 when absent */
    sola_ann_seg *segs;  /* owned */
    int nseg;
} sola_ann_video;

typedef struct sola_annotations {
    sola_ann_video *videos; /* sorted by name; only those of the subset */
    int n;
    char **classes; /* sorted, owned */
    int nclasses;
    char *path;     /* for messages, owned */
} sola_annotations;

/* Parses the JSON in buf (len bytes; `name` prefixes errors). subset: keep only the
 * videos whose "subset" equals it ignoring case (NULL: all). Errors name the video
 * and field: a segment that is not two numbers, start > end, a negative time. */
int sola_ann_parse(const void *buf, size_t len, const char *name, const char *subset,
                   sola_annotations **out, sola_err *e);
int sola_ann_load(const char *path, const char *subset, sola_annotations **out, sola_err *e);
void sola_ann_free(sola_annotations *a);

/* Index of the video `name`, or -1. */
int sola_ann_find(const sola_annotations *a, const char *name);

/* What sola_ann_labels found, for the caller to report. */
typedef struct sola_ann_report {
    int outside;        /* segments entirely outside the T snippets (dropped) */
    int64_t expected_T; /* from duration: floor((duration*fps - frames) / stride) + 1; -1 */
    int mismatch;       /* |T - expected_T| > 2 snippets: labels may be misaligned */
} sola_ann_report;

/* Labels video v at T snippets. hot [T, nclasses] multi-hot (may be NULL), fg [T]
 * 1 where any class is on (may be NULL). SOLA_EINVAL when the video has no fps and
 * p->default_fps is 0, or p is not usable (stride <= 0). */
int sola_ann_labels(const sola_annotations *a, int v, int64_t T, const sola_ann_params *p,
                    uint8_t *hot, uint8_t *fg, sola_ann_report *r, sola_err *e);

#endif
