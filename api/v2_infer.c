/* v2_infer.c -- the body of an Open Inference Protocol v2 infer request and its reply.
 *
 * A request is a JSON header, optionally followed by binary tensor data (the binary
 * tensor data extension): the header's length is then given by the
 * Inference-Header-Content-Length HTTP header, and each input that carries
 * "parameters": {"binary_data_size": N} takes the next N bytes after the header, in
 * the order of "inputs". The one input, `features`, is FP32 [T, C] or [B, T, C]; FP16
 * and FP64 are accepted and converted (JSON numbers are read as doubles and rounded
 * to float32). Replies put an output in binary when the request asked for it
 * ("binary_data": true on the output, or "binary_data_output": true in the request's
 * parameters); the reply is then application/octet-stream with its own
 * Inference-Header-Content-Length, and the output's parameters carry
 * binary_data_size. Binary data is little-endian, row-major. */
#include "api_helpers.h"
#include "v2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const out_names[V2_NOUT] = {"refined", "tsm", "tsm_raw"};

void v2_request_free(v2_request *r)
{
    free(r->x.data);
    free(r->reply_params);
    memset(r, 0, sizeof *r);
}

/* IEEE half to float, subnormals and specials included. */
static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 31, man = h & 1023, f;
    if (ex == 0) {
        if (man == 0) {
            f = s;
        } else { /* subnormal: renormalise */
            int sh = 0;
            while (!(man & 1024)) {
                man <<= 1;
                sh++;
            }
            man &= 1023;
            f = s | ((uint32_t)(127 - 15 - sh + 1) << 23) | (man << 13);
        }
    } else if (ex == 31) {
        f = s | 0x7f800000u | (man << 13);
    } else {
        f = s | ((ex - 15 + 127) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &f, sizeof out);
    return out;
}

static int elem_size(const char *dt)
{
    if (!strcmp(dt, "FP32"))
        return 4;
    if (!strcmp(dt, "FP16"))
        return 2;
    if (!strcmp(dt, "FP64"))
        return 8;
    return 0;
}

/* Flattens nested arrays of numbers into out[*k..n). */
static int flatten(json_t *v, float *out, size_t n, size_t *k, int depth, sola_err *e)
{
    if (depth > 8)
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].data: nested deeper than the shape");
    if (json_is_array(v)) {
        size_t i;
        json_t *x; /* borrowed */
        json_array_foreach(v, i, x) {
            int rc = flatten(x, out, n, k, depth + 1, e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!json_is_number(v))
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].data[%zu]: expected a number, got %s",
                         *k, json_is_string(v) ? "a string" : json_is_boolean(v) ? "a boolean"
                                                          : json_is_null(v) ? "null" : "an object");
    if (*k >= n)
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].data holds more than the %zu elements "
                                          "its shape says", n);
    out[(*k)++] = (float)json_number_value(v);
    return 0;
}

