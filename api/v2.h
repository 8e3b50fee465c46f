/* v2.h -- Open Inference Protocol v2 (KServe / Triton) request parsing and reply
 * encoding, shared by api/routes_v2.c and its tests. */
/* implemented in: v2_infer.c */
#ifndef SOLA_API_V2_H
#define SOLA_API_V2_H

#include "api.h"
#include "seq.h"

enum { V2_REFINED, V2_TSM, V2_TSM_RAW, V2_NOUT };

typedef struct v2_request {
    char id[256];
    int has_id;
    sola_array x;           /* features [T, C] or [B, T, C], float32 (owned) */
    int nout;               /* outputs to return, in this order */
    int order[V2_NOUT];
    int want[V2_NOUT];      /* by V2_* */
    int binary[V2_NOUT];    /* returned as binary data */
    int outputs_given;      /* the request listed its outputs */
    api_seq_args seq;       /* parameters sequence_id, sequence_start, sequence_end */
    char *reply_params;     /* JSON object text for the reply's "parameters" (owned), or
                             * NULL: none */
} v2_request;


/* Parses an infer body (len bytes). A request with a sequence_id may have an input of
 * shape [0, C] (an empty chunk of a stream). hdr_len: the Inference-Header-Content-Length
 * header's value, NULL if absent (the whole body is JSON). Inputs longer than
 * max_frames snippets are refused. 0 or SOLA_EFORMAT/ESHAPE/ETOOBIG/ENOMEM with a
 * message naming the member; on failure r holds nothing. */
int v2_parse_request(const char *body, size_t len, const char *hdr_len, int max_frames,
                     v2_request *r, sola_err *e);
void v2_request_free(v2_request *r);

/* The reply: outs[V2_*] for every output r wants. JSON, or JSON header + binary
 * outputs (application/octet-stream + Inference-Header-Content-Length). */
int v2_encode_reply(const v2_request *r, const char *model, int version,
                    const sola_array *const outs[V2_NOUT], api_response *rs);

#endif