static int parse_bool_param(json_t *params, const char *key, int *out, const char *where,
                            sola_err *e)
{
    json_t *v = params ? json_object_get(params, key) : NULL; /* borrowed */
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return sola_errf(e, SOLA_EFORMAT, "%s.parameters.%s must be true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

/* The input tensor: shape, datatype, and its data from JSON or from the binary part. */
static int parse_input(json_t *in, const char *bin, size_t bin_len, size_t *bin_off,
                       int max_frames, v2_request *r, sola_err *e)
{
    if (!json_is_object(in))
        return sola_errf(e, SOLA_EFORMAT, "inputs[0] must be an object");
    json_t *name = json_object_get(in, "name"), *shape = json_object_get(in, "shape"),
           *dt = json_object_get(in, "datatype"), *params = json_object_get(in, "parameters"),
           *data = json_object_get(in, "data"); /* all borrowed */
    if (!json_is_string(name) || strcmp(json_string_value(name), "features") != 0)
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].name must be \"features\" (the model's "
                                          "only input), got %s",
                         json_is_string(name) ? json_string_value(name) : "none");
    if (!json_is_string(dt))
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].datatype is missing (use \"FP32\")");
    int es = elem_size(json_string_value(dt));
    if (!es)
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].datatype \"%.20s\" is not supported: "
                                          "features is FP32 (FP16 and FP64 are converted)",
                         json_string_value(dt));
    if (!json_is_array(shape) || (json_array_size(shape) != 2 && json_array_size(shape) != 3))
        return sola_errf(e, SOLA_ESHAPE, "inputs[0].shape must be [T, C] or [B, T, C]");
    size_t numel = 1;
    r->x.ndim = (int)json_array_size(shape);
    for (int d = 0; d < r->x.ndim; d++) {
        json_t *v = json_array_get(shape, (size_t)d);
        /* a stream's chunk may be empty: [0, C] */
        int lo = r->seq.has_id && r->x.ndim == 2 && d == 0 ? 0 : 1;
        if (!json_is_integer(v) || json_integer_value(v) < lo ||
            json_integer_value(v) > (1 << 24))
            return sola_errf(e, SOLA_ESHAPE, "inputs[0].shape[%d] must be a positive integer",
                             d);
        r->x.shape[d] = json_integer_value(v);
        if (sola_mul_size(numel, (size_t)r->x.shape[d], &numel))
            return sola_errf(e, SOLA_ETOOBIG, "inputs[0].shape is too large");
    }
    int64_t T = r->x.shape[r->x.ndim - 2];
    if (T > max_frames)
        return sola_errf(e, SOLA_ETOOBIG, "inputs[0]: T=%lld snippets exceeds this server's "
                                          "limit of %d (--max-frames)",
                         (long long)T, max_frames);
    size_t bytes;
    if (sola_mul_size(numel, sizeof(float), &bytes) || !(r->x.data = malloc(bytes ? bytes : 1)))
        return sola_errf(e, SOLA_ENOMEM, "out of memory for %zu input elements", numel);

    json_t *bds = params ? json_object_get(params, "binary_data_size") : NULL; /* borrowed */
    if (bds) {
        if (data)
            return sola_errf(e, SOLA_EFORMAT, "inputs[0] has both data and "
                                              "parameters.binary_data_size: send one");
        if (!bin)
            return sola_errf(e, SOLA_EFORMAT, "inputs[0].parameters.binary_data_size needs the "
                                              "Inference-Header-Content-Length header (the "
                                              "length of the JSON part of the body)");
        if (!json_is_integer(bds) || json_integer_value(bds) < 0)
            return sola_errf(e, SOLA_EFORMAT, "inputs[0].parameters.binary_data_size must be "
                                              "a byte count");
        size_t n = (size_t)json_integer_value(bds), want;
        if (sola_mul_size(numel, (size_t)es, &want) || n != want)
            return sola_errf(e, SOLA_EFORMAT, "inputs[0].parameters.binary_data_size is %zu "
                                              "bytes but shape x %s needs %zu",
                             n, json_string_value(dt), want);
        if (n > bin_len - *bin_off)
            return sola_errf(e, SOLA_EFORMAT, "inputs[0].parameters.binary_data_size is %zu "
                                              "bytes but only %zu follow the JSON header",
                             n, bin_len - *bin_off);
        const unsigned char *p = (const unsigned char *)bin + *bin_off;
        /* little-endian data on a little-endian host (x86-64, arm64) */
        for (size_t i = 0; i < numel; i++) {
            if (es == 4) {
                memcpy(&r->x.data[i], p + 4 * i, 4);
            } else if (es == 2) {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                r->x.data[i] = half_to_float(h);
            } else {
                double d;
                memcpy(&d, p + 8 * i, 8);
                r->x.data[i] = (float)d;
            }
        }
        *bin_off += n;
        return 0;
    }
    if (!data)
        return sola_errf(e, SOLA_EFORMAT, "inputs[0] has no data (give \"data\", or "
                                          "parameters.binary_data_size with binary data)");
    size_t k = 0;
    int rc = flatten(data, r->x.data, numel, &k, 0, e);
    if (rc)
        return rc;
    if (k != numel)
        return sola_errf(e, SOLA_EFORMAT, "inputs[0].data has %zu elements but shape says %zu",
                         k, numel);
    return 0;
}

int v2_parse_request(const char *body, size_t len, const char *hdr_len, int max_frames,
                     v2_request *r, sola_err *e)
{
    memset(r, 0, sizeof *r);
    size_t jlen = len;
    const char *bin = NULL;
    size_t bin_len = 0, bin_off = 0;
    if (hdr_len) {
        char *end;
        unsigned long long v = strtoull(hdr_len, &end, 10);
        if (end == hdr_len || *end || hdr_len[0] == '-' || v > len)
            return sola_errf(e, SOLA_EFORMAT, "Inference-Header-Content-Length: %.30s is not a "
                                              "byte count within the %zu-byte body",
                             hdr_len, len);
        jlen = (size_t)v;
        bin = body + jlen;
        bin_len = len - jlen;
    }
    json_error_t je;
    json_t *root = json_loadb(body, jlen, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &je);
    if (!root)
        return sola_errf(e, SOLA_EFORMAT, "request JSON%s, line %d column %d: %s",
                         hdr_len ? " header" : "", je.line, je.column, je.text);
    int rc = 0;
    json_t *outputs = json_object_get(root, "outputs"); /* borrowed, as the others */
    size_t used = (size_t)je.position;
    while (used < jlen && strchr(" \t\r\n", body[used]))
        used++;
    if (used < jlen) {
        rc = sola_errf(e, SOLA_EFORMAT,
                       hdr_len ? "%zu bytes after the JSON header are inside "
                                 "Inference-Header-Content-Length"
                               : "%zu bytes follow the JSON: binary tensor data needs the "
                                 "Inference-Header-Content-Length header (the JSON's length)",
                       jlen - used);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = sola_errf(e, SOLA_EFORMAT, "request must be a JSON object");
        goto out;
    }
    json_t *id = json_object_get(root, "id"), *params = json_object_get(root, "parameters"),
           *inputs = json_object_get(root, "inputs");
    if (id) {
        if (!json_is_string(id)) {
            rc = sola_errf(e, SOLA_EFORMAT, "id must be a string");
            goto out;
        }
        snprintf(r->id, sizeof r->id, "%s", json_string_value(id));
        r->has_id = 1;
    }
    if (params && !json_is_object(params)) {
        rc = sola_errf(e, SOLA_EFORMAT, "parameters must be an object");
        goto out;
    }
    int all_binary = 0;
    if ((rc = parse_bool_param(params, "binary_data_output", &all_binary, "request", e)))
        goto out;
    const char *pk;
    json_t *pv; /* borrowed */
    json_object_foreach(params, pk, pv) {
        if (api_seq_json_member(&r->seq, pk, pv, "parameters", &rc, e) && rc)
            goto out;
    }
    if ((rc = api_seq_check(&r->seq, e)))
        goto out;
    if (!json_is_array(inputs) || json_array_size(inputs) != 1) {
        rc = sola_errf(e, SOLA_EFORMAT, "inputs must be an array of one tensor, \"features\"");
        goto out;
    }
    if ((rc = parse_input(json_array_get(inputs, 0), bin, bin_len, &bin_off, max_frames, r, e)))
        goto out;
    if (bin && bin_off != bin_len) {
        rc = sola_errf(e, SOLA_EFORMAT, "%zu bytes follow the JSON header but the inputs' "
                                        "binary_data_size add up to %zu",
                       bin_len, bin_off);
        goto out;
    }
    if (!outputs) { /* the protocol: none named = all of the model's outputs */
        for (int i = 0; i < V2_NOUT; i++) {
            r->order[r->nout++] = i;
            r->binary[i] = all_binary;
        }
        goto out;
    }
    r->outputs_given = 1;
    if (!json_is_array(outputs) || json_array_size(outputs) < 1) {
        rc = sola_errf(e, SOLA_EFORMAT, "outputs must be an array of {\"name\": ...} (refined, "
                                        "tsm, tsm_raw)");
        goto out;
    }
    size_t i;
    json_t *o; /* borrowed */
    json_array_foreach(outputs, i, o) {
        json_t *nm = json_is_object(o) ? json_object_get(o, "name") : NULL;
        int which = -1;
        for (int k = 0; nm && json_is_string(nm) && k < V2_NOUT; k++)
            if (!strcmp(json_string_value(nm), out_names[k]))
                which = k;
        if (which < 0) {
            rc = sola_errf(e, SOLA_EFORMAT, "outputs[%zu].name must be refined, tsm or tsm_raw",
                           i);
            goto out;
        }
        if (r->want[which]) {
            rc = sola_errf(e, SOLA_EFORMAT, "outputs[%zu]: %s is requested twice", i,
                           out_names[which]);
            goto out;
        }
        int b = all_binary;
        char where[32];
        snprintf(where, sizeof where, "outputs[%zu]", i);
        if ((rc = parse_bool_param(json_object_get(o, "parameters"), "binary_data", &b, where,
                                   e)))
            goto out;
        r->want[which] = 1;
        r->binary[which] = b;
        r->order[r->nout++] = which;
    }
out:
    if (!outputs)
        for (int k = 0; k < r->nout; k++)
            r->want[r->order[k]] = 1;
    json_decref(root);
    if (rc)
        v2_request_free(r);
    return rc;
}

int v2_encode_reply(const v2_request *r, const char *model, int version,
                    const sola_array *const outs[V2_NOUT], api_response *rs)
{
    api_buf h = {0};
    size_t bin_total = 0;
    api_buf_puts(&h, "{\"model_name\":");
    api_buf_json_str(&h, model);
    api_buf_printf(&h, ",\"model_version\":\"%d\"", version);
    if (r->has_id) {
        api_buf_puts(&h, ",\"id\":");
        api_buf_json_str(&h, r->id);
    }
    if (r->reply_params) {
        api_buf_puts(&h, ",\"parameters\":");
        api_buf_puts(&h, r->reply_params);
    }
    api_buf_puts(&h, ",\"outputs\":[");
    for (int k = 0; k < r->nout; k++) {
        int w = r->order[k];
        const sola_array *a = outs[w];
        size_t n = sola_array_numel(a);
        api_buf_printf(&h, "%s{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[", k ? "," : "",
                       out_names[w]);
        for (int d = 0; d < a->ndim; d++)
            api_buf_printf(&h, "%s%lld", d ? "," : "", (long long)a->shape[d]);
        if (r->binary[w]) {
            api_buf_printf(&h, "],\"parameters\":{\"binary_data_size\":%zu}}", n * 4);
            bin_total += n * 4;
            continue;
        }
        api_buf_puts(&h, "],\"data\":[");
        char num[24];
        for (size_t i = 0; i < n; i++) {
            int l = api_fmt_float(a->data[i], num);
            if (i)
                api_buf_put(&h, ",", 1);
            api_buf_put(&h, num, (size_t)l);
        }
        api_buf_puts(&h, "]}");
    }
    api_buf_puts(&h, "]}");
    if (h.failed)
        goto nomem;
    if (!bin_total) {
        api_take_body(rs, 200, "application/json", h.p, h.len);
        return 0;
    }
    size_t jlen = h.len;
    if (api_buf_reserve(&h, bin_total))
        goto nomem;
    for (int k = 0; k < r->nout; k++) {
        int w = r->order[k];
        if (r->binary[w])
            api_buf_put(&h, outs[w]->data, sola_array_numel(outs[w]) * 4);
    }
    if (h.failed)
        goto nomem;
    api_take_body(rs, 200, "application/octet-stream", h.p, h.len);
    api_set_header(rs, "Inference-Header-Content-Length", "%zu", jlen);
    return 0;
nomem:
    api_buf_free(&h);
    api_error(rs, 503, "out of memory while encoding the reply");
    return SOLA_ENOMEM;
}
